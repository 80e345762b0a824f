-- Abuse tooling and quotas (issue 16): account suspensions, XEP-0377 spam
-- reports, per-account settings the server enforces, and per-account byte
-- usage kept current by triggers in the same transaction as every write.

CREATE TABLE account_suspensions (
	owner  TEXT    PRIMARY KEY,
	reason TEXT    NOT NULL,
	by     TEXT    NOT NULL,
	since  INTEGER NOT NULL, -- Unix microseconds
	until  INTEGER NOT NULL  -- Unix microseconds, 0: until lifted
) WITHOUT ROWID;

CREATE TABLE spam_reports (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	owner      TEXT    NOT NULL, -- the reporter
	reported   TEXT    NOT NULL,
	reason     TEXT    NOT NULL,
	text       TEXT    NOT NULL,
	stanza_ids TEXT    NOT NULL, -- JSON array of strings
	created    INTEGER NOT NULL  -- Unix microseconds
);
CREATE INDEX spam_reports_reported ON spam_reports (reported, created);
CREATE INDEX spam_reports_owner ON spam_reports (owner);

CREATE TABLE account_settings (
	owner TEXT NOT NULL,
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (owner, key)
) WITHOUT ROWID;

-- Bytes of raw XML per owner and kind (offline, private, pep, archive).
CREATE TABLE account_usage (
	owner TEXT    NOT NULL,
	kind  TEXT    NOT NULL,
	bytes INTEGER NOT NULL,
	PRIMARY KEY (owner, kind)
) WITHOUT ROWID;

INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'offline', SUM(length(CAST(raw AS BLOB))) FROM offline GROUP BY owner;
INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'private', SUM(length(CAST(raw AS BLOB))) FROM private_xml GROUP BY owner;
INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'pep', SUM(length(CAST(payload AS BLOB))) FROM pep_items GROUP BY owner;
INSERT INTO account_usage (owner, kind, bytes)
	SELECT owner, 'archive', SUM(length(CAST(raw AS BLOB))) FROM archive GROUP BY owner;

CREATE TRIGGER usage_offline_insert AFTER INSERT ON offline BEGIN
	INSERT INTO account_usage (owner, kind, bytes) VALUES (NEW.owner, 'offline', length(CAST(NEW.raw AS BLOB)))
		ON CONFLICT (owner, kind) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER usage_offline_delete AFTER DELETE ON offline BEGIN
	UPDATE account_usage SET bytes = bytes - length(CAST(OLD.raw AS BLOB)) WHERE owner = OLD.owner AND kind = 'offline';
END;

CREATE TRIGGER usage_private_insert AFTER INSERT ON private_xml BEGIN
	INSERT INTO account_usage (owner, kind, bytes) VALUES (NEW.owner, 'private', length(CAST(NEW.raw AS BLOB)))
		ON CONFLICT (owner, kind) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER usage_private_update AFTER UPDATE OF raw ON private_xml BEGIN
	UPDATE account_usage SET bytes = bytes - length(CAST(OLD.raw AS BLOB)) + length(CAST(NEW.raw AS BLOB))
		WHERE owner = NEW.owner AND kind = 'private';
END;
CREATE TRIGGER usage_private_delete AFTER DELETE ON private_xml BEGIN
	UPDATE account_usage SET bytes = bytes - length(CAST(OLD.raw AS BLOB)) WHERE owner = OLD.owner AND kind = 'private';
END;

CREATE TRIGGER usage_pep_insert AFTER INSERT ON pep_items BEGIN
	INSERT INTO account_usage (owner, kind, bytes) VALUES (NEW.owner, 'pep', length(CAST(NEW.payload AS BLOB)))
		ON CONFLICT (owner, kind) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER usage_pep_update AFTER UPDATE OF payload ON pep_items BEGIN
	UPDATE account_usage SET bytes = bytes - length(CAST(OLD.payload AS BLOB)) + length(CAST(NEW.payload AS BLOB))
		WHERE owner = NEW.owner AND kind = 'pep';
END;
CREATE TRIGGER usage_pep_delete AFTER DELETE ON pep_items BEGIN
	UPDATE account_usage SET bytes = bytes - length(CAST(OLD.payload AS BLOB)) WHERE owner = OLD.owner AND kind = 'pep';
END;

CREATE TRIGGER usage_archive_insert AFTER INSERT ON archive BEGIN
	INSERT INTO account_usage (owner, kind, bytes) VALUES (NEW.owner, 'archive', length(CAST(NEW.raw AS BLOB)))
		ON CONFLICT (owner, kind) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER usage_archive_delete AFTER DELETE ON archive BEGIN
	UPDATE account_usage SET bytes = bytes - length(CAST(OLD.raw AS BLOB)) WHERE owner = OLD.owner AND kind = 'archive';
END;
