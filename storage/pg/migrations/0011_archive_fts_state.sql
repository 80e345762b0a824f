-- Full-text indexing only when XEP-0431 search is enabled. The trigger of
-- 0009 costs every archive insert (a PL/pgSQL call, regular expressions,
-- to_tsvector, a GIN entry), so the Store drops it when opened with
-- full-text search off and creates it again, filling archive.fts for the
-- rows archived meanwhile, when opened with it on: see fulltext.go.
-- While it is off new rows have fts NULL.
--
-- archive_fts_state has one row. enabled: the trigger exists. complete:
-- every archived row's fts is current (false from the moment indexing
-- stops until a backfill has finished); searches are refused unless both
-- hold. generation counts the times indexing was turned on, so that a
-- backfill that another node's switch off and on again has overtaken
-- does not mark the index complete. Until now the index was always kept.
CREATE TABLE archive_fts_state (
	one        boolean PRIMARY KEY DEFAULT true CHECK (one),
	enabled    boolean NOT NULL,
	complete   boolean NOT NULL,
	generation bigint  NOT NULL
);
INSERT INTO archive_fts_state (one, enabled, complete, generation) VALUES (true, true, true, 1);
