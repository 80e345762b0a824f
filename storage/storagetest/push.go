package storagetest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// pushOpener returns a new, empty push registration store and arranges
// (with t.Cleanup) for it to be closed. When the value also implements
// storage.Accounts, runPush checks that DeleteAccount removes the
// account's registrations.
type pushOpener = func(t *testing.T) storage.PushRegistrations

// runPush runs the push registration contract (XEP-0357 storage) as
// subtests of t.
func runPush(t *testing.T, open pushOpener) {
	t.Run("Empty", func(t *testing.T) {
		got, err := open(t).Pushes(t.Context(), "juliet@capulet.example")
		must(t, "Pushes", err)
		if len(got) != 0 {
			t.Fatalf("Pushes on an empty store = %+v", got)
		}
	})
	t.Run("AddReplaceRemove", func(t *testing.T) { testPushSteps(t, open) })
	t.Run("Isolation", func(t *testing.T) { testPushIsolation(t, open) })
	t.Run("DeleteAccount", func(t *testing.T) { testPushDeleteAccount(t, open) })
}

var (
	pushForm1 = []byte("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
		"<field var='secret'><value>eruio234vzxc2kla-91 &amp; ü 🌹 \t\r\n</value></field></x>")
	pushForm2 = []byte("<x xmlns='jabber:x:data' type='submit'><field var='endpoint'><value>https://push.example/Σ?a=1&amp;b=2</value></field></x>")
)

func pushKey(r storage.PushRegistration) string { return r.JID + "\x00" + r.Node }

// wantPushes compares registrations without regard to order; Created is
// compared at microsecond precision and a nil Form equals an empty one.
func wantPushes(t *testing.T, what string, got []storage.PushRegistration, want ...storage.PushRegistration) {
	t.Helper()
	byKey := func(a, b storage.PushRegistration) int { return cmp.Compare(pushKey(a), pushKey(b)) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, byKey)
	slices.SortFunc(want, byKey)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.JID == w.JID && g.Node == w.Node && bytes.Equal(g.Form, w.Form) && g.Created.Equal(w.Created)
	}
	if !ok {
		t.Fatalf("%s:\n got %s\nwant %s", what, fmtPushes(got), fmtPushes(want))
	}
}

func fmtPushes(rs []storage.PushRegistration) string {
	var b bytes.Buffer
	for _, r := range rs {
		fmt.Fprintf(&b, "\n  {%q %q form=%q created=%s}", r.JID, r.Node, r.Form, r.Created.UTC().Format("2006-01-02T15:04:05.000000Z"))
	}
	return b.String()
}

