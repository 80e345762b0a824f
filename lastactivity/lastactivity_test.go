package lastactivity

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/wire"
)

// TestLongStatusCutAtCharacter: a status longer than maxStatus is kept
// cut at a character boundary, so the answer to a query is valid XML
// (cut in the middle of a character, it was not, and PostgreSQL refused
// to store it).
func TestLongStatusCutAtCharacter(t *testing.T) {
	env := modtest.New(t)
	env.Register(New(Config{}, env.Store, env.Store))
	phone := env.LoginAvailable("alice@example.org/phone", 0)
	laptop := env.Login("alice@example.org/laptop")

	status := "a" + strings.Repeat("é", maxStatus) // byte maxStatus is the middle of an é
	env.Send(phone, "<presence type='unavailable'><status>"+status+"</status></presence>")
	phone.SetPresence(nil)

	reply := env.IQ(laptop, "<iq type='get' id='q1' to='alice@example.org'><query xmlns='"+NS+"'/></iq>")
	if reply.Type != "result" {
		t.Fatalf("reply: %s", reply.Raw)
	}
	if _, err := wire.Parse(reply.Raw, wire.Limits{MaxStanzaBytes: len(reply.Raw) + 1, MaxDepth: 8, MaxAttrs: 8}); err != nil {
		t.Fatalf("the reply is not well-formed XML (%v): %q", err, reply.Raw)
	}
	got := reply.Tree().FirstElement().Text()
	if !utf8.ValidString(got) || len(got) > maxStatus || len(got) < maxStatus-1 || !strings.HasPrefix(status, got) {
		t.Fatalf("status of %d bytes (valid UTF-8: %v), want the first %d bytes or one less of %d", len(got), utf8.ValidString(got), maxStatus, len(status))
	}
}
