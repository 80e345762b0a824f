-- XEP-0313 message archive. Rows are ordered by (ts, id) within an owner;
-- queries page on that key (keyset paging), never by OFFSET.
CREATE TABLE archive (
	owner         TEXT    NOT NULL,
	ts            INTEGER NOT NULL, -- Unix microseconds
	id            TEXT    NOT NULL, -- storage.NewArchiveID: sortable, unguessable
	with_bare     TEXT    NOT NULL,
	with_resource TEXT    NOT NULL,
	origin_id     TEXT    NOT NULL, -- '' when the sender gave none
	from_full     TEXT    NOT NULL,
	raw           BLOB    NOT NULL
);

CREATE UNIQUE INDEX archive_keyset ON archive (owner, ts, id);
CREATE UNIQUE INDEX archive_by_id ON archive (owner, id);
CREATE INDEX archive_by_with ON archive (owner, with_bare, ts, id);
CREATE INDEX archive_by_origin ON archive (owner, origin_id, ts) WHERE origin_id <> '';
CREATE INDEX archive_by_ts ON archive (ts); -- retention

CREATE TABLE archive_prefs (
	owner  TEXT PRIMARY KEY,
	dflt   TEXT NOT NULL,
	always TEXT NOT NULL, -- JSON array of strings, in order
	never  TEXT NOT NULL  -- JSON array of strings, in order
) WITHOUT ROWID;