func testPushSteps(t *testing.T, open pushOpener) {
	const owner = "juliet@capulet.example"
	a := storage.PushRegistration{JID: "push-5.client.example", Node: "yxs32uqsflafdk3iuqo", Form: pushForm1, Created: stamp(0)}
	b := storage.PushRegistration{JID: "push-5.client.example", Node: "second-node", Created: stamp(1)}
	c := storage.PushRegistration{JID: "pusher@other.example/app", Node: "n ü 'quoted' <x>", Form: pushForm2, Created: stamp(2)}
	a2 := storage.PushRegistration{JID: a.JID, Node: a.Node, Form: pushForm2, Created: stamp(10)}
	aNoForm := storage.PushRegistration{JID: a.JID, Node: a.Node, Created: stamp(11)}

	type step struct {
		name string
		do   func(st storage.PushRegistrations) error
		want []storage.PushRegistration
	}
	add := func(r storage.PushRegistration) func(storage.PushRegistrations) error {
		return func(st storage.PushRegistrations) error { return st.AddPush(t.Context(), owner, r) }
	}
	remove := func(jid, node string) func(storage.PushRegistrations) error {
		return func(st storage.PushRegistrations) error { return st.RemovePush(t.Context(), owner, jid, node) }
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"add", []step{
			{"add a", add(a), []storage.PushRegistration{a}},
			{"add b, same jid other node", add(b), []storage.PushRegistration{a, b}},
			{"add c", add(c), []storage.PushRegistration{a, b, c}},
		}},
		{"replace", []step{
			{"add a", add(a), []storage.PushRegistration{a}},
			{"add b", add(b), []storage.PushRegistration{a, b}},
			{"replace a with a new form", add(a2), []storage.PushRegistration{a2, b}},
			{"replace a without form", add(aNoForm), []storage.PushRegistration{aNoForm, b}},
			{"replace a with its first form", add(a), []storage.PushRegistration{a, b}},
		}},
		{"remove node", []step{
			{"add a", add(a), []storage.PushRegistration{a}},
			{"add b", add(b), []storage.PushRegistration{a, b}},
			{"add c", add(c), []storage.PushRegistration{a, b, c}},
			{"remove b", remove(b.JID, b.Node), []storage.PushRegistration{a, c}},
			{"remove b again", remove(b.JID, b.Node), []storage.PushRegistration{a, c}},
			{"remove unknown node", remove(a.JID, "nope"), []storage.PushRegistration{a, c}},
			{"node of another jid", remove(c.JID, a.Node), []storage.PushRegistration{a, c}},
		}},
		{"remove all nodes of a jid", []step{
			{"add a", add(a), []storage.PushRegistration{a}},
			{"add b", add(b), []storage.PushRegistration{a, b}},
			{"add c", add(c), []storage.PushRegistration{a, b, c}},
			{"remove a's jid", remove(a.JID, ""), []storage.PushRegistration{c}},
			{"remove unknown jid", remove("nobody.example", ""), []storage.PushRegistration{c}},
			{"remove c's jid", remove(c.JID, ""), nil},
			{"add a again", add(a), []storage.PushRegistration{a}},
		}},
		{"remove on empty", []step{
			{"remove jid", remove(a.JID, ""), nil},
			{"remove node", remove(a.JID, a.Node), nil},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := open(t)
			for _, s := range c.steps {
				must(t, s.name, s.do(st))
				got, err := st.Pushes(t.Context(), owner)
				must(t, "Pushes after "+s.name, err)
				wantPushes(t, "after "+s.name, got, s.want...)
			}
		})
	}
}

func testPushIsolation(t *testing.T, open pushOpener) {
	st := open(t)
	ctx := t.Context()
	const juliet, romeo = "juliet@capulet.example", "romeo@montague.example"
	j := storage.PushRegistration{JID: "push.example", Node: "n1", Form: pushForm1, Created: stamp(0)}
	r := storage.PushRegistration{JID: "push.example", Node: "n1", Form: pushForm2, Created: stamp(5)}
	must(t, "AddPush juliet", st.AddPush(ctx, juliet, j))
	must(t, "AddPush romeo", st.AddPush(ctx, romeo, r))
	got, err := st.Pushes(ctx, juliet)
	must(t, "Pushes juliet", err)
	wantPushes(t, "juliet's registrations", got, j)
	must(t, "RemovePush romeo all", st.RemovePush(ctx, romeo, "push.example", ""))
	got, err = st.Pushes(ctx, juliet)
	must(t, "Pushes juliet", err)
	wantPushes(t, "juliet's registrations after romeo disabled his", got, j)
	got, err = st.Pushes(ctx, romeo)
	must(t, "Pushes romeo", err)
	wantPushes(t, "romeo's registrations", got)
}

func testPushDeleteAccount(t *testing.T, open pushOpener) {
	st := open(t)
	acc, ok := st.(storage.Accounts)
	if !ok {
		t.Skip("the store does not manage accounts")
	}
	ctx := t.Context()
	const juliet, romeo = "juliet@capulet.example", "romeo@montague.example"
	for _, u := range []string{juliet, romeo} {
		must(t, "CreateAccount", acc.CreateAccount(ctx, u, nil))
		must(t, "AddPush", st.AddPush(ctx, u, storage.PushRegistration{JID: "push.example", Node: "n", Form: pushForm1, Created: stamp(0)}))
	}
	must(t, "DeleteAccount", acc.DeleteAccount(ctx, juliet))
	got, err := st.Pushes(ctx, juliet)
	must(t, "Pushes", err)
	wantPushes(t, "registrations of the deleted account", got)
	got, err = st.Pushes(ctx, romeo)
	must(t, "Pushes", err)
	wantPushes(t, "registrations of another account", got,
		storage.PushRegistration{JID: "push.example", Node: "n", Form: pushForm1, Created: stamp(0)})
}
