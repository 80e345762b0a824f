-- XEP-0163 personal eventing: nodes per account and their items.
CREATE TABLE pep_nodes (
	owner   TEXT    NOT NULL,
	node    TEXT    NOT NULL,
	config  TEXT    NOT NULL, -- JSON object: field name -> array of values
	created INTEGER NOT NULL, -- Unix microseconds
	PRIMARY KEY (owner, node)
);

CREATE TABLE pep_items (
	owner     TEXT    NOT NULL,
	node      TEXT    NOT NULL,
	id        TEXT    NOT NULL,
	seq       INTEGER NOT NULL, -- publication order within the node
	payload   BLOB    NOT NULL, -- raw XML, byte for byte
	publisher TEXT    NOT NULL,
	stamp     INTEGER NOT NULL, -- Unix microseconds
	PRIMARY KEY (owner, node, id),
	FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
);

CREATE INDEX pep_items_seq ON pep_items (owner, node, seq);
