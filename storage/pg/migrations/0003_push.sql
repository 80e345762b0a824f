-- XEP-0357 push registrations: one row per (owner, App Server JID, node).
CREATE TABLE push_registrations (
	owner   text COLLATE "C" NOT NULL,
	jid     text COLLATE "C" NOT NULL,
	node    text COLLATE "C" NOT NULL,
	form    bytea,                -- raw publish-options data form; NULL when none
	created timestamptz NOT NULL,
	PRIMARY KEY (owner, jid, node)
);
