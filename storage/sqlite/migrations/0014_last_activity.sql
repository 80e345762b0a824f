-- XEP-0012 last activity: when each user last went offline, and the
-- status text of that unavailable presence. Goes with the account.
CREATE TABLE last_activity (
	owner  TEXT    PRIMARY KEY REFERENCES accounts (bare) ON DELETE CASCADE,
	stamp  INTEGER NOT NULL, -- Unix microseconds
	status TEXT    NOT NULL
) WITHOUT ROWID;
