-- XEP-0484 FAST tokens: per account and client (XEP-0388 user-agent id),
-- the token last used (cur_*) and the token last issued and not used yet
-- (new_*). Only the digest that verifies a token is kept. Tokens are
-- credentials: they go with the account (ON DELETE CASCADE), and
-- SetCredentials deletes them.
CREATE TABLE fast_tokens (
	owner      TEXT    NOT NULL REFERENCES accounts (bare) ON DELETE CASCADE,
	client_id  TEXT    NOT NULL,
	software   TEXT    NOT NULL,
	device     TEXT    NOT NULL,
	cur_digest BLOB,
	cur_mech   TEXT,
	cur_issued INTEGER, -- Unix microseconds
	cur_expiry INTEGER,
	new_digest BLOB,
	new_mech   TEXT,
	new_issued INTEGER,
	new_expiry INTEGER,
	PRIMARY KEY (owner, client_id)
) WITHOUT ROWID;
