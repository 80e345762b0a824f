// Package storagetest is the contract every storage.Store implementation
// must pass. RunAll is its one entry point: a backend's tests call it with
// a function that creates an empty database and opens stores on it, and
// get the contract of every repository of storage.Store:
//
//	func TestContract(t *testing.T) {
//		storagetest.RunAll(t, storagetest.Backend{
//			NewDatabase: func(t *testing.T) func(storagetest.Options) storage.Store {
//				dir := t.TempDir()
//				return func(o storagetest.Options) storage.Store {
//					st, err := OpenOptions(t.Context(), dir, …o…)
//					if err != nil {
//						t.Fatal(err)
//					}
//					t.Cleanup(func() { st.Close() })
//					return st
//				}
//			},
//		})
//	}
//
// A new repository gets its contract here, in a suite listed in suites;
// TestSuitesCoverStore fails while a repository of storage.Store has
// none, and both backends run it without further wiring.
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

// opener returns a new, empty store and arranges (with t.Cleanup) for it to
// be closed.
type opener = func(t *testing.T) storage.Store

// Options say how to open a store.
type Options struct {
	// GroupCommit batches archive writes (storage/groupcommit).
	GroupCommit bool
	// Fulltext is the full-text index mode (storage.FulltextKeep when
	// zero).
	Fulltext storage.FulltextIndex
}

// Backend is a storage implementation under test.
type Backend struct {
	// NewDatabase creates an empty database, removed when t ends, and
	// returns a function that opens a store on it. The stores it opens
	// are closed when t ends; several may be open on one database at
	// once.
	NewDatabase func(t *testing.T) func(o Options) storage.Store
	// SharedByNodes: stores opened on one database act like the nodes
	// of a cluster sharing it (PostgreSQL), so the suite checks that
	// they never hand out the same work twice.
	SharedByNodes bool
}

// suite is one contract: the repositories of storage.Store it covers.
type suite struct {
	name  string
	repos []string
	run   func(t *testing.T, b Backend)
}

// suites are the contracts RunAll runs.
var suites = []suite{
	{"Core", []string{"Accounts", "Roster", "Offline", "VCards", "Blocklist", "Invites", "Roles", "Settings", "APITokens",
		"FASTTokens", "LastActivity", "CredentialUpgrades"},
		func(t *testing.T, b Backend) { run(t, b.open) }},
	{"Archive", []string{"Archive"}, func(t *testing.T, b Backend) {
		runArchive(t, func(t *testing.T) storage.Archive { return b.open(t) })
	}},
	{"ArchiveGroupCommit", []string{"Archive"}, func(t *testing.T, b Backend) {
		runArchive(t, func(t *testing.T) storage.Archive { return b.NewDatabase(t)(Options{GroupCommit: true}) })
	}},
	{"FulltextIndex", []string{"Archive"}, func(t *testing.T, b Backend) {
		runFulltextIndex(t, func(t *testing.T) func(storage.FulltextIndex) storage.Archive {
			db := b.NewDatabase(t)
			return func(mode storage.FulltextIndex) storage.Archive { return db(Options{Fulltext: mode}) }
		})
	}},
	{"Push", []string{"PushRegistrations"}, func(t *testing.T, b Backend) {
		runPush(t, func(t *testing.T) storage.PushRegistrations { return b.open(t) })
	}},
	{"PushJobs", []string{"PushJobs"}, runPushJobs},
	{"PEP", []string{"PEP"}, func(t *testing.T, b Backend) { runPEP(t, func(t *testing.T) storage.PEP { return b.open(t) }) }},
	{"Private", []string{"PrivateXML"}, func(t *testing.T, b Backend) {
		runPrivate(t, func(t *testing.T) storage.PrivateXML { return b.open(t) })
	}},
	{"Uploads", []string{"Uploads"}, func(t *testing.T, b Backend) {
		runUploads(t, func(t *testing.T) storage.Uploads { return b.open(t) })
	}},
	{"MUC", []string{"MUCRooms", "ArchiveEditor"}, func(t *testing.T, b Backend) { runMUC(t, b.open) }},
	{"Abuse", []string{"Suspensions", "SpamReports", "AccountSettings", "UsageReader"},
		func(t *testing.T, b Backend) { testAbuse(t, b.open) }},
}

// RunAll runs the contract of every repository as subtests of t. The
// suites run in parallel: each test has databases of its own.
func RunAll(t *testing.T, b Backend) {
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			s.run(t, b)
		})
	}
}

// open opens a store on a new database.
func (b Backend) open(t *testing.T) storage.Store { return b.NewDatabase(t)(Options{}) }

// run runs the contract of the account-keyed repositories.
func run(t *testing.T, open opener) {
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
	t.Run("LastActivity", func(t *testing.T) { testLastActivity(t, open) })
	t.Run("UpgradeCredential", func(t *testing.T) { testUpgradeCredential(t, open) })
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
