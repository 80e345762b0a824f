-- XEP-0049 private XML storage: one element per owner and namespace.
CREATE TABLE private_xml (
	owner text COLLATE "C" NOT NULL,
	ns    text COLLATE "C" NOT NULL,
	raw   bytea NOT NULL,
	PRIMARY KEY (owner, ns)
);
