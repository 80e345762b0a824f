-- Message counts per conversation (owner, with_bare), so that the RSM
-- <count/> of an archive query filtered at most by owner and peer costs
-- one index lookup per peer instead of a scan of the owner's rows (whose
-- heap pages a COUNT(*) must visit unless the visibility map is current).
--
-- Statement-level triggers on the partitioned archive table keep it in
-- step with every INSERT and DELETE through "archive" (AppendArchive,
-- group commit, import, retention, account deletion), in the same
-- transaction, so queries in one snapshot see counts and rows agree.
-- Statements on a partition itself (EnsurePartitions moving rows out of
-- archive_default) do not fire them, which is right: such a move neither
-- adds nor removes messages. Counter rows are locked in key order, so
-- concurrent writers never deadlock on them.

CREATE TABLE archive_counts (
	owner     text COLLATE "C" NOT NULL,
	with_bare text COLLATE "C" NOT NULL,
	n         bigint           NOT NULL,
	PRIMARY KEY (owner, with_bare)
);

INSERT INTO archive_counts (owner, with_bare, n)
	SELECT owner, with_bare, count(*) FROM archive GROUP BY owner, with_bare;

CREATE FUNCTION parley_archive_counts_add() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
	INSERT INTO archive_counts AS c (owner, with_bare, n)
		SELECT owner, with_bare, count(*) FROM parley_new_rows
		GROUP BY owner, with_bare ORDER BY owner, with_bare
		ON CONFLICT (owner, with_bare) DO UPDATE SET n = c.n + excluded.n;
	RETURN NULL;
END
$fn$;

CREATE FUNCTION parley_archive_counts_remove() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
	PERFORM 1 FROM archive_counts c
		WHERE (c.owner, c.with_bare) IN (SELECT owner, with_bare FROM parley_old_rows)
		ORDER BY c.owner, c.with_bare FOR UPDATE;
	UPDATE archive_counts c SET n = c.n - d.n
		FROM (SELECT owner, with_bare, count(*) AS n FROM parley_old_rows GROUP BY owner, with_bare) d
		WHERE c.owner = d.owner AND c.with_bare = d.with_bare;
	DELETE FROM archive_counts c
		WHERE c.n <= 0 AND (c.owner, c.with_bare) IN (SELECT owner, with_bare FROM parley_old_rows);
	RETURN NULL;
END
$fn$;

-- The functions run with this schema as their search_path, so they find
-- archive_counts whatever the search_path of the session that writes.
DO $do$
BEGIN
	EXECUTE format('ALTER FUNCTION parley_archive_counts_add() SET search_path = %I', current_schema());
	EXECUTE format('ALTER FUNCTION parley_archive_counts_remove() SET search_path = %I', current_schema());
END
$do$;

CREATE TRIGGER archive_counts_add AFTER INSERT ON archive
	REFERENCING NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_archive_counts_add();

CREATE TRIGGER archive_counts_remove AFTER DELETE ON archive
	REFERENCING OLD TABLE AS parley_old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_archive_counts_remove();
