-- Durable XEP-0357 notification queue: one row per publish waiting for a
-- delivery attempt to an App Server.
CREATE TABLE push_jobs (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner       text COLLATE "C" NOT NULL,
	jid         text COLLATE "C" NOT NULL,
	node        text COLLATE "C" NOT NULL,
	reg_created timestamptz NOT NULL,
	payload     bytea NOT NULL, -- serialized publish IQ
	due         timestamptz NOT NULL,
	attempts    integer NOT NULL DEFAULT 0,
	created     timestamptz NOT NULL
);
CREATE INDEX push_jobs_due ON push_jobs (due, id);
CREATE INDEX push_jobs_owner ON push_jobs (owner);
