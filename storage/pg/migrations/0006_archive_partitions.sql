-- The archive table is range-partitioned by month of ts (UTC): retention
-- and queries over a time range touch only the months they need, and old
-- months can be dropped or archived as whole tables. Partitions are named
-- archive_pYYYYMM; the server creates them ahead of time
-- (Store.EnsurePartitions, at start and daily). archive_default catches
-- rows of months without a partition; EnsurePartitions moves them into
-- the partition it creates for their month.
--
-- A primary key of a partitioned table must include the partition key:
-- (owner, id, ts). IDs are 80 random bits plus the time, so (owner, id)
-- stays unique in practice; lookups by (owner, id) use the key's prefix.

ALTER TABLE archive RENAME TO archive_unpartitioned;
ALTER TABLE archive_unpartitioned RENAME CONSTRAINT archive_pkey TO archive_unpartitioned_pkey;
ALTER INDEX archive_keyset RENAME TO archive_unpartitioned_keyset;
ALTER INDEX archive_by_with RENAME TO archive_unpartitioned_by_with;
ALTER INDEX archive_by_origin RENAME TO archive_unpartitioned_by_origin;
ALTER INDEX archive_by_ts RENAME TO archive_unpartitioned_by_ts;

CREATE TABLE archive (
	owner         text COLLATE "C" NOT NULL,
	ts            timestamptz      NOT NULL,
	id            text COLLATE "C" NOT NULL, -- storage.NewArchiveID: sortable, unguessable
	with_bare     text COLLATE "C" NOT NULL,
	with_resource text             NOT NULL,
	origin_id     text             NOT NULL, -- '' when the sender gave none
	from_full     text             NOT NULL,
	raw           bytea            NOT NULL,
	PRIMARY KEY (owner, id, ts)
) PARTITION BY RANGE (ts);

CREATE UNIQUE INDEX archive_keyset ON archive (owner, ts, id);
CREATE INDEX archive_by_with ON archive (owner, with_bare, ts, id);
CREATE INDEX archive_by_origin ON archive (owner, origin_id, ts) WHERE origin_id <> '';
CREATE INDEX archive_by_ts ON archive (ts); -- retention

CREATE TABLE archive_default PARTITION OF archive DEFAULT;

-- One partition for every month that has messages.
DO $$
DECLARE
	m timestamp;
BEGIN
	FOR m IN SELECT DISTINCT date_trunc('month', ts AT TIME ZONE 'UTC') FROM archive_unpartitioned LOOP
		EXECUTE format('CREATE TABLE %I PARTITION OF archive FOR VALUES FROM (%L) TO (%L)',
			'archive_p' || to_char(m, 'YYYYMM'),
			to_char(m, 'YYYY-MM-DD HH24:MI:SS') || '+00',
			to_char(m + interval '1 month', 'YYYY-MM-DD HH24:MI:SS') || '+00');
	END LOOP;
END $$;

INSERT INTO archive (owner, ts, id, with_bare, with_resource, origin_id, from_full, raw)
	SELECT owner, ts, id, with_bare, with_resource, origin_id, from_full, raw FROM archive_unpartitioned;

DROP TABLE archive_unpartitioned;
