-- Invitations (XEP-0401/0445), run-time roles, server settings and HTTP
-- admin API tokens. Tokens are kept only as SHA-256 hashes.
CREATE TABLE invites (
	id         TEXT    PRIMARY KEY,
	token_hash BLOB    NOT NULL UNIQUE,
	domain     TEXT    NOT NULL,
	username   TEXT    NOT NULL, -- reserved localpart, '' when the invitee chooses
	owner      TEXT    NOT NULL, -- inviter's bare JID, '' for operator invitations
	admin      INTEGER NOT NULL,
	created    INTEGER NOT NULL, -- Unix microseconds
	expires    INTEGER NOT NULL, -- Unix microseconds, 0: never
	uses_left  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX invites_owner ON invites (owner);
CREATE INDEX invites_domain ON invites (domain, created);

CREATE TABLE account_roles (
	owner TEXT NOT NULL,
	role  TEXT NOT NULL,
	PRIMARY KEY (owner, role)
) WITHOUT ROWID;
CREATE INDEX account_roles_role ON account_roles (role, owner);

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE api_tokens (
	id         TEXT    PRIMARY KEY,
	token_hash BLOB    NOT NULL UNIQUE,
	name       TEXT    NOT NULL,
	created    INTEGER NOT NULL -- Unix microseconds
) WITHOUT ROWID;
