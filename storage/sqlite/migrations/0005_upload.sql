-- XEP-0363 HTTP upload slots and file metadata; the files live in
-- data_dir/upload under the id.
CREATE TABLE uploads (
	id           TEXT    PRIMARY KEY,
	owner        TEXT    NOT NULL,
	filename     TEXT    NOT NULL,
	size         INTEGER NOT NULL,
	content_type TEXT    NOT NULL,
	state        INTEGER NOT NULL, -- 0 pending, 1 in progress, 2 complete
	created      INTEGER NOT NULL, -- Unix microseconds
	expires      INTEGER NOT NULL, -- Unix microseconds: PUT deadline
	completed    INTEGER           -- Unix microseconds; NULL until complete
);
CREATE INDEX uploads_owner ON uploads (owner, created);
CREATE INDEX uploads_completed ON uploads (state, completed);
