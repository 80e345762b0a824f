-- XEP-0163 personal eventing: nodes per account and their items.
CREATE TABLE pep_nodes (
	owner   text COLLATE "C" NOT NULL,
	node    text COLLATE "C" NOT NULL,
	config  jsonb       NOT NULL, -- field name -> array of values
	created timestamptz NOT NULL,
	PRIMARY KEY (owner, node)
);

-- seq orders items by publication. Publishing locks the node row, so one
-- node's items get their seq in commit order.
CREATE TABLE pep_items (
	owner     text COLLATE "C" NOT NULL,
	node      text COLLATE "C" NOT NULL,
	id        text COLLATE "C" NOT NULL,
	seq       bigint GENERATED ALWAYS AS IDENTITY,
	payload   bytea       NOT NULL, -- raw XML, byte for byte
	publisher text        NOT NULL,
	stamp     timestamptz NOT NULL,
	PRIMARY KEY (owner, node, id),
	FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
);

CREATE INDEX pep_items_seq ON pep_items (owner, node, seq);
