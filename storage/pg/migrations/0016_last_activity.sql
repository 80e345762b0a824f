-- XEP-0012 last activity: when each user last went offline, and the
-- status text of that unavailable presence. Goes with the account.
CREATE TABLE last_activity (
	owner  text COLLATE "C" PRIMARY KEY REFERENCES accounts (bare) ON DELETE CASCADE,
	stamp  timestamptz NOT NULL,
	status text NOT NULL
);
