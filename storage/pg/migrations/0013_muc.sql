-- XEP-0045 multi-user chat: persistent rooms and their affiliations. Room
-- messages live in the archive (owner = room JID), room vCards in vcards.
CREATE TABLE muc_rooms (
	jid        text COLLATE "C" PRIMARY KEY,
	service    text COLLATE "C" NOT NULL, -- domain part of jid
	name       text        NOT NULL,
	public     boolean     NOT NULL,
	config     bytea       NOT NULL, -- encoded by the muc module
	subject    text        NOT NULL,
	subject_by text        NOT NULL,
	subject_at timestamptz NOT NULL,
	created    timestamptz NOT NULL
);

CREATE INDEX muc_rooms_by_service ON muc_rooms (service, jid);

CREATE TABLE muc_affiliations (
	room        text COLLATE "C" NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE,
	jid         text COLLATE "C" NOT NULL,
	affiliation text NOT NULL,
	nick        text NOT NULL,
	last_nick   text NOT NULL,
	reason      text NOT NULL,
	notify      text NOT NULL,
	PRIMARY KEY (room, jid)
);

CREATE INDEX muc_affiliations_by_jid ON muc_affiliations (jid, room);
