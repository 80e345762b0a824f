-- XEP-0045 multi-user chat: persistent rooms and their affiliations. Room
-- messages live in the archive (owner = room JID), room vCards in vcards.
CREATE TABLE muc_rooms (
	jid        TEXT    PRIMARY KEY,
	service    TEXT    NOT NULL, -- domain part of jid
	name       TEXT    NOT NULL,
	public     INTEGER NOT NULL,
	config     BLOB    NOT NULL, -- encoded by the muc module
	subject    TEXT    NOT NULL,
	subject_by TEXT    NOT NULL,
	subject_at INTEGER NOT NULL, -- Unix microseconds
	created    INTEGER NOT NULL  -- Unix microseconds
) WITHOUT ROWID;

CREATE INDEX muc_rooms_by_service ON muc_rooms (service, jid);

CREATE TABLE muc_affiliations (
	room        TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
	jid         TEXT NOT NULL,
	affiliation TEXT NOT NULL,
	nick        TEXT NOT NULL,
	last_nick   TEXT NOT NULL,
	reason      TEXT NOT NULL,
	notify      TEXT NOT NULL,
	PRIMARY KEY (room, jid)
) WITHOUT ROWID;

CREATE INDEX muc_affiliations_by_jid ON muc_affiliations (jid, room);
