-- XEP-0363 HTTP upload slots and file metadata; the files live in the
-- upload module's blob store under the id.
CREATE TABLE uploads (
	id           text COLLATE "C" PRIMARY KEY,
	owner        text COLLATE "C" NOT NULL,
	filename     text        NOT NULL,
	size         bigint      NOT NULL,
	content_type text        NOT NULL,
	state        smallint    NOT NULL, -- 0 pending, 1 in progress, 2 complete
	created      timestamptz NOT NULL,
	expires      timestamptz NOT NULL, -- PUT deadline
	completed    timestamptz           -- NULL until complete
);
CREATE INDEX uploads_owner ON uploads (owner, created);
CREATE INDEX uploads_completed ON uploads (state, completed);
