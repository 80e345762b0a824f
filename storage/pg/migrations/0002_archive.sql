-- XEP-0313 message archive. Rows are ordered by (ts, id) within an owner;
-- queries page on that key (keyset paging), never by OFFSET.
CREATE TABLE archive (
	owner         text COLLATE "C" NOT NULL,
	ts            timestamptz      NOT NULL,
	id            text COLLATE "C" NOT NULL, -- storage.NewArchiveID: sortable, unguessable
	with_bare     text COLLATE "C" NOT NULL,
	with_resource text             NOT NULL,
	origin_id     text             NOT NULL, -- '' when the sender gave none
	from_full     text             NOT NULL,
	raw           bytea            NOT NULL,
	PRIMARY KEY (owner, id)
);

CREATE UNIQUE INDEX archive_keyset ON archive (owner, ts, id);
CREATE INDEX archive_by_with ON archive (owner, with_bare, ts, id);
CREATE INDEX archive_by_origin ON archive (owner, origin_id, ts) WHERE origin_id <> '';
CREATE INDEX archive_by_ts ON archive (ts); -- retention

CREATE TABLE archive_prefs (
	owner  text COLLATE "C" PRIMARY KEY,
	dflt   text   NOT NULL,
	always text[] NOT NULL, -- in the order given
	never  text[] NOT NULL  -- in the order given
);
