package pep

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// TestMDSServerAssist: XEP-0490 §5 — the displayed element is published
// to the node (created private) and stripped from the message.
func TestMDSServerAssist(t *testing.T) {
	e := setup(t, Config{})
	a := e.login(alice + "/a")
	a2 := e.login(alice + "/b")
	e.ownOnline(a2, NodeMDS)
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if in, _ := e.mod.interestsOf(alice, a2.JID().String()); in[NodeMDS] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("caps of alice/b not resolved")
		}
	}
	b := e.login(bob + "/b")
	b.SetPresence(wire.MustParse("<presence/>"))

	e.send(a, "<message to='%s' type='chat' id='m'><body>hi</body><displayed xmlns='%s'><stanza-id xmlns='urn:xmpp:sid:0' by='%s' id='s1'/></displayed></message>",
		bob, NodeMDS, alice)
	m := b.Await(t, "message", func(st *wire.Stanza) bool { return st.Name == "message" && st.ID == "m" })
	if strings.Contains(string(m.Raw), "displayed") || !strings.Contains(string(m.Raw), "<body>hi</body>") {
		t.Fatalf("delivered %s", m.Raw)
	}
	n := a2.Await(t, "notification", event(NodeMDS, "item", bob))
	if !strings.Contains(string(n.Raw), "id='s1'") && !strings.Contains(string(n.Raw), `id="s1"`) {
		t.Fatalf("notification %s", n.Raw)
	}
	if am, err := e.mod.AccessModel(e.ctx, alice, NodeMDS); err != nil || am != AccessWhitelist {
		t.Fatalf("access model %q %v", am, err)
	}
	c, _ := e.mod.node(e.ctx, alice, NodeMDS)
	if c.get(fSendLast) != "never" || c.get(fMaxItems) != "max" {
		t.Fatalf("config %v", c)
	}
	// Messages without it pass unchanged.
	e.send(a, "<message to='%s' type='chat' id='m2'><body>x</body></message>", bob)
	if m := b.Await(t, "message", func(st *wire.Stanza) bool { return st.ID == "m2" }); string(m.Raw) != "<message to='"+bob+"' type='chat' id='m2' from='"+alice+"/a'><body>x</body></message>" {
		t.Fatalf("changed: %s", m.Raw)
	}
	none(t, a2, "second notification", 50*time.Millisecond, event(NodeMDS, "item", ""))
}
