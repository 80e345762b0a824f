-- Full-text indexing only when XEP-0431 search is enabled. The triggers of
-- 0008 cost every archive insert (FTS5 flushes per statement), so the Store
-- drops them when opened with full-text search off and creates them again
-- (rebuilding the index) when opened with it on: see fulltext.go.
--
-- archive_fts_state has one row. enabled: the triggers exist. complete:
-- the index covers every archived message (false from the moment
-- indexing stops until a rebuild has finished); searches are refused
-- unless both hold. Until now the index was always kept.
CREATE TABLE archive_fts_state (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	enabled  INTEGER NOT NULL,
	complete INTEGER NOT NULL
);
INSERT INTO archive_fts_state (one, enabled, complete) VALUES (1, 1, 1);
