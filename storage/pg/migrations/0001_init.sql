-- Parley's initial schema. Owners are normalized bare JIDs; tables other
-- than credentials do not reference accounts, so per-user data also works
-- for users authenticated elsewhere. DeleteAccount clears them explicitly.
--
-- Keys use the "C" collation: byte order, the order storage/sqlite sorts
-- in, whatever collation the database was created with (and cheaper to
-- compare).

CREATE TABLE accounts (
	bare   text COLLATE "C" PRIMARY KEY,
	domain text COLLATE "C" NOT NULL
);

CREATE INDEX accounts_by_domain ON accounts (domain, bare);

CREATE TABLE credentials (
	bare       text COLLATE "C" NOT NULL REFERENCES accounts (bare) ON DELETE CASCADE,
	pos        integer NOT NULL, -- keeps the caller's order
	hash       text    NOT NULL,
	salt       bytea   NOT NULL,
	iterations integer NOT NULL,
	stored_key bytea   NOT NULL,
	server_key bytea   NOT NULL,
	PRIMARY KEY (bare, pos)
);

CREATE TABLE roster_items (
	owner        text COLLATE "C" NOT NULL,
	contact      text COLLATE "C" NOT NULL,
	name         text    NOT NULL,
	subscription text    NOT NULL,
	ask          boolean NOT NULL,
	approved     boolean NOT NULL,
	groups       text[]  NOT NULL, -- in the caller's order
	PRIMARY KEY (owner, contact)
);

-- One counter per roster (XEP-0237). A new counter starts at the
-- database clock in milliseconds, so a roster re-created after its
-- account was deleted never hands out an old version again.
CREATE TABLE roster_versions (
	owner text COLLATE "C" PRIMARY KEY,
	ver   bigint NOT NULL
);

CREATE TABLE pending_in (
	owner   text COLLATE "C" NOT NULL,
	contact text COLLATE "C" NOT NULL,
	raw     bytea       NOT NULL,
	stamp   timestamptz NOT NULL,
	PRIMARY KEY (owner, contact)
);

-- An identity column never hands out an ID twice: clients acknowledge
-- messages by ID (DeleteOffline upTo), and a reused ID could delete a
-- message stored after the acknowledgement was computed.
CREATE TABLE offline (
	id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner text COLLATE "C" NOT NULL,
	raw   bytea       NOT NULL,
	stamp timestamptz NOT NULL
);

CREATE INDEX offline_by_owner ON offline (owner, id);

CREATE TABLE vcards (
	owner text COLLATE "C" PRIMARY KEY,
	raw   bytea NOT NULL
);

-- seq keeps the order JIDs were blocked in.
CREATE TABLE blocklist (
	owner text COLLATE "C" NOT NULL,
	jid   text COLLATE "C" NOT NULL,
	seq   bigint GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (owner, jid)
);
