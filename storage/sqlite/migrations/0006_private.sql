-- XEP-0049 private XML storage: one element per owner and namespace.
CREATE TABLE private_xml (
	owner TEXT NOT NULL,
	ns    TEXT NOT NULL,
	raw   BLOB NOT NULL,
	PRIMARY KEY (owner, ns)
) WITHOUT ROWID;
