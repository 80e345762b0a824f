package modtest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/parley-xmpp/parley/wire"
)

// fuzzLimits are the c2s defaults a fuzzed request must fit, as it would
// have to on a real stream.
var fuzzLimits = wire.Limits{MaxStanzaBytes: wire.DefaultMaxStanzaBytes, MaxDepth: wire.DefaultMaxDepth, MaxAttrs: wire.DefaultMaxAttrs}

// CheckIQ is the body of an IQ payload fuzz target: it wraps payload (a
// fuzzer's bytes) in <iq type=typ> to 'to' ("" for the sender's own
// account), routes it from s as c2s would, and checks what comes back:
// exactly one result or error with the request's id, an error with an
// RFC 6120 condition, and everything s received well-formed XML. Payloads
// that a stream would not have accepted are skipped.
func (e *Env) CheckIQ(t *testing.T, s *Session, typ, to string, payload []byte) {
	var b bytes.Buffer
	b.WriteString("<iq type='" + typ + "' id='fuzz-iq'")
	if to != "" {
		b.WriteString(" to='" + wire.EscapeAttr(to) + "'")
	}
	b.WriteString(">")
	b.Write(payload)
	b.WriteString("</iq>")
	st, err := wire.Parse(b.Bytes(), fuzzLimits)
	if err != nil {
		return
	}
	if err := e.RouteFrom(s, st); err != nil {
		t.Fatalf("routing %s: %v", st.Raw, err)
	}
	var reply *wire.Stanza
	for _, r := range s.Take() {
		if _, err := wire.Parse(r.Raw, wire.Limits{MaxStanzaBytes: len(r.Raw) + 1, MaxDepth: 64, MaxAttrs: 256}); err != nil {
			t.Fatalf("the server sent malformed XML (%v) for %s:\n%s", err, st.Raw, r.Raw)
		}
		if r.Name != "iq" || r.ID != "fuzz-iq" || (r.Type != "result" && r.Type != "error") {
			continue
		}
		if reply != nil {
			t.Fatalf("two replies to %s:\n%s\n%s", st.Raw, reply.Raw, r.Raw)
		}
		reply = r
	}
	if reply == nil {
		t.Fatalf("no reply to %s", st.Raw)
	}
	if c := ErrCondition(reply); reply.Type == "error" && !slices.Contains(wire.StanzaConditions, c) {
		t.Fatalf("error without an RFC 6120 condition (%q) for %s:\n%s", c, st.Raw, reply.Raw)
	}
}
