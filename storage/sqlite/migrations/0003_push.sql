-- XEP-0357 push registrations: one row per (owner, App Server JID, node).
CREATE TABLE push_registrations (
	owner   TEXT    NOT NULL,
	jid     TEXT    NOT NULL,
	node    TEXT    NOT NULL,
	form    BLOB,             -- raw publish-options data form; NULL when none
	created INTEGER NOT NULL, -- Unix microseconds
	PRIMARY KEY (owner, jid, node)
);
