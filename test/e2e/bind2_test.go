package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// waitArchived waits until owner's archive holds a message (archive
// writes commit in the background of the sender's stream).
func waitArchived(t *testing.T, ts *testserver.Server, owner string) {
	t.Helper()
	deadline := time.Now().Add(testserver.Timeout)
	for {
		_, last, err := ts.Store().ArchiveMetadata(context.Background(), owner)
		if err == nil && last != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's archive stayed empty: %v", owner, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func bound(t *testing.T, success *wire.Stanza) *wire.Element {
	t.Helper()
	b := success.Child(nsBind2, "bound")
	if b == nil {
		t.Fatalf("no <bound/> in %s", success.Raw)
	}
	return b
}

// TestBind2: the resource is the tag and an identifier stable per client
// installation; <bound/> carries the archive's state; a second login of
// the same client replaces its old session.
func TestBind2(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	bob := ts.AddUser("bob", "pw2")
	b := ts.Login("bob", "pw2", "desk")
	b.Send("<message to='%s' type='chat'><body>archived first</body></message>", alice)
	waitArchived(t, ts, alice)

	a1, s1 := ts.LoginSASL2("alice", "pw1", ua1, "AwesomeXMPP", "")
	prefix := alice + "/AwesomeXMPP/"
	if !strings.HasPrefix(a1.JID, prefix) || len(a1.JID) <= len(prefix) || strings.Contains(a1.JID, ua1) {
		t.Fatalf("bound %q, want %s<id> without the user-agent id", a1.JID, prefix)
	}
	if want := alice + "/" + ts.Bind2Resource("alice", "AwesomeXMPP", ua1); a1.JID != want {
		t.Fatalf("bound %q, want %q", a1.JID, want)
	}
	md := bound(t, s1).Child("urn:xmpp:mam:2", "metadata")
	if md == nil || md.Child("urn:xmpp:mam:2", "end") == nil || md.Child("urn:xmpp:mam:2", "end").AttrValue("id") == "" {
		t.Fatalf("no archive metadata in <bound/>: %s", s1.Raw)
	}
	// The session works: presence, messages, IQs.
	a1.Send("<presence/>")
	b.Send("<message to='%s' type='chat'><body>to bind2</body></message>", a1.JID)
	a1.Expect("message", isMsg("to bind2"))

	// Same client again: same resource; the old session is replaced.
	a2, _ := ts.LoginSASL2("alice", "pw1", ua1, "AwesomeXMPP", "")
	if a2.JID != a1.JID {
		t.Fatalf("resource not stable: %q then %q", a1.JID, a2.JID)
	}
	if se := a1.StreamError(); se == nil || se.Condition != "conflict" {
		t.Fatalf("old session of the same client: %v", se)
	}
	// Another installation, or none: another resource.
	a3, _ := ts.LoginSASL2("alice", "pw1", ua2, "AwesomeXMPP", "")
	a4, _ := ts.LoginSASL2("alice", "pw1", "", "", "")
	if a3.JID == a1.JID || a4.JID == a1.JID || strings.Count(a4.JID, "/") != 1 {
		t.Fatalf("resources %q %q %q", a1.JID, a3.JID, a4.JID)
	}
	// The identifier depends on the account too.
	bb, _ := ts.LoginSASL2("bob", "pw2", ua1, "AwesomeXMPP", "")
	if strings.TrimPrefix(bb.JID, bob) == strings.TrimPrefix(a1.JID, alice) {
		t.Fatalf("two accounts with the same user-agent id got the same resource: %s %s", a1.JID, bb.JID)
	}
	// Bound already: the features after <success/> offer no RFC 6120 bind.
	c := ts.Connect()
	c.Features()
	if _, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", UserAgent: ua2,
		Extra: "<bind xmlns='urn:xmpp:bind:0'/>"}); err != nil {
		t.Fatal(err)
	}
	if f := c.Features(); f.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind") != nil || f.Child("urn:xmpp:sm:3", "sm") == nil {
		t.Fatalf("features after Bind2: %s", f.Raw)
	}
}

// TestBind2Inline: carbons, stream management and the client state are
// set inline, before anything reaches the session.
func TestBind2Inline(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	b := ts.Login("bob", "pw2", "desk")
	other := ts.Login("alice", "pw1", "other")
	b.Send("<presence/>")
	other.Send("<presence/>")
	subscribe(t, other, b, alice, "bob@localhost")

	a, s := ts.LoginSASL2("alice", "pw1", ua1, "phone",
		"<enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='urn:xmpp:sm:3' resume='true'/><inactive xmlns='urn:xmpp:csi:0'/>")
	en := bound(t, s).Child("urn:xmpp:sm:3", "enabled")
	if en == nil || en.AttrValue("resume") != "true" || en.AttrValue("id") == "" {
		t.Fatalf("no <enabled/> in <bound/>: %s", s.Raw)
	}
	// Carbons: a message bob sends to alice's other resource is copied.
	b.Send("<message to='%s/other' type='chat'><body>copied</body></message>", alice)
	cp := a.Expect("carbon", func(st *wire.Stanza) bool { return st.Child("urn:xmpp:carbons:2", "received") != nil })
	if !strings.Contains(string(cp.Raw), "copied") {
		t.Fatalf("carbon: %s", cp.Raw)
	}
	// CSI inactive: bob's presence waits, a message does not.
	a.Send("<presence/>")
	b.Send("<presence><status>away for now</status></presence>")
	a.ExpectNone("held presence", 300*time.Millisecond, func(st *wire.Stanza) bool {
		return st.Name == "presence" && strings.Contains(string(st.Raw), "away for now")
	})
	a.Send("<active xmlns='urn:xmpp:csi:0'/>")
	a.Expect("flushed presence", func(st *wire.Stanza) bool {
		return st.Name == "presence" && strings.Contains(string(st.Raw), "away for now")
	})
	// Stream management is on: the server counts the stanzas alice sent
	// (one presence) since <bound/>.
	a.Send("<r xmlns='urn:xmpp:sm:3'/>")
	if h := a.Expect("ack", isSM("a")).Attr("h"); h != "1" {
		t.Fatalf("h = %s, want 1", h)
	}
}

