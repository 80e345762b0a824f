-- Messages larger than storage.MaxFulltextBytes (256 KiB, the default
-- limits.max_stanza_bytes) are not indexed: to_tsvector's time grows with
-- the text, and a 3 MiB body kept an insert busy for seconds, beyond the
-- query timeout on a loaded machine (the insert failed). The SQLite
-- backend applies the same bound (storage/sqlite/fulltext.go). Rows
-- indexed before keep their entries until the index is rebuilt.
--
-- The function of 0009 keeps its rules under a new name; the name the
-- trigger and the backfill call checks the size first. Like the trigger
-- function, it names its schema, whatever the search_path of the caller.
ALTER FUNCTION parley_archive_fts(bytea) RENAME TO parley_archive_fts_text;

DO $do$
BEGIN
	EXECUTE format($f$
		CREATE FUNCTION parley_archive_fts(raw bytea) RETURNS tsvector
		LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $body$
			SELECT CASE WHEN octet_length(raw) > 262144 THEN NULL ELSE %I.parley_archive_fts_text(raw) END
		$body$$f$, current_schema());
END
$do$;
