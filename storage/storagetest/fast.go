package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

func fastTok(seed byte, mech string, issued time.Time, life time.Duration) storage.FASTToken {
	return storage.FASTToken{Digest: allBytes(seed)[:32], Mechanism: mech, Issued: issued, Expiry: issued.Add(life)}
}

func wantFASTToken(t *testing.T, what string, got *storage.FASTToken, want storage.FASTToken) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: no token, want %s", what, want.Mechanism)
	}
	wantBytes(t, what+" digest", got.Digest, want.Digest)
	if got.Mechanism != want.Mechanism || !got.Issued.Equal(want.Issued) || !got.Expiry.Equal(want.Expiry) {
		t.Fatalf("%s: got %s %v–%v, want %s %v–%v", what, got.Mechanism, got.Issued, got.Expiry,
			want.Mechanism, want.Issued, want.Expiry)
	}
}

// testFAST checks the XEP-0484 token store: the two slots per client,
// expiry, the per-account cap, and that tokens go with the password and
// the account.
func testFAST(t *testing.T, open opener) {
	const owner, other = "juliet@capulet.example", "romeo@montague.example"
	const ua1, ua2 = "4a0f9c3e-0d6f-4b43-9c4e-1c2a2f4f8f11", "d4565fa7-4d72-4749-b3d3-740edbf87770"
	creds := []storage.SCRAMCredential{{Hash: "SHA-256", Salt: allBytes(1), Iterations: 4096, StoredKey: allBytes(2), ServerKey: allBytes(3)}}

	t.Run("Slots", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		_, err := st.FASTClient(ctx, owner, ua1)
		wantErr(t, "FASTClient without account", err, storage.ErrNotFound)
		wantErr(t, "IssueFASTToken without account",
			st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua1}, fastTok(1, "HT-SHA-256-NONE", stamp(0), time.Hour)), storage.ErrNotFound)
		must(t, "CreateAccount", st.CreateAccount(ctx, owner, creds))
		must(t, "CreateAccount", st.CreateAccount(ctx, other, creds))

		t1 := fastTok(10, "HT-SHA-256-EXPR", stamp(0), 24*time.Hour)
		must(t, "IssueFASTToken", st.IssueFASTToken(ctx, owner,
			storage.FASTClient{ClientID: ua1, Software: "Conversations 🌹", Device: "Juliet's phone & <tablet>"}, t1))
		c, err := st.FASTClient(ctx, owner, ua1)
		must(t, "FASTClient", err)
		if c.ClientID != ua1 || c.Software != "Conversations 🌹" || c.Device != "Juliet's phone & <tablet>" || c.Current != nil {
			t.Fatalf("after issue: %+v", c)
		}
		wantFASTToken(t, "new slot", c.New, t1)
		// A digest that is not the new token's changes nothing.
		must(t, "UseFASTToken other", st.UseFASTToken(ctx, owner, ua1, allBytes(99)[:32]))
		must(t, "UseFASTToken other client", st.UseFASTToken(ctx, owner, ua2, t1.Digest))
		c, _ = st.FASTClient(ctx, owner, ua1)
		if c.Current != nil || c.New == nil {
			t.Fatalf("a foreign digest moved the slots: %+v", c)
		}
		must(t, "UseFASTToken", st.UseFASTToken(ctx, owner, ua1, t1.Digest))
		c, _ = st.FASTClient(ctx, owner, ua1)
		if c.New != nil {
			t.Fatalf("used token still in the new slot: %+v", c.New)
		}
		wantFASTToken(t, "current slot", c.Current, t1)

		// Rotation: a new token waits in the new slot; the current one
		// stays until the new one is used; an unused one is replaced.
		t2 := fastTok(20, "HT-SHA-256-EXPR", stamp(60), 24*time.Hour)
		t3 := fastTok(30, "HT-SHA-256-NONE", stamp(120), 24*time.Hour)
		must(t, "IssueFASTToken t2", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua1, Software: "Conversations 2"}, t2))
		must(t, "IssueFASTToken t3", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua1, Software: "Conversations 2"}, t3))
		c, _ = st.FASTClient(ctx, owner, ua1)
		wantFASTToken(t, "current after reissue", c.Current, t1)
		wantFASTToken(t, "new after reissue", c.New, t3)
		if c.Software != "Conversations 2" || c.Device != "" {
			t.Fatalf("client description not updated: %+v", c)
		}
		must(t, "UseFASTToken t2 (replaced)", st.UseFASTToken(ctx, owner, ua1, t2.Digest))
		must(t, "UseFASTToken t3", st.UseFASTToken(ctx, owner, ua1, t3.Digest))
		c, _ = st.FASTClient(ctx, owner, ua1)
		wantFASTToken(t, "current after t3", c.Current, t3)

		// Clients and accounts are separate.
		t4 := fastTok(40, "HT-SHA-256-NONE", stamp(130), time.Hour)
		must(t, "IssueFASTToken ua2", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua2}, t4))
		must(t, "IssueFASTToken other", st.IssueFASTToken(ctx, other, storage.FASTClient{ClientID: ua1}, t4))
		list, err := st.FASTClients(ctx, owner)
		must(t, "FASTClients", err)
		if len(list) != 2 || list[0].ClientID != ua1 || list[1].ClientID != ua2 {
			t.Fatalf("FASTClients = %+v", list)
		}
		must(t, "RevokeFASTTokens ua2", st.RevokeFASTTokens(ctx, owner, ua2))
		must(t, "RevokeFASTTokens again", st.RevokeFASTTokens(ctx, owner, ua2))
		_, err = st.FASTClient(ctx, owner, ua2)
		wantErr(t, "revoked client", err, storage.ErrNotFound)
		if _, err := st.FASTClient(ctx, owner, ua1); err != nil {
			t.Fatalf("revoking one client revoked another: %v", err)
		}
		if c, err := st.FASTClient(ctx, other, ua1); err != nil || c.New == nil {
			t.Fatalf("other account: %+v %v", c, err)
		}
		must(t, "RevokeFASTTokens all", st.RevokeFASTTokens(ctx, owner, ""))
		if list, _ := st.FASTClients(ctx, owner); len(list) != 0 {
			t.Fatalf("after revoking all: %+v", list)
		}
		if _, err := st.FASTClient(ctx, other, ua1); err != nil {
			t.Fatalf("revoking one account's tokens revoked another's: %v", err)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount", st.CreateAccount(ctx, owner, creds))
		old := fastTok(1, "HT-SHA-256-NONE", stamp(0), time.Minute)
		must(t, "IssueFASTToken", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua1}, old))
		must(t, "UseFASTToken", st.UseFASTToken(ctx, owner, ua1, old.Digest))
		// Issuing later drops the account's expired tokens.
		must(t, "IssueFASTToken later", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua2},
			fastTok(2, "HT-SHA-256-NONE", stamp(3600), time.Hour)))
		_, err := st.FASTClient(ctx, owner, ua1)
		wantErr(t, "client with only an expired token", err, storage.ErrNotFound)
	})

	t.Run("Cap", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount", st.CreateAccount(ctx, owner, creds))
		for i := range storage.MaxFASTClients + 3 {
			id := fmt.Sprintf("client-%03d", i)
			must(t, "IssueFASTToken", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: id},
				fastTok(byte(i), "HT-SHA-256-NONE", stamp(i), time.Hour)))
		}
		list, err := st.FASTClients(ctx, owner)
		must(t, "FASTClients", err)
		if len(list) != storage.MaxFASTClients || list[0].ClientID != "client-003" {
			t.Fatalf("%d clients kept, first %q; want %d from client-003", len(list), list[0].ClientID, storage.MaxFASTClients)
		}
	})

	t.Run("GoWithCredentials", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateAccount", st.CreateAccount(ctx, owner, creds))
		must(t, "CreateAccount", st.CreateAccount(ctx, other, creds))
		tok := fastTok(5, "HT-SHA-256-ENDP", stamp(0), time.Hour)
		must(t, "IssueFASTToken", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua1}, tok))
		must(t, "IssueFASTToken", st.IssueFASTToken(ctx, other, storage.FASTClient{ClientID: ua1}, tok))
		must(t, "SetCredentials", st.SetCredentials(ctx, owner, creds))
		_, err := st.FASTClient(ctx, owner, ua1)
		wantErr(t, "token after a password change", err, storage.ErrNotFound)
		must(t, "IssueFASTToken", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: ua1}, tok))
		must(t, "DeleteAccount", st.DeleteAccount(ctx, owner))
		_, err = st.FASTClient(ctx, owner, ua1)
		wantErr(t, "token after account deletion", err, storage.ErrNotFound)
		must(t, "CreateAccount again", st.CreateAccount(ctx, owner, creds))
		if list, err := st.FASTClients(ctx, owner); err != nil || len(list) != 0 {
			t.Fatalf("a new account with the old name has tokens: %+v %v", list, err)
		}
		if _, err := st.FASTClient(ctx, other, ua1); errors.Is(err, storage.ErrNotFound) {
			t.Fatal("another account lost its tokens")
		}
	})
}

