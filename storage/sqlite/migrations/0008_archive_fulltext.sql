-- XEP-0431 full-text search of the archive. archive_fts is a contentless
-- FTS5 index of the searchable text of archived messages (the plain
-- <body/> of messages that are not end-to-end encrypted: see
-- parley_fts_text in fulltext.go; encrypted messages are never indexed).
-- archive_fts_docs maps its docids to archive rows by (owner, id): the
-- archive's own rowids may change on VACUUM, these do not.
--
-- Triggers keep the index in step with every insert and delete, in the
-- same transaction. parley_fts_text is a Go function registered by
-- Parley: only Parley can insert archive rows (other tools can still read
-- and delete them).

CREATE TABLE archive_fts_docs (
	docid INTEGER PRIMARY KEY,
	owner TEXT NOT NULL,
	id    TEXT NOT NULL
);
CREATE UNIQUE INDEX archive_fts_docs_by_id ON archive_fts_docs (owner, id);

-- unicode61 without removing diacritics: like PostgreSQL's 'simple'
-- configuration, case-insensitive, any language.
CREATE VIRTUAL TABLE archive_fts USING fts5 (
	body,
	content = '',
	contentless_delete = 1,
	tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER archive_fts_insert AFTER INSERT ON archive
WHEN parley_fts_text(new.raw) IS NOT NULL
BEGIN
	INSERT INTO archive_fts_docs (owner, id) VALUES (new.owner, new.id);
	INSERT INTO archive_fts (rowid, body) VALUES (last_insert_rowid(), parley_fts_text(new.raw));
END;

CREATE TRIGGER archive_fts_delete AFTER DELETE ON archive
BEGIN
	DELETE FROM archive_fts WHERE rowid =
		(SELECT docid FROM archive_fts_docs WHERE owner = old.owner AND id = old.id);
	DELETE FROM archive_fts_docs WHERE owner = old.owner AND id = old.id;
END;

-- Archive rows are never updated in place; should one be, it is
-- re-indexed.
CREATE TRIGGER archive_fts_update AFTER UPDATE OF owner, id, raw ON archive
BEGIN
	DELETE FROM archive_fts WHERE rowid =
		(SELECT docid FROM archive_fts_docs WHERE owner = old.owner AND id = old.id);
	DELETE FROM archive_fts_docs WHERE owner = old.owner AND id = old.id;
	INSERT INTO archive_fts_docs (owner, id)
		SELECT new.owner, new.id WHERE parley_fts_text(new.raw) IS NOT NULL;
	INSERT INTO archive_fts (rowid, body)
		SELECT docid, parley_fts_text(new.raw) FROM archive_fts_docs
		WHERE owner = new.owner AND id = new.id;
END;

-- Index the messages archived so far, oldest first.
INSERT INTO archive_fts_docs (owner, id)
	SELECT owner, id FROM archive WHERE parley_fts_text(raw) IS NOT NULL ORDER BY ts, id;
INSERT INTO archive_fts (rowid, body)
	SELECT d.docid, parley_fts_text(a.raw)
	FROM archive_fts_docs d JOIN archive a ON a.owner = d.owner AND a.id = d.id;
