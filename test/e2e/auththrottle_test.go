package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

// TestLoginThrottleNoOracle is finding 5 of issue 16: once an account had
// failed logins, a correct password got temporary-auth-failure and a
// wrong one not-authorized (a password oracle), and anyone could lock the
// owner out. Now the account is slowed down, not locked: the owner still
// logs in, attempts that would queue too long are refused before the
// proof is looked at (the same answer for a right and a wrong password),
// and the owner's address skips the queue.
func TestLoginThrottleNoOracle(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t, func(c *server.Config) {
		c.Auth.MaxFailures = 2
		c.Auth.FailureWindow = time.Minute
		c.Auth.MaxDelay = 8 * time.Second
		c.Auth.MaxWait = 200 * time.Millisecond
	})
	ts.AddUser("alice", "right")
	// Every attempt from an address of its own: the address limit (also
	// 2) must not be what is tested.
	next := 2
	from := func() *testserver.Client {
		c := ts.ConnectFrom(fmt.Sprintf("127.0.0.%d", next))
		next++
		return c
	}
	login := func(c *testserver.Client, password string) string {
		t.Helper()
		if err := c.Auth(c.Features(), "SCRAM-SHA-256", "alice", password); err != nil {
			for _, cond := range []string{"not-authorized", "temporary-auth-failure"} {
				if strings.Contains(err.Error(), "<"+cond+"/>") {
					return cond
				}
			}
			t.Fatalf("unexpected SASL answer: %v", err)
		}
		return "success"
	}
	for range 2 {
		if got := login(from(), "wrong"); got != "not-authorized" {
			t.Fatalf("wrong password: %s", got)
		}
	}
	// At the limit, the owner logs in from a new address.
	owner := "127.0.0.200"
	if got := login(ts.ConnectFrom(owner), "right"); got != "success" {
		t.Fatalf("the owner's login after two failed guesses by others: %s, want success (no lockout)", got)
	}

	// Guessing again: at the limit, turns are a second apart.
	for range 2 {
		if got := login(from(), "wrong"); got != "not-authorized" {
			t.Fatalf("wrong password: %s", got)
		}
	}
	// Connected in advance so that the attempts follow each other closely.
	first, right, wrong, own := from(), from(), from(), ts.ConnectFrom(owner)
	fr, rr, wr, or := first.Features(), right.Features(), wrong.Features(), own.Features()
	if err := first.Auth(fr, "SCRAM-SHA-256", "alice", "wrong"); err == nil || !strings.Contains(err.Error(), "not-authorized") {
		t.Fatalf("first queued guess: %v", err)
	}
	// The next turn is a second away, beyond max_wait: refused before the
	// proof is checked, whether the password is right or wrong.
	for _, c := range []struct {
		cl       *testserver.Client
		features *wire.Stanza
		password string
	}{{right, rr, "right"}, {wrong, wr, "wrong"}} {
		err := c.cl.Auth(c.features, "SCRAM-SHA-256", "alice", c.password)
		if err == nil || !strings.Contains(err.Error(), "<temporary-auth-failure/>") {
			t.Errorf("%s password while the account is throttled: %v, want temporary-auth-failure", c.password, err)
		}
	}
	// The owner's address goes straight through.
	start := time.Now()
	if err := own.Auth(or, "SCRAM-SHA-256", "alice", "right"); err != nil {
		t.Fatalf("owner from a known address: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("owner from a known address waited %v", d)
	}
}