// testUpgradeCredential checks that one credential is replaced or added
// and that the others and the FAST tokens stay.
func testUpgradeCredential(t *testing.T, open opener) {
	const owner = "juliet@capulet.example"
	st := open(t)
	ctx := t.Context()
	sha1c := storage.SCRAMCredential{Hash: "SHA-1", Salt: allBytes(1)[:16], Iterations: 4096, StoredKey: allBytes(2)[:20], ServerKey: allBytes(3)[:20]}
	old256 := storage.SCRAMCredential{Hash: "SHA-256", Salt: allBytes(4)[:16], Iterations: 4096, StoredKey: allBytes(5)[:32], ServerKey: allBytes(6)[:32]}
	wantErr(t, "UpgradeCredential without account", st.UpgradeCredential(ctx, owner, old256), storage.ErrNotFound)
	must(t, "CreateAccount", st.CreateAccount(ctx, owner, []storage.SCRAMCredential{sha1c, old256}))
	tok := fastTok(9, "HT-SHA-256-NONE", stamp(0), time.Hour)
	must(t, "IssueFASTToken", st.IssueFASTToken(ctx, owner, storage.FASTClient{ClientID: "c"}, tok))
	new256 := storage.SCRAMCredential{Hash: "SHA-256", Salt: allBytes(7)[:16], Iterations: 100000, StoredKey: allBytes(8)[:32], ServerKey: allBytes(9)[:32]}
	sha512 := storage.SCRAMCredential{Hash: "SHA-512", Salt: allBytes(10)[:16], Iterations: 100000, StoredKey: allBytes(11)[:64], ServerKey: allBytes(12)[:64]}
	must(t, "UpgradeCredential SHA-256", st.UpgradeCredential(ctx, owner, new256))
	must(t, "UpgradeCredential SHA-512", st.UpgradeCredential(ctx, owner, sha512))
	wantCreds(t, st, owner, []storage.SCRAMCredential{sha1c, new256, sha512})
	if _, err := st.FASTClient(ctx, owner, "c"); err != nil {
		t.Fatalf("an upgrade dropped the FAST tokens: %v", err)
	}
}
