package storagetest

import (
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// testLastActivity checks the XEP-0012 record: one per account, replaced
// on each logout, text kept exactly, gone with the account.
func testLastActivity(t *testing.T, open opener) {
	const owner, other = "juliet@capulet.example", "romeo@montague.example"
	st := open(t)
	ctx := t.Context()
	wantErr(t, "SetLastActivity without account", st.SetLastActivity(ctx, owner, stamp(0), "x"), storage.ErrNotFound)
	must(t, "CreateAccount", st.CreateAccount(ctx, owner, nil))
	must(t, "CreateAccount", st.CreateAccount(ctx, other, nil))
	_, _, err := st.LastActivity(ctx, owner)
	wantErr(t, "LastActivity before any", err, storage.ErrNotFound)
	for i, status := range []string{"Heading Home & <away> 🌹 \t\n", ""} {
		must(t, "SetLastActivity", st.SetLastActivity(ctx, owner, stamp(i*60), status))
		at, got, err := st.LastActivity(ctx, owner)
		must(t, "LastActivity", err)
		if !at.Equal(stamp(i*60)) || got != status {
			t.Fatalf("LastActivity = %v %q, want %v %q", at, got, stamp(i*60), status)
		}
	}
	must(t, "SetLastActivity other", st.SetLastActivity(ctx, other, stamp(7), "other"))
	must(t, "DeleteAccount", st.DeleteAccount(ctx, owner))
	_, _, err = st.LastActivity(ctx, owner)
	wantErr(t, "LastActivity after DeleteAccount", err, storage.ErrNotFound)
	if at, status, err := st.LastActivity(ctx, other); err != nil || !at.Equal(stamp(7)) || status != "other" {
		t.Fatalf("other account: %v %q %v", at, status, err)
	}
}
