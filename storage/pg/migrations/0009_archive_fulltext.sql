-- XEP-0431 full-text search of the archive. archive.fts holds the
-- tsvector (text search configuration 'simple': lower-cased words, no
-- stemming, any language) of a message's searchable text, NULL for
-- everything else; a GIN index serves the searches.
--
-- Searchable text is the plain <body/> text of a message that is not
-- end-to-end encrypted. A message that mentions an encryption namespace
-- (OMEMO in both namespaces, OpenPGP, legacy PGP, XEP-0380) or has an
-- element named encrypted, openpgp or encryption is never indexed. The
-- SQLite backend applies the same rules (storage/sqlite/fulltext.go).
-- Bodies with markup inside (CDATA, comments) are not indexed.
--
-- parley_archive_fts never raises an error, so indexing can never make an
-- insert fail. A BEFORE INSERT trigger fills the column, whoever inserts.

ALTER TABLE archive ADD COLUMN fts tsvector;

CREATE FUNCTION parley_archive_fts(raw bytea) RETURNS tsvector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
	t     text;
	body  text := '';
	m     text[];
BEGIN
	-- Cheap tests first, on the bytes: '<body' and a namespace.
	IF position('\x3c626f6479'::bytea IN raw) = 0 THEN
		RETURN NULL;
	END IF;
	BEGIN
		t := convert_from(raw, 'UTF8');
		IF strpos(t, 'eu.siacs.conversations.axolotl') > 0 OR strpos(t, 'urn:xmpp:omemo:') > 0
			OR strpos(t, 'urn:xmpp:openpgp:') > 0 OR strpos(t, 'jabber:x:encrypted') > 0
			OR strpos(t, 'urn:xmpp:eme:') > 0
			OR t ~ '<([^\s<>/:!?]+:)?(encrypted|openpgp|encryption)[\s/>]'
			OR t !~ '^\s*<message[\s/>]' THEN
			RETURN NULL;
		END IF;
		FOR m IN SELECT regexp_matches(t, '<body(?:\s[^>]*)?>([^<]*)</body>', 'g') LOOP
			body := body || E'\n' || m[1];
		END LOOP;
		body := btrim(replace(replace(replace(replace(replace(body,
			'&lt;', '<'), '&gt;', '>'), '&quot;', '"'), '&apos;', ''''), '&amp;', '&'), E' \t\r\n');
		IF body = '' THEN
			RETURN NULL;
		END IF;
		RETURN to_tsvector('simple', body);
	EXCEPTION WHEN OTHERS THEN
		RETURN NULL; -- not UTF-8, too long for a tsvector, …
	END;
END
$fn$;

-- The trigger function names parley_archive_fts with this schema, so it
-- works whatever the search_path of the session that inserts.
DO $do$
BEGIN
	EXECUTE format($f$
		CREATE FUNCTION parley_archive_fts_row() RETURNS trigger LANGUAGE plpgsql AS $body$
		BEGIN
			NEW.fts := %I.parley_archive_fts(NEW.raw);
			RETURN NEW;
		END
		$body$$f$, current_schema());
END
$do$;

CREATE TRIGGER archive_fts BEFORE INSERT OR UPDATE OF raw ON archive
	FOR EACH ROW EXECUTE FUNCTION parley_archive_fts_row();

-- Index the messages archived so far, then build the index (on every
-- partition; partitions created later get it when they are attached).
UPDATE archive SET fts = parley_archive_fts(raw) WHERE position('\x3c626f6479'::bytea IN raw) > 0;
CREATE INDEX archive_fts ON archive USING gin (fts);
