package muc

import (
	"context"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// histEntry is one message of the discussion history (§7.2.13): the
// message as it was broadcast, without 'to'.
type histEntry struct {
	st *wire.Stanza
	at time.Time
}

// loadHistory fills the history of a stored room from its archive.
func (r *room) loadHistory(ctx context.Context) {
	n := r.cfg.HistoryLength
	if n <= 0 || !r.cfg.Archive {
		return
	}
	page, err := r.m.store.QueryArchive(ctx, r.key, storage.ArchiveQuery{Last: true, Max: n})
	if err != nil {
		r.m.log.Warn("muc: loading history", "room", r.key, "err", err)
		return
	}
	for _, msg := range page.Messages {
		st, err := wire.Parse(msg.Raw, wire.Limits{MaxStanzaBytes: len(msg.Raw) + 1})
		if err != nil || st.Child(NSRetract, "retracted") != nil {
			continue // unreadable rows and tombstones are not history
		}
		if st.Child(xep.NSSID, "stanza-id") == nil {
			st = st.WithChild(wire.NewElement(xep.NSSID, "stanza-id", "id", msg.ID, "by", r.key))
		}
		r.history = append(r.history, histEntry{st: st, at: msg.Timestamp})
	}
}

// historyRequest is the <history/> of a join (§7.2.14).
type historyRequest struct {
	maxStanzas int // -1: not given
	maxChars   int
	since      time.Time
}

func parseHistory(mucX *wire.Element, limit int) historyRequest {
	h := historyRequest{maxStanzas: limit, maxChars: -1}
	hist := mucX.Child(NS, "history")
	if hist == nil {
		return h
	}
	if v, err := strconv.Atoi(strings.TrimSpace(hist.AttrValue("maxstanzas"))); err == nil && v >= 0 {
		h.maxStanzas = min(v, limit)
	}
	if v, err := strconv.Atoi(strings.TrimSpace(hist.AttrValue("maxchars"))); err == nil && v >= 0 {
		h.maxChars = v
	}
	if v, err := strconv.Atoi(strings.TrimSpace(hist.AttrValue("seconds"))); err == nil && v >= 0 {
		h.since = time.Now().Add(-time.Duration(v) * time.Second)
	}
	if v := hist.AttrValue("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil && t.After(h.since) {
			h.since = t
		}
	}
	return h
}

// sendHistory sends the messages a joining session asked for, oldest
// first, each with a delay stamp (§7.2.13).
func (r *room) sendHistory(to jid.JID, mucX *wire.Element) {
	if len(r.history) == 0 {
		return
	}
	req := parseHistory(mucX, len(r.history))
	var picked []histEntry
	chars := 0
	for i := len(r.history) - 1; i >= 0 && len(picked) < req.maxStanzas; i-- {
		e := r.history[i]
		if !req.since.IsZero() && !e.at.After(req.since) {
			break
		}
		// maxchars counts the whole stanza as sent (§7.2.14).
		if req.maxChars >= 0 {
			chars += len(e.st.Raw)
			if chars > req.maxChars {
				break
			}
		}
		picked = append(picked, e)
	}
	delay := func(at time.Time) *wire.Element {
		return wire.NewElement(xep.NSDelay, "delay", "from", r.key, "stamp", xep.DateTime(at))
	}
	for i := len(picked) - 1; i >= 0; i-- {
		e := picked[i]
		r.m.send(e.st.WithChild(delay(e.at)).WithAttr("to", to.String()))
	}
}
