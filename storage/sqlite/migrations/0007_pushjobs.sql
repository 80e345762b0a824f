-- Durable XEP-0357 notification queue: one row per publish waiting for a
-- delivery attempt to an App Server.
CREATE TABLE push_jobs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	owner       TEXT    NOT NULL,
	jid         TEXT    NOT NULL,
	node        TEXT    NOT NULL,
	reg_created INTEGER NOT NULL, -- Unix microseconds
	payload     BLOB    NOT NULL, -- serialized publish IQ
	due         INTEGER NOT NULL, -- Unix microseconds
	attempts    INTEGER NOT NULL DEFAULT 0,
	created     INTEGER NOT NULL  -- Unix microseconds
);
CREATE INDEX push_jobs_due ON push_jobs (due, id);
CREATE INDEX push_jobs_owner ON push_jobs (owner);
