-- Parley's initial schema. Owners are normalized bare JIDs; tables other
-- than credentials do not reference accounts, so per-user data also works
-- for users authenticated elsewhere. DeleteAccount clears them explicitly.

CREATE TABLE accounts (
	bare   TEXT PRIMARY KEY,
	domain TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX accounts_by_domain ON accounts (domain, bare);

CREATE TABLE credentials (
	bare       TEXT    NOT NULL REFERENCES accounts (bare) ON DELETE CASCADE,
	pos        INTEGER NOT NULL, -- keeps the caller's order
	hash       TEXT    NOT NULL,
	salt       BLOB    NOT NULL,
	iterations INTEGER NOT NULL,
	stored_key BLOB    NOT NULL,
	server_key BLOB    NOT NULL,
	PRIMARY KEY (bare, pos)
) WITHOUT ROWID;

CREATE TABLE roster_items (
	owner        TEXT    NOT NULL,
	contact      TEXT    NOT NULL,
	name         TEXT    NOT NULL,
	subscription TEXT    NOT NULL,
	ask          INTEGER NOT NULL,
	approved     INTEGER NOT NULL,
	groups       TEXT    NOT NULL, -- JSON array of strings, in order
	PRIMARY KEY (owner, contact)
) WITHOUT ROWID;

CREATE TABLE roster_versions (
	owner TEXT    PRIMARY KEY,
	ver   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE pending_in (
	owner   TEXT    NOT NULL,
	contact TEXT    NOT NULL,
	raw     BLOB    NOT NULL,
	stamp   INTEGER NOT NULL, -- Unix microseconds
	PRIMARY KEY (owner, contact)
) WITHOUT ROWID;

-- AUTOINCREMENT so an ID is never handed out twice: clients acknowledge
-- messages by ID (DeleteOffline upTo), and a reused ID could delete a
-- message stored after the acknowledgement was computed.
CREATE TABLE offline (
	id    INTEGER PRIMARY KEY AUTOINCREMENT,
	owner TEXT    NOT NULL,
	raw   BLOB    NOT NULL,
	stamp INTEGER NOT NULL -- Unix microseconds
);

CREATE INDEX offline_by_owner ON offline (owner, id);

CREATE TABLE vcards (
	owner TEXT PRIMARY KEY,
	raw   BLOB NOT NULL
) WITHOUT ROWID;

-- A rowid table so BlockList can return JIDs in the order they were blocked.
CREATE TABLE blocklist (
	owner TEXT NOT NULL,
	jid   TEXT NOT NULL,
	UNIQUE (owner, jid)
);