// TestBind2Resume: a phone that lost its connection resumes its session
// inside SASL2 in one round trip, and gets what was queued; a resumption
// that fails binds a new session instead.
func TestBind2Resume(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	b := ts.Login("bob", "pw2", "desk")
	a, s := ts.LoginSASL2("alice", "pw1", ua1, "phone", "<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	id := bound(t, s).Child("urn:xmpp:sm:3", "enabled").AttrValue("id")
	a.Send("<presence/>")
	b.Send("<message to='%s' type='chat'><body>before drop</body></message>", a.JID)
	a.Expect("before drop", isMsg("before drop"))
	a.Drop()
	b.Send("<message to='%s' type='chat'><body>while away</body></message>", a.JID)
	b.ExpectNone("bounce", 200*time.Millisecond, testserver.Is("message", "error"))

	c := ts.Connect()
	c.Features()
	st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", UserAgent: ua1,
		Extra: "<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='0'/><bind xmlns='urn:xmpp:bind:0'><tag>phone</tag></bind>"})
	if err != nil {
		t.Fatal(err)
	}
	r := st.Child("urn:xmpp:sm:3", "resumed")
	if r == nil || r.AttrValue("previd") != id || st.Child(nsBind2, "bound") != nil {
		t.Fatalf("inline resumption: %s", st.Raw)
	}
	if got := st.Tree().ChildText(nsSASL2, "authorization-identifier"); got != a.JID {
		t.Fatalf("authorization-identifier %q, want the resumed %q", got, a.JID)
	}
	// No features after a resumption: the next element is the replay.
	c.StartReader()
	m := c.Expect("replayed", isMsg("before drop"))
	if m.Child("urn:xmpp:delay", "delay") == nil {
		t.Fatalf("replayed without delay: %s", m.Raw)
	}
	c.Expect("queued", isMsg("while away"))
	c.ExpectNone("features", 200*time.Millisecond, func(st *wire.Stanza) bool { return st.Name == "features" })
	b.Send("<message to='%s' type='chat'><body>after resume</body></message>", alice+"/"+strings.SplitN(a.JID, "/", 2)[1])
	c.Expect("after resume", isMsg("after resume"))

	// A stale id: <failed/> in <success/>, and a new session is bound.
	d := ts.Connect()
	d.Features()
	st, err = d.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "pw1", UserAgent: ua2,
		Extra: "<resume xmlns='urn:xmpp:sm:3' previd='no-such-session' h='3'/><bind xmlns='urn:xmpp:bind:0'><enable xmlns='urn:xmpp:sm:3'/></bind>"})
	if err != nil {
		t.Fatal(err)
	}
	if f := st.Child("urn:xmpp:sm:3", "failed"); f == nil || !strings.Contains(string(st.Raw), "item-not-found") {
		t.Fatalf("failed resumption: %s", st.Raw)
	}
	if bound(t, st).Child("urn:xmpp:sm:3", "enabled") == nil {
		t.Fatalf("no new session after a failed resumption: %s", st.Raw)
	}
	d.Features()
	// bob cannot resume alice's session.
	e := ts.Connect()
	e.Features()
	st, err = e.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "bob", Password: "pw2",
		Extra: "<resume xmlns='urn:xmpp:sm:3' previd='" + id + "' h='0'/>"})
	if err != nil || st.Child("urn:xmpp:sm:3", "failed") == nil || st.Child("urn:xmpp:sm:3", "resumed") != nil {
		t.Fatalf("another account resumed alice's session: %v %s", err, st.Raw)
	}
}

// TestBind2Offline: a Bind2 session still gets the messages stored while
// the user was offline, with the archive's stanza-id, so a client that
// also catches up from the archive (its <bound/> says up to where) can
// tell them apart. XEP-0386 §2.2 says to drop them instead; Parley keeps
// them because Bind2 clients without archive sync (xmpp.js) would lose
// them (see README).
func TestBind2Offline(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	ts.AddUser("bob", "pw2")
	b := ts.Login("bob", "pw2", "desk")
	b.Send("<message to='%s' type='chat' id='o1'><body>stored offline</body></message>", alice)
	waitArchived(t, ts, alice)
	a, s := ts.LoginSASL2("alice", "pw1", ua1, "phone", "")
	end := bound(t, s).Child("urn:xmpp:mam:2", "metadata").Child("urn:xmpp:mam:2", "end")
	if end == nil {
		t.Fatalf("archive metadata: %s", s.Raw)
	}
	a.Send("<presence/>")
	m := a.Expect("offline message", isMsg("stored offline"))
	if id := stanzaIDOf(t, m.Tree(), alice); id != end.AttrValue("id") {
		t.Fatalf("offline message has stanza-id %q, the archive's end is %q", id, end.AttrValue("id"))
	}
}
