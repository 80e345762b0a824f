// Package storagetest is the contract every storage.Store implementation
// must pass. A backend's tests call Run with a function that returns a
// fresh, empty store:
//
//	func TestContract(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Store {
//			st, err := Open(t.Context(), t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { st.Close() })
//			return st
//		})
//	}
//
// Where the storage interfaces leave an order open, the suite compares
// without regard to order. Times are compared at microsecond precision,
// the finest PostgreSQL keeps.
package storagetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// Opener returns a new, empty store and arranges (with t.Cleanup) for it to
// be closed.
type Opener = func(t *testing.T) storage.Store

// Run runs the whole contract suite as subtests of t.
func Run(t *testing.T, open Opener) {
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open) })
	t.Run("Roster", func(t *testing.T) { testRoster(t, open) })
	t.Run("PendingIn", func(t *testing.T) { testPendingIn(t, open) })
	t.Run("Offline", func(t *testing.T) { testOffline(t, open) })
	t.Run("VCards", func(t *testing.T) { testVCards(t, open) })
	t.Run("Blocklist", func(t *testing.T) { testBlocklist(t, open) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, open) })
	t.Run("DeleteAccount", func(t *testing.T) { testDeleteAccount(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, open) })
	t.Run("Context", func(t *testing.T) { testContext(t, open) })
	t.Run("Admin", func(t *testing.T) { testAdmin(t, open) })
	t.Run("FASTTokens", func(t *testing.T) { testFAST(t, open) })
	t.Run("Abuse", func(t *testing.T) { testAbuse(t, open) })
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

// Payloads that a careless encoding (XML escaping, charset conversion,
// string trimming) would alter. They avoid NUL so text-typed columns could
// hold them, though backends should use binary columns anyway.
var (
	stanza1 = []byte("<message from='jüliet@capulet.example/balcony' to='romeo@montague.example'>" +
		"<body>Wherefore art thou &amp; <why>? 🌹 — 漢字 \t\r\n\x01\x7f</body></message>")
	stanza2 = []byte("<presence type='subscribe' from='σωκράτης@αθήνα.example'><status>&lt;hi&gt; \"'</status></presence>")
	vcard1  = []byte("<vCard xmlns='vcard-temp'><FN>Zoë O'Brien & Sons <Ltd></FN><NICKNAME>  spaced  </NICKNAME></vCard>")
	vcard2  = []byte("<vCard xmlns='vcard-temp'><FN>Иван</FN><DESC>\u2028line\u2029sep\ufeff</DESC></vCard>")
)

// allBytes is binary data such as SCRAM salts and keys really contain,
// every byte value included.
func allBytes(offset byte) []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i) + offset
	}
	return b
}

// stamp returns a fixed time in a non-UTC zone, at microsecond precision.
func stamp(sec int) time.Time {
	return time.Date(2024, 2, 29, 13, 14, 15, 123456000, time.FixedZone("UTC+5:30", 5*3600+1800)).
		Add(time.Duration(sec) * time.Second)
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: bytes differ\n got %q\nwant %q", what, got, want)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	return slices.Equal(sorted(a), sorted(b))
}
