package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/storage"
)

func TestUserSuspend(t *testing.T) {
	c, _ := testCLIConfig(t, "")
	cfg := "--config=" + c
	runCLI(t, "", "user", "add", "mallory@localhost", "--password", "pw", cfg).ok(t, "user mallory@localhost created\n")
	okHas(t, runCLI(t, "", "user", "suspend", "Mallory@localhost", "--reason", "spam runs", "--for", "72h", cfg),
		"user mallory@localhost suspended until ")
	r := runCLI(t, "", "user", "suspended", cfg)
	okHas(t, r, "mallory@localhost")
	if !strings.Contains(r.out, "spam runs") || !strings.Contains(r.out, "cli") {
		t.Fatalf("suspended: %q", r.out)
	}
	runCLI(t, "", "user", "suspend", "nobody@localhost", cfg).fails(t, "no such user nobody@localhost")
	runCLI(t, "", "user", "suspend", "mallory@localhost", "--for", "-1h", cfg).fails(t, "--for")
	runCLI(t, "", "user", "unsuspend", "mallory@localhost", cfg).ok(t, "user mallory@localhost can log in again\n")
	runCLI(t, "", "user", "unsuspend", "mallory@localhost", cfg).fails(t, "user mallory@localhost is not suspended")
	okHas(t, runCLI(t, "", "user", "suspend", "mallory@localhost", cfg), "until lifted with parley user unsuspend")
}

func TestAbuseReports(t *testing.T) {
	c, _ := testCLIConfig(t, "")
	cfg := "--config=" + c
	conf, err := loadConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := server.OpenStore(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	for i, by := range []string{"alice@localhost", "bob@localhost", "alice@localhost"} {
		if _, err := st.AddSpamReport(ctx, storage.SpamReport{Reporter: by, Reported: "spam@evil.example", Reason: storage.ReportSpam,
			Text: "pills", StanzaIDs: []string{"x"}, Created: time.Now().Add(time.Duration(i) * time.Second)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.AddSpamReport(ctx, storage.SpamReport{Reporter: "alice@localhost", Reported: "troll@example.net",
		Reason: storage.ReportAbuse, Created: time.Now()}, 0); err != nil {
		t.Fatal(err)
	}
	st.Close()
	r := runCLI(t, "", "abuse", "top", cfg)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], "spam@evil.example") || !strings.Contains(lines[1], " 2 ") {
		t.Fatalf("abuse top: %d %q %q", r.code, r.out, r.err)
	}
	r = runCLI(t, "", "abuse", "reports", "spam@evil.example", cfg)
	if r.code != 0 || strings.Count(r.out, "spam@evil.example") != 3 || !strings.Contains(r.out, `"pills"`) {
		t.Fatalf("abuse reports: %q %q", r.out, r.err)
	}
	runCLI(t, "", "abuse", "dismiss", "spam@evil.example", cfg).ok(t, "3 report(s) about spam@evil.example deleted\n")
	if r := runCLI(t, "", "abuse", "reports", cfg); strings.Contains(r.out, "spam@evil") || !strings.Contains(r.out, "troll@example.net") {
		t.Fatalf("after dismiss: %q", r.out)
	}
}
