-- XEP-0484 FAST tokens: per account and client (XEP-0388 user-agent id),
-- the token last used (cur_*) and the token last issued and not used yet
-- (new_*). Only the digest that verifies a token is kept. Tokens are
-- credentials: they go with the account (ON DELETE CASCADE), and
-- SetCredentials deletes them.
CREATE TABLE fast_tokens (
	owner      text COLLATE "C" NOT NULL REFERENCES accounts (bare) ON DELETE CASCADE,
	client_id  text COLLATE "C" NOT NULL,
	software   text NOT NULL,
	device     text NOT NULL,
	cur_digest bytea,
	cur_mech   text,
	cur_issued timestamptz,
	cur_expiry timestamptz,
	new_digest bytea,
	new_mech   text,
	new_issued timestamptz,
	new_expiry timestamptz,
	PRIMARY KEY (owner, client_id)
);
