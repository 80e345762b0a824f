package storagetest

import (
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// privateOpener returns a new, empty private XML store and arranges (with
// t.Cleanup) for it to be closed. When the value also implements
// storage.Accounts, runPrivate checks that DeleteAccount removes the
// account's private XML.
type privateOpener = func(t *testing.T) storage.PrivateXML

var (
	private1 = []byte("<exodus xmlns='exodus:prefs'><defaultnick>Hamlet &amp; 🌹 — 漢字</defaultnick>\t\r\n</exodus>")
	private2 = []byte("<storage xmlns='storage:bookmarks'><conference jid='council@conference.example' autojoin='true'><nick>Ω</nick></conference></storage>")
)

// runPrivate runs the XEP-0049 private XML storage contract as subtests
// of t.
func runPrivate(t *testing.T, open privateOpener) {
	const owner, other = "juliet@capulet.example", "romeo@montague.example"
	t.Run("RoundTrip", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		_, err := st.PrivateXML(ctx, owner, "exodus:prefs")
		wantErr(t, "PrivateXML before set", err, storage.ErrNotFound)
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, owner, "exodus:prefs", private1))
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, owner, "storage:bookmarks", private2))
		got, err := st.PrivateXML(ctx, owner, "exodus:prefs")
		must(t, "PrivateXML", err)
		wantBytes(t, "PrivateXML exodus:prefs", got, private1)
		got, err = st.PrivateXML(ctx, owner, "storage:bookmarks")
		must(t, "PrivateXML", err)
		wantBytes(t, "PrivateXML storage:bookmarks", got, private2)
		for who, want := range map[string]int{owner: 2, other: 0} {
			n, err := st.CountPrivateXML(ctx, who)
			must(t, "CountPrivateXML", err)
			if n != want {
				t.Fatalf("CountPrivateXML(%s) = %d, want %d", who, n, want)
			}
		}
		// Replacing keeps the count.
		must(t, "SetPrivateXML replace", st.SetPrivateXML(ctx, owner, "exodus:prefs", private2))
		if n, err := st.CountPrivateXML(ctx, owner); err != nil || n != 2 {
			t.Fatalf("CountPrivateXML after replace = %d, %v", n, err)
		}
	})
	t.Run("Replace", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, owner, "exodus:prefs", private1))
		small := []byte("<exodus xmlns='exodus:prefs'/>")
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, owner, "exodus:prefs", small))
		got, err := st.PrivateXML(ctx, owner, "exodus:prefs")
		must(t, "PrivateXML", err)
		wantBytes(t, "PrivateXML after replace", got, small)
	})
	t.Run("Isolation", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, owner, "exodus:prefs", private1))
		_, err := st.PrivateXML(ctx, other, "exodus:prefs")
		wantErr(t, "PrivateXML of another owner", err, storage.ErrNotFound)
		_, err = st.PrivateXML(ctx, owner, "Exodus:prefs")
		wantErr(t, "PrivateXML of a namespace differing in case", err, storage.ErrNotFound)
	})
	t.Run("DeleteAccount", func(t *testing.T) {
		st := open(t)
		acc, ok := st.(storage.Accounts)
		if !ok {
			t.Skip("store does not implement storage.Accounts")
		}
		ctx := t.Context()
		must(t, "CreateAccount", acc.CreateAccount(ctx, owner, nil))
		must(t, "CreateAccount", acc.CreateAccount(ctx, other, nil))
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, owner, "exodus:prefs", private1))
		must(t, "SetPrivateXML", st.SetPrivateXML(ctx, other, "exodus:prefs", private2))
		must(t, "DeleteAccount", acc.DeleteAccount(ctx, owner))
		_, err := st.PrivateXML(ctx, owner, "exodus:prefs")
		wantErr(t, "PrivateXML after DeleteAccount", err, storage.ErrNotFound)
		got, err := st.PrivateXML(ctx, other, "exodus:prefs")
		must(t, "PrivateXML of the other account", err)
		wantBytes(t, "PrivateXML of the other account", got, private2)
	})
}
