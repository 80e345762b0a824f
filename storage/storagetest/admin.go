package storagetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func wantInvite(t *testing.T, what string, got, want storage.Invite) {
	t.Helper()
	if got.ID != want.ID || !bytes.Equal(got.TokenHash, want.TokenHash) || got.Domain != want.Domain ||
		got.Username != want.Username || got.Owner != want.Owner || got.Admin != want.Admin ||
		!got.Created.Equal(want.Created) || !got.Expires.Equal(want.Expires) || got.UsesLeft != want.UsesLeft {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
}

// testAdmin covers invitations, roles, settings and API tokens.
func testAdmin(t *testing.T, open opener) {
	t.Run("Invites", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		once := storage.Invite{ID: "inv1", TokenHash: hashOf("t1"), Domain: "example.org", Owner: "romeo@example.org",
			Created: stamp(0), Expires: stamp(3600), UsesLeft: 1}
		multi := storage.Invite{ID: "inv2", TokenHash: hashOf("t2"), Domain: "example.net", Username: "jüliet",
			Admin: true, Created: stamp(10), UsesLeft: 2}
		must(t, "CreateInvite", st.CreateInvite(ctx, once))
		must(t, "CreateInvite", st.CreateInvite(ctx, multi))
		wantErr(t, "CreateInvite same id", st.CreateInvite(ctx, once), storage.ErrExists)
		got, err := st.InviteByHash(ctx, hashOf("t1"))
		must(t, "InviteByHash", err)
		wantInvite(t, "InviteByHash", got, once)
		_, err = st.InviteByHash(ctx, hashOf("forged"))
		wantErr(t, "InviteByHash forged", err, storage.ErrNotFound)

		all, err := st.ListInvites(ctx, "")
		must(t, "ListInvites", err)
		if len(all) != 2 {
			t.Fatalf("ListInvites = %d invites, want 2", len(all))
		}
		wantInvite(t, "ListInvites[0] (newest)", all[0], multi)
		wantInvite(t, "ListInvites[1]", all[1], once)
		one, err := st.ListInvites(ctx, "example.org")
		must(t, "ListInvites(domain)", err)
		if len(one) != 1 || one[0].ID != "inv1" {
			t.Fatalf("ListInvites(example.org) = %+v", one)
		}

		// Expired: refused, and removed by DeleteExpiredInvites.
		_, err = st.UseInvite(ctx, hashOf("t1"), stamp(3600))
		wantErr(t, "UseInvite expired", err, storage.ErrNotFound)
		_, err = st.UseInvite(ctx, hashOf("forged"), stamp(0))
		wantErr(t, "UseInvite forged", err, storage.ErrNotFound)
		got, err = st.UseInvite(ctx, hashOf("t1"), stamp(1))
		must(t, "UseInvite", err)
		wantInvite(t, "UseInvite", got, once)
		_, err = st.UseInvite(ctx, hashOf("t1"), stamp(2))
		wantErr(t, "UseInvite used up", err, storage.ErrNotFound)
		// A use given back works again, once.
		must(t, "ReturnInvite", st.ReturnInvite(ctx, once))
		_, err = st.UseInvite(ctx, hashOf("t1"), stamp(2))
		must(t, "UseInvite after ReturnInvite", err)
		_, err = st.UseInvite(ctx, hashOf("t1"), stamp(2))
		wantErr(t, "UseInvite used up again", err, storage.ErrNotFound)

		// Two uses, never expiring.
		got, err = st.UseInvite(ctx, hashOf("t2"), stamp(1<<30))
		must(t, "UseInvite multi", err)
		if got.UsesLeft != 2 {
			t.Fatalf("UseInvite returned UsesLeft %d, want the state before (2)", got.UsesLeft)
		}
		got, err = st.InviteByHash(ctx, hashOf("t2"))
		must(t, "InviteByHash", err)
		if got.UsesLeft != 1 {
			t.Fatalf("UsesLeft after one use = %d", got.UsesLeft)
		}
		must(t, "ReturnInvite", st.ReturnInvite(ctx, got))
		got, _ = st.InviteByHash(ctx, hashOf("t2"))
		if got.UsesLeft != 2 {
			t.Fatalf("UsesLeft after ReturnInvite = %d", got.UsesLeft)
		}

		must(t, "CreateInvite", st.CreateInvite(ctx, storage.Invite{ID: "old", TokenHash: hashOf("t3"), Domain: "example.org",
			Created: stamp(0), Expires: stamp(5), UsesLeft: 1}))
		n, err := st.DeleteExpiredInvites(ctx, stamp(6))
		must(t, "DeleteExpiredInvites", err)
		if n != 1 {
			t.Fatalf("DeleteExpiredInvites removed %d, want 1", n)
		}
		must(t, "DeleteInvite", st.DeleteInvite(ctx, "inv2"))
		wantErr(t, "DeleteInvite again", st.DeleteInvite(ctx, "inv2"), storage.ErrNotFound)
		_, err = st.UseInvite(ctx, hashOf("t2"), stamp(0))
		wantErr(t, "UseInvite revoked", err, storage.ErrNotFound)
	})
	t.Run("InviteConcurrentUse", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "CreateInvite", st.CreateInvite(ctx, storage.Invite{ID: "c", TokenHash: hashOf("c"), Domain: "example.org",
			Created: stamp(0), UsesLeft: 3}))
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.UseInvite(ctx, hashOf("c"), stamp(1))
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					ok++
				} else if !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("UseInvite: %v", err)
				}
			}()
		}
		wg.Wait()
		if ok != 3 {
			t.Fatalf("%d concurrent uses succeeded on a 3-use token", ok)
		}
	})
	t.Run("Roles", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		must(t, "GrantRole", st.GrantRole(ctx, "b@example.org", "admin"))
		must(t, "GrantRole", st.GrantRole(ctx, "a@example.org", "admin"))
		must(t, "GrantRole twice", st.GrantRole(ctx, "a@example.org", "admin"))
		has, err := st.HasRole(ctx, "a@example.org", "admin")
		must(t, "HasRole", err)
		if !has {
			t.Fatal("HasRole = false after GrantRole")
		}
		if has, _ := st.HasRole(ctx, "a@example.org", "other"); has {
			t.Fatal("HasRole of another role = true")
		}
		m, err := st.RoleMembers(ctx, "admin")
		must(t, "RoleMembers", err)
		if !slices.Equal(m, []string{"a@example.org", "b@example.org"}) {
			t.Fatalf("RoleMembers = %q", m)
		}
		must(t, "RevokeRole", st.RevokeRole(ctx, "a@example.org", "admin"))
		if has, _ := st.HasRole(ctx, "a@example.org", "admin"); has {
			t.Fatal("HasRole = true after RevokeRole")
		}
	})
	t.Run("Settings", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		_, err := st.Setting(ctx, "welcome")
		wantErr(t, "Setting unset", err, storage.ErrNotFound)
		must(t, "SetSetting", st.SetSetting(ctx, "welcome", "Hello & 🌹\nline two"))
		must(t, "SetSetting", st.SetSetting(ctx, "other", "x"))
		v, err := st.Setting(ctx, "welcome")
		must(t, "Setting", err)
		if v != "Hello & 🌹\nline two" {
			t.Fatalf("Setting = %q", v)
		}
		must(t, "SetSetting replace", st.SetSetting(ctx, "welcome", "Bye"))
		all, err := st.AllSettings(ctx)
		must(t, "AllSettings", err)
		if len(all) != 2 || all["welcome"] != "Bye" || all["other"] != "x" {
			t.Fatalf("AllSettings = %v", all)
		}
		v, err = st.SettingOrSet(ctx, "other", "y")
		must(t, "SettingOrSet existing", err)
		if v != "x" {
			t.Fatalf("SettingOrSet on a set key = %q, want the stored x", v)
		}
		v, err = st.SettingOrSet(ctx, "fresh", "z")
		must(t, "SettingOrSet new", err)
		if v2, _ := st.Setting(ctx, "fresh"); v != "z" || v2 != "z" {
			t.Fatalf("SettingOrSet on an unset key = %q, stored %q, want z", v, v2)
		}
		must(t, "SetSetting empty", st.SetSetting(ctx, "fresh", ""))
		must(t, "SetSetting empty", st.SetSetting(ctx, "welcome", ""))
		_, err = st.Setting(ctx, "welcome")
		wantErr(t, "Setting deleted", err, storage.ErrNotFound)
	})
	t.Run("APITokens", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		a := storage.APIToken{ID: "a", TokenHash: hashOf("ta"), Name: "backup script", Created: stamp(0)}
		b := storage.APIToken{ID: "b", TokenHash: hashOf("tb"), Name: "", Created: stamp(5)}
		must(t, "CreateAPIToken", st.CreateAPIToken(ctx, a))
		must(t, "CreateAPIToken", st.CreateAPIToken(ctx, b))
		wantErr(t, "CreateAPIToken same id", st.CreateAPIToken(ctx, a), storage.ErrExists)
		got, err := st.APITokenByHash(ctx, hashOf("ta"))
		must(t, "APITokenByHash", err)
		if got.ID != "a" || got.Name != "backup script" || !got.Created.Equal(stamp(0)) || !bytes.Equal(got.TokenHash, a.TokenHash) {
			t.Fatalf("APITokenByHash = %+v", got)
		}
		_, err = st.APITokenByHash(ctx, hashOf("forged"))
		wantErr(t, "APITokenByHash forged", err, storage.ErrNotFound)
		l, err := st.ListAPITokens(ctx)
		must(t, "ListAPITokens", err)
		if len(l) != 2 || l[0].ID != "a" || l[1].ID != "b" {
			t.Fatalf("ListAPITokens = %+v", l)
		}
		must(t, "DeleteAPIToken", st.DeleteAPIToken(ctx, "a"))
		wantErr(t, "DeleteAPIToken again", st.DeleteAPIToken(ctx, "a"), storage.ErrNotFound)
		_, err = st.APITokenByHash(ctx, hashOf("ta"))
		wantErr(t, "APITokenByHash revoked", err, storage.ErrNotFound)
	})
	t.Run("DeleteAccount", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		const bare, other = "romeo@example.org", "juliet@example.org"
		must(t, "CreateAccount", st.CreateAccount(ctx, bare, []storage.SCRAMCredential{credSHA1}))
		must(t, "CreateAccount", st.CreateAccount(ctx, other, []storage.SCRAMCredential{credSHA1}))
		for i, owner := range []string{bare, other, ""} {
			must(t, "CreateInvite", st.CreateInvite(ctx, storage.Invite{ID: string(rune('a' + i)), TokenHash: hashOf(owner + "x"),
				Domain: "example.org", Owner: owner, Created: stamp(i), UsesLeft: 1}))
		}
		must(t, "GrantRole", st.GrantRole(ctx, bare, "admin"))
		must(t, "GrantRole", st.GrantRole(ctx, other, "admin"))
		must(t, "DeleteAccount", st.DeleteAccount(ctx, bare))
		l, err := st.ListInvites(ctx, "")
		must(t, "ListInvites", err)
		if len(l) != 2 || slices.ContainsFunc(l, func(i storage.Invite) bool { return i.Owner == bare }) {
			t.Fatalf("invitations after DeleteAccount of the inviter: %+v", l)
		}
		m, _ := st.RoleMembers(ctx, "admin")
		if !slices.Equal(m, []string{other}) {
			t.Fatalf("roles after DeleteAccount = %q", m)
		}
	})
}
