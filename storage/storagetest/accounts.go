package storagetest

import (
	"bytes"
	"slices"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

func cred(hash string, iter int, seed byte) storage.SCRAMCredential {
	return storage.SCRAMCredential{
		Hash:       hash,
		Salt:       allBytes(seed),
		Iterations: iter,
		StoredKey:  allBytes(seed + 1)[:32],
		ServerKey:  allBytes(seed + 2)[:64],
	}
}

var (
	credSHA1   = cred("SHA-1", 4096, 0)
	credSHA256 = cred("SHA-256", 10000, 100)
	credSHA512 = cred("SHA-512", 600000, 200)
)

func credEqual(a, b storage.SCRAMCredential) bool {
	return a.Hash == b.Hash && a.Iterations == b.Iterations &&
		bytes.Equal(a.Salt, b.Salt) && bytes.Equal(a.StoredKey, b.StoredKey) && bytes.Equal(a.ServerKey, b.ServerKey)
}

// wantCreds requires the same credentials; their order is not part of the
// contract.
func wantCreds(t *testing.T, st storage.Store, bare string, want []storage.SCRAMCredential) {
	t.Helper()
	got, err := st.Credentials(t.Context(), bare)
	must(t, "Credentials "+bare, err)
	if len(got) != len(want) {
		t.Fatalf("Credentials %s: got %d, want %d", bare, len(got), len(want))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g storage.SCRAMCredential) bool { return credEqual(g, w) }) {
			t.Fatalf("Credentials %s: %s credential missing or altered; got %+v", bare, w.Hash, got)
		}
	}
}

func testAccounts(t *testing.T, open opener) {
	t.Run("CreateAndCredentials", func(t *testing.T) {
		cases := []struct {
			name  string
			bare  string
			creds []storage.SCRAMCredential
		}{
			{"no credentials", "nocreds@example.com", nil},
			{"one hash", "one@example.com", []storage.SCRAMCredential{credSHA256}},
			{"three hashes", "three@example.com", []storage.SCRAMCredential{credSHA1, credSHA256, credSHA512}},
			{"non-ASCII JID", "жюльетта@例え.jp", []storage.SCRAMCredential{credSHA512, credSHA1}},
		}
		st := open(t)
		ctx := t.Context()
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ok, err := st.AccountExists(ctx, c.bare)
				must(t, "AccountExists", err)
				if ok {
					t.Fatal("AccountExists before CreateAccount")
				}
				must(t, "CreateAccount", st.CreateAccount(ctx, c.bare, c.creds))
				ok, err = st.AccountExists(ctx, c.bare)
				must(t, "AccountExists", err)
				if !ok {
					t.Fatal("AccountExists false after CreateAccount")
				}
				wantCreds(t, st, c.bare, c.creds)
			})
		}
	})

	t.Run("Duplicate", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount", st.CreateAccount(ctx, "juliet@example.com", []storage.SCRAMCredential{credSHA1}))
		wantErr(t, "second CreateAccount", st.CreateAccount(ctx, "juliet@example.com", []storage.SCRAMCredential{credSHA512}), storage.ErrExists)
		wantCreds(t, st, "juliet@example.com", []storage.SCRAMCredential{credSHA1})
	})

	t.Run("Missing", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		_, err := st.Credentials(ctx, "ghost@example.com")
		wantErr(t, "Credentials", err, storage.ErrNotFound)
		wantErr(t, "SetCredentials", st.SetCredentials(ctx, "ghost@example.com", []storage.SCRAMCredential{credSHA1}), storage.ErrNotFound)
		wantErr(t, "DeleteAccount", st.DeleteAccount(ctx, "ghost@example.com"), storage.ErrNotFound)
		ok, err := st.AccountExists(ctx, "ghost@example.com")
		must(t, "AccountExists", err)
		if ok {
			t.Fatal("SetCredentials on a missing account created it")
		}
	})

	t.Run("SetCredentials", func(t *testing.T) {
		cases := []struct {
			name      string
			from, set []storage.SCRAMCredential
		}{
			{"one to three", []storage.SCRAMCredential{credSHA1}, []storage.SCRAMCredential{credSHA1, credSHA256, credSHA512}},
			{"three to one", []storage.SCRAMCredential{credSHA1, credSHA256, credSHA512}, []storage.SCRAMCredential{credSHA256}},
			{"change same hash", []storage.SCRAMCredential{credSHA256}, []storage.SCRAMCredential{cred("SHA-256", 20000, 7)}},
			{"to none", []storage.SCRAMCredential{credSHA256}, nil},
			{"from none", nil, []storage.SCRAMCredential{credSHA512}},
		}
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount bystander", st.CreateAccount(ctx, "bystander@example.com", []storage.SCRAMCredential{credSHA1}))
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				bare := string(rune('a'+i)) + "@example.com"
				must(t, "CreateAccount", st.CreateAccount(ctx, bare, c.from))
				must(t, "SetCredentials", st.SetCredentials(ctx, bare, c.set))
				wantCreds(t, st, bare, c.set)
				wantCreds(t, st, "bystander@example.com", []storage.SCRAMCredential{credSHA1})
			})
		}
	})

	t.Run("ListAccounts", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		all := []string{
			"zed@example.com", "alice@example.com", "bob@example.com",
			"carol@sub.example.com", "dave@example.org", "erin@xample.com",
		}
		for _, b := range all {
			must(t, "CreateAccount "+b, st.CreateAccount(ctx, b, nil))
		}
		cases := []struct {
			domain string
			want   []string
		}{
			{"example.com", []string{"alice@example.com", "bob@example.com", "zed@example.com"}},
			{"sub.example.com", []string{"carol@sub.example.com"}},
			{"example.org", []string{"dave@example.org"}},
			{"xample.com", []string{"erin@xample.com"}},
			{"example.net", nil},
			{"", sorted(all)},
		}
		for _, c := range cases {
			t.Run("domain="+c.domain, func(t *testing.T) {
				got, err := st.ListAccounts(ctx, c.domain)
				must(t, "ListAccounts", err)
				if !slices.Equal(got, c.want) {
					t.Fatalf("ListAccounts(%q) = %q, want %q", c.domain, got, c.want)
				}
			})
		}
	})
}
