-- Abuse tooling and quotas (issue 16): account suspensions, XEP-0377 spam
-- reports, per-account settings the server enforces, and per-account byte
-- usage kept current by triggers in the same transaction as every write.

CREATE TABLE account_suspensions (
	owner  text COLLATE "C" PRIMARY KEY,
	reason text NOT NULL,
	by     text NOT NULL,
	since  timestamptz NOT NULL,
	until  timestamptz          -- NULL: until lifted
);

CREATE TABLE spam_reports (
	id         bigserial PRIMARY KEY,
	owner      text COLLATE "C" NOT NULL, -- the reporter
	reported   text COLLATE "C" NOT NULL,
	reason     text NOT NULL,
	text       text NOT NULL,
	stanza_ids jsonb NOT NULL,
	created    timestamptz NOT NULL
);
CREATE INDEX spam_reports_reported ON spam_reports (reported, created);
CREATE INDEX spam_reports_owner ON spam_reports (owner);

CREATE TABLE account_settings (
	owner text COLLATE "C" NOT NULL,
	key   text COLLATE "C" NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (owner, key)
);

-- Bytes of raw XML per owner and kind (offline, private, pep, archive).
CREATE TABLE account_usage (
	owner text COLLATE "C" NOT NULL,
	kind  text COLLATE "C" NOT NULL,
	bytes bigint NOT NULL,
	PRIMARY KEY (owner, kind)
);

INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'offline', SUM(octet_length(raw)) FROM offline GROUP BY owner;
INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'private', SUM(octet_length(raw)) FROM private_xml GROUP BY owner;
INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'pep', SUM(octet_length(payload)) FROM pep_items GROUP BY owner;
INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'archive', SUM(octet_length(raw)) FROM archive GROUP BY owner;

-- One function for every table: TG_ARGV[0] is the kind, TG_ARGV[1] the
-- column holding the bytes. Statement-level with transition tables, like
-- archive_counts, so a statement writing many rows (group commit, retention,
-- account deletion) updates each counter once; counter rows are taken in
-- key order, so concurrent writers never deadlock on them.
CREATE FUNCTION parley_usage_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
	k   text := TG_ARGV[0];
	col text := quote_ident(TG_ARGV[1]);
BEGIN
	IF TG_OP <> 'INSERT' THEN
		PERFORM 1 FROM account_usage u
			WHERE u.kind = k AND u.owner IN (SELECT owner FROM parley_old_rows)
			ORDER BY u.owner FOR UPDATE;
	END IF;
	IF TG_OP = 'INSERT' THEN
		EXECUTE format('INSERT INTO account_usage AS u (owner, kind, bytes)
			SELECT owner, %L, SUM(octet_length(%s)) FROM parley_new_rows GROUP BY owner ORDER BY owner
			ON CONFLICT (owner, kind) DO UPDATE SET bytes = u.bytes + excluded.bytes', k, col);
	ELSIF TG_OP = 'DELETE' THEN
		EXECUTE format('UPDATE account_usage u SET bytes = u.bytes - d.n
			FROM (SELECT owner, SUM(octet_length(%s)) AS n FROM parley_old_rows GROUP BY owner ORDER BY owner) d
			WHERE u.owner = d.owner AND u.kind = %L', col, k);
	ELSE
		EXECUTE format('UPDATE account_usage u SET bytes = u.bytes + d.n
			FROM (SELECT owner, SUM(n) AS n FROM (
				SELECT owner, octet_length(%1$s) AS n FROM parley_new_rows
				UNION ALL SELECT owner, -octet_length(%1$s) FROM parley_old_rows) x
				GROUP BY owner ORDER BY owner) d
			WHERE u.owner = d.owner AND u.kind = %2$L', col, k);
	END IF;
	RETURN NULL;
END
$fn$;

DO $do$
BEGIN
	EXECUTE format('ALTER FUNCTION parley_usage_change() SET search_path = %I', current_schema());
END
$do$;

CREATE TRIGGER usage_offline_insert AFTER INSERT ON offline REFERENCING NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('offline', 'raw');
CREATE TRIGGER usage_offline_delete AFTER DELETE ON offline REFERENCING OLD TABLE AS parley_old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('offline', 'raw');

CREATE TRIGGER usage_private_insert AFTER INSERT ON private_xml REFERENCING NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('private', 'raw');
CREATE TRIGGER usage_private_update AFTER UPDATE ON private_xml
	REFERENCING OLD TABLE AS parley_old_rows NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('private', 'raw');
CREATE TRIGGER usage_private_delete AFTER DELETE ON private_xml REFERENCING OLD TABLE AS parley_old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('private', 'raw');

CREATE TRIGGER usage_pep_insert AFTER INSERT ON pep_items REFERENCING NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('pep', 'payload');
CREATE TRIGGER usage_pep_update AFTER UPDATE ON pep_items
	REFERENCING OLD TABLE AS parley_old_rows NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('pep', 'payload');
CREATE TRIGGER usage_pep_delete AFTER DELETE ON pep_items REFERENCING OLD TABLE AS parley_old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('pep', 'payload');

-- Like archive_counts: statements on a partition itself (EnsurePartitions
-- moving rows out of archive_default) do not fire these, and detaching a
-- partition takes its bytes off explicitly.
CREATE TRIGGER usage_archive_insert AFTER INSERT ON archive REFERENCING NEW TABLE AS parley_new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('archive', 'raw');
CREATE TRIGGER usage_archive_delete AFTER DELETE ON archive REFERENCING OLD TABLE AS parley_old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION parley_usage_change('archive', 'raw');
