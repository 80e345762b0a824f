package sqlite

// Full-text search of the archive (XEP-0431). Migration 0008 keeps an FTS5
// index of the archive up to date with triggers: each archived message
// whose searchable text (searchText) is not NULL gets a row in
// archive_fts_docs (docid ↔ owner, id) and the same docid in the
// contentless FTS5 table archive_fts. The triggers call the Go function
// parley_fts_text registered below, so only a process that imports this
// package can insert into the archive (the sqlite3 shell can still read
// and delete).
//
// The index is kept only while full-text search is on (Options.Fulltext,
// migration 0009): with it off the triggers do not exist, and turning it
// on again rebuilds the index at Open.

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	sqlitedrv "modernc.org/sqlite"

	"github.com/parley-xmpp/parley/storage"
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
// for anything else: no body, a stanza that does not parse, every
// message that is or claims to be end-to-end encrypted, and a stanza
// larger than storage.MaxFulltextBytes.
func searchText(raw []byte) (string, bool) {
	if len(raw) > storage.MaxFulltextBytes {
		return "", false
	}
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

// The triggers of migration 0008, dropped while full-text search is off
// (migration 0009): without them an archive insert costs nothing for the
// index.
var ftsTriggers = []string{
	`CREATE TRIGGER IF NOT EXISTS archive_fts_insert AFTER INSERT ON archive
WHEN parley_fts_text(new.raw) IS NOT NULL
BEGIN
	INSERT INTO archive_fts_docs (owner, id) VALUES (new.owner, new.id);
	INSERT INTO archive_fts (rowid, body) VALUES (last_insert_rowid(), parley_fts_text(new.raw));
END`,
	`CREATE TRIGGER IF NOT EXISTS archive_fts_delete AFTER DELETE ON archive
BEGIN
	DELETE FROM archive_fts WHERE rowid =
		(SELECT docid FROM archive_fts_docs WHERE owner = old.owner AND id = old.id);
	DELETE FROM archive_fts_docs WHERE owner = old.owner AND id = old.id;
END`,
	`CREATE TRIGGER IF NOT EXISTS archive_fts_update AFTER UPDATE OF owner, id, raw ON archive
BEGIN
	DELETE FROM archive_fts WHERE rowid =
		(SELECT docid FROM archive_fts_docs WHERE owner = old.owner AND id = old.id);
	DELETE FROM archive_fts_docs WHERE owner = old.owner AND id = old.id;
	INSERT INTO archive_fts_docs (owner, id)
		SELECT new.owner, new.id WHERE parley_fts_text(new.raw) IS NOT NULL;
	INSERT INTO archive_fts (rowid, body)
		SELECT docid, parley_fts_text(new.raw) FROM archive_fts_docs
		WHERE owner = new.owner AND id = new.id;
END`,
}

var ftsDropTriggers = []string{
	`DROP TRIGGER IF EXISTS archive_fts_insert`,
	`DROP TRIGGER IF EXISTS archive_fts_delete`,
	`DROP TRIGGER IF EXISTS archive_fts_update`,
}

// ftsRebuildBatch is how many archive rows one rebuild transaction
// covers, so that the single writer is never held for long.
const ftsRebuildBatch = 4000

// setFulltext brings the database to mode (see storage.FulltextIndex).
// Turning indexing on rebuilds the index here, synchronously, before Open
// returns: rebuilding is rare (only after search was off), and a server
// that starts with a complete index never serves partial results.
func (s *Store) setFulltext(ctx context.Context, mode storage.FulltextIndex) error {
	if mode == storage.FulltextKeep {
		return nil
	}
	var enabled, complete bool
	if err := s.w.QueryRowContext(ctx, `SELECT enabled, complete FROM archive_fts_state`).Scan(&enabled, &complete); err != nil {
		return err
	}
	if mode == storage.FulltextOff {
		if !enabled {
			return nil
		}
		return s.write(ctx, func(tx *sql.Tx) error {
			for _, q := range ftsDropTriggers {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, `UPDATE archive_fts_state SET enabled = 0, complete = 0`)
			return err
		})
	}
	if enabled && complete {
		return nil
	}
	return s.rebuildFulltext(ctx)
}

// rebuildFulltext clears the index, turns the triggers on (rows inserted
// from then on are indexed by them) and indexes every archived row in
// batches of rowids, oldest first; the last transaction marks the index
// complete. Interrupted, it starts again at the next Open with
// FulltextOn.
func (s *Store) rebuildFulltext(ctx context.Context) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, q := range append([]string{
			`INSERT INTO archive_fts (archive_fts) VALUES ('delete-all')`,
			`DELETE FROM archive_fts_docs`,
			`UPDATE archive_fts_state SET enabled = 1, complete = 0`,
		}, ftsTriggers...) {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("full-text index: %w", err)
	}
	var after int64 // rowid
	for {
		done := false
		err := s.write(ctx, func(tx *sql.Tx) error {
			var last sql.NullInt64
			if err := tx.QueryRowContext(ctx, `SELECT max(rowid) FROM
				(SELECT rowid FROM archive WHERE rowid > ? ORDER BY rowid LIMIT ?)`, after, ftsRebuildBatch).Scan(&last); err != nil {
				return err
			}
			if !last.Valid {
				done = true
				_, err := tx.ExecContext(ctx, `UPDATE archive_fts_state SET complete = 1`)
				return err
			}
			var maxDoc int64
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(docid), 0) FROM archive_fts_docs`).Scan(&maxDoc); err != nil {
				return err
			}
			// A row the triggers have indexed already is skipped.
			if _, err := tx.ExecContext(ctx, `INSERT INTO archive_fts_docs (owner, id)
				SELECT a.owner, a.id FROM archive a WHERE a.rowid > ? AND a.rowid <= ?
				AND parley_fts_text(a.raw) IS NOT NULL
				AND NOT EXISTS (SELECT 1 FROM archive_fts_docs d WHERE d.owner = a.owner AND d.id = a.id)
				ORDER BY a.rowid`, after, last.Int64); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO archive_fts (rowid, body)
				SELECT d.docid, parley_fts_text(a.raw)
				FROM archive_fts_docs d JOIN archive a ON a.owner = d.owner AND a.id = d.id
				WHERE d.docid > ?`, maxDoc); err != nil {
				return err
			}
			after = last.Int64
			return nil
		})
		if err != nil {
			return fmt.Errorf("full-text index: rebuilding: %w", err)
		}
		if done {
			return nil
		}
	}
}

// fulltextAvailable is QueryArchive's check, in its read transaction:
// searching is refused unless the index is kept and complete.
func fulltextAvailable(ctx context.Context, tx *sql.Tx) error {
	var ok bool
	if err := tx.QueryRowContext(ctx, `SELECT enabled AND complete FROM archive_fts_state`).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return storage.ErrFulltextUnavailable
	}
	return nil
}
