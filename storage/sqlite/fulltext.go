package sqlite

// Full-text search of the archive (XEP-0431). Migration 0008 keeps an FTS5
// index of the archive up to date with triggers: each archived message
// whose searchable text (searchText) is not NULL gets a row in
// archive_fts_docs (docid ↔ owner, id) and the same docid in the
// contentless FTS5 table archive_fts. The triggers call the Go function
// parley_fts_text registered below, so only a process that imports this
// package can insert into the archive (the sqlite3 shell can still read
// and delete).

import (
	"bytes"
	"database/sql/driver"
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"

	sqlitedrv "modernc.org/sqlite"
)

// ftsFunction is the SQL name of searchText.
const ftsFunction = "parley_fts_text"

func init() {
	sqlitedrv.MustRegisterDeterministicScalarFunction(ftsFunction, 1, ftsText)
}

// ftsText is the SQL function: the searchable text of a raw stanza, or
// NULL. It never fails, so it can never make an insert fail.
func ftsText(_ *sqlitedrv.FunctionContext, args []driver.Value) (driver.Value, error) {
	var raw []byte
	switch v := args[0].(type) {
	case []byte:
		raw = v
	case string:
		raw = []byte(v)
	default:
		return nil, nil
	}
	if text, ok := ftsCache.text(raw); ok {
		return text, nil
	}
	return nil, nil
}

// ftsCache remembers the last result: the insert trigger asks twice for
// the same row (in its WHEN and in its body).
var ftsCache lastText

type lastText struct {
	mu   sync.Mutex
	raw  []byte
	out  string
	ok   bool
	full bool
}

func (c *lastText) text(raw []byte) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.full && bytes.Equal(c.raw, raw) {
		return c.out, c.ok
	}
	c.out, c.ok = searchText(raw)
	c.raw, c.full = append(c.raw[:0], raw...), true
	return c.out, c.ok
}

// notSearchable are byte strings whose presence anywhere in a stanza
// keeps it out of the index: the namespaces of end-to-end encryption
// (OMEMO in both namespaces, OpenPGP for XMPP, legacy PGP) and of
// XEP-0380 encryption markers. Such a message's <body/> is at most a
// fallback text, and whatever it is, it must not end up in an index.
// PostgreSQL's migration applies the same list.
var notSearchable = [][]byte{
	[]byte("eu.siacs.conversations.axolotl"),
	[]byte("urn:xmpp:omemo:"),
	[]byte("urn:xmpp:openpgp:"),
	[]byte("jabber:x:encrypted"),
	[]byte("urn:xmpp:eme:"),
}

// encryptedNames are local names of elements that mark a message as
// encrypted whatever their namespace (a prefix declared on the stream
// header would hide the namespace from the check above).
var encryptedNames = []string{"encrypted", "openpgp", "encryption"}

// searchText returns the text to index for an archived stanza: the
// <body/> children of a <message/>, joined by newlines. It returns false
// for anything else: no body, a stanza that does not parse, and every
// message that is or claims to be end-to-end encrypted.
func searchText(raw []byte) (string, bool) {
	for _, ns := range notSearchable {
		if bytes.Contains(raw, ns) {
			return "", false
		}
	}
	dec := xml.NewDecoder(bytes.NewReader(raw))
	var bodies []string
	var body *strings.Builder // inside a top-level <body/>
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1 && t.Name.Local != "message":
				return "", false
			case slices.Contains(encryptedNames, t.Name.Local):
				return "", false
			case depth == 2 && t.Name.Local == "body" && clientNS(t.Name.Space):
				body = new(strings.Builder)
			}
		case xml.EndElement:
			if depth == 2 && body != nil {
				bodies = append(bodies, body.String())
				body = nil
			}
			depth--
		case xml.CharData:
			if body != nil {
				body.Write(t)
			}
		}
	}
	text := strings.TrimSpace(strings.Join(bodies, "\n"))
	return text, text != ""
}

// clientNS: a stored stanza usually relies on the stream's default
// namespace.
func clientNS(ns string) bool {
	return ns == "" || ns == "jabber:client" || ns == "jabber:server"
}

// ftsQuery turns a user's search text into an FTS5 query: every
// whitespace-separated word must occur (each is quoted, so FTS5 operators
// and punctuation in it have no special meaning; a word FTS5 splits, such
// as "o'clock", must occur as that phrase).
func ftsQuery(text string) string {
	words := strings.Fields(text)
	for i, w := range words {
		words[i] = `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
	}
	return strings.Join(words, " ")
}

// fulltextFilter is the QueryArchive condition for ArchiveQuery.Fulltext.
func fulltextFilter(owner, text string) (string, []any) {
	q := ftsQuery(text)
	if q == "" {
		return "0", nil
	}
	return `id IN (SELECT d.id FROM archive_fts f JOIN archive_fts_docs d ON d.docid = f.rowid
		WHERE archive_fts MATCH ? AND d.owner = ?)`, []any{q, owner}
}
