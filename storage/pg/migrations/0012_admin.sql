-- Invitations (XEP-0401/0445), run-time roles, server settings and HTTP
-- admin API tokens. Tokens are kept only as SHA-256 hashes.
CREATE TABLE invites (
	id         text COLLATE "C" PRIMARY KEY,
	token_hash bytea NOT NULL UNIQUE,
	domain     text COLLATE "C" NOT NULL,
	username   text COLLATE "C" NOT NULL, -- reserved localpart, '' when the invitee chooses
	owner      text COLLATE "C" NOT NULL, -- inviter's bare JID, '' for operator invitations
	admin      boolean NOT NULL,
	created    timestamptz NOT NULL,
	expires    timestamptz,               -- NULL: never
	uses_left  integer NOT NULL
);
CREATE INDEX invites_owner ON invites (owner);
CREATE INDEX invites_domain ON invites (domain, created);

CREATE TABLE account_roles (
	owner text COLLATE "C" NOT NULL,
	role  text COLLATE "C" NOT NULL,
	PRIMARY KEY (owner, role)
);
CREATE INDEX account_roles_role ON account_roles (role, owner);

CREATE TABLE settings (
	key   text COLLATE "C" PRIMARY KEY,
	value text NOT NULL
);

CREATE TABLE api_tokens (
	id         text COLLATE "C" PRIMARY KEY,
	token_hash bytea NOT NULL UNIQUE,
	name       text NOT NULL,
	created    timestamptz NOT NULL
);
