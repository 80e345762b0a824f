package auth

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"errors"
	"slices"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

// upgradeSource is a memSource that can store upgraded credentials.
type upgradeSource struct{ *memSource }

func (u upgradeSource) UpgradeCredential(_ context.Context, bare string, c storage.SCRAMCredential) error {
	creds := slices.DeleteFunc(slices.Clone(u.creds[bare]), func(o storage.SCRAMCredential) bool { return o.Hash == c.Hash })
	u.creds[bare] = append(creds, c)
	return nil
}

func TestUpgrade(t *testing.T) {
	ctx := context.Background()
	if s, _ := newTestServer(t, Config{}); s.UpgradeTasks() != nil {
		t.Fatal("upgrades offered by a store that cannot keep them")
	}
	creds, err := DeriveCredentials(testPass, MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	bare := "user@" + testDomain
	src := upgradeSource{&memSource{creds: map[string][]storage.SCRAMCredential{
		bare: slices.DeleteFunc(creds, func(c storage.SCRAMCredential) bool { return c.Hash == "SHA-512" })}}}
	s := NewServer(Config{Iterations: 5000}, src)
	if got := s.UpgradeTasks(); !slices.Equal(got, []string{"UPGR-SCRAM-SHA-512", "UPGR-SCRAM-SHA-256", "UPGR-SCRAM-SHA-1"}) {
		t.Fatalf("tasks %v", got)
	}
	for task, want := range map[string]bool{"UPGR-SCRAM-SHA-512": true, "UPGR-SCRAM-SHA-256": true, "UPGR-MD5": false, "SCRAM-SHA-1": false} {
		if got, err := s.UpgradeNeeded(ctx, bare, task); err != nil || got != want {
			t.Errorf("%s needed: %v, %v; want %v", task, got, err, want)
		}
	}
	if _, err := s.UpgradeNeeded(ctx, "nobody@"+testDomain, "UPGR-SCRAM-SHA-512"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown account: %v", err)
	}

	salt, iter, err := s.UpgradeSalt()
	if err != nil || len(salt) < 16 || iter != 5000 {
		t.Fatalf("salt %x, %d iterations, %v", salt, iter, err)
	}
	var f *Failure
	if err := s.Upgrade(ctx, bare, "UPGR-SCRAM-SHA-512", salt, iter, make([]byte, 32)); !errors.As(err, &f) || f.Condition != CondMalformedRequest {
		t.Fatalf("short SaltedPassword: %v", err)
	}
	salted, _ := pbkdf2.Key(sha512.New, testPass, salt, iter, 64)
	if err := s.Upgrade(ctx, bare, "UPGR-SCRAM-SHA-512", salt, iter, salted); err != nil {
		t.Fatal(err)
	}
	c, ok := credFor(src.creds[bare], hashByName("SHA-512"))
	if !ok || c.Iterations != 5000 || !VerifyPassword([]storage.SCRAMCredential{c}, testPass) || VerifyPassword([]storage.SCRAMCredential{c}, "other") {
		t.Fatalf("stored %+v", c)
	}
	if got, _ := s.UpgradeNeeded(ctx, bare, "UPGR-SCRAM-SHA-512"); got {
		t.Fatal("upgrade still needed after it ran")
	}
}
