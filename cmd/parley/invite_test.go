package main

import (
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/server"
)

// TestInviteAndTokenCLI: parley invite create|list|revoke and parley admin
// token create|list|revoke work on the same functions as the commands and
// the API (the e2e tests use what they create).
func TestInviteAndTokenCLI(t *testing.T) {
	cfgPath, _ := testCLIConfig(t, "")
	c := "--config=" + cfgPath

	r := runCLI(t, "", "invite", "create", "--expires", "2d", "--uses", "3", "--domain", "example.org", c)
	r.ok(t, "")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "/invite/") || !strings.HasPrefix(lines[1], "xmpp:example.org?register;preauth=") {
		t.Fatalf("invite create output: %q", r.out)
	}
	if !strings.Contains(r.err, "3 use(s)") {
		t.Fatalf("invite create stderr: %q", r.err)
	}
	r = runCLI(t, "", "invite", "create", "--username", "zoe", "--admin", c)
	r.ok(t, "")
	if !strings.Contains(r.out, "xmpp:zoe@localhost?register;preauth=") {
		t.Fatalf("reserved invite: %q", r.out)
	}
	runCLI(t, "", "invite", "create", "--username", "zoe", c).fails(t, "already reserved")
	runCLI(t, "", "invite", "create", "--expires", "soon", c).fails(t, "--expires")
	runCLI(t, "", "invite", "create", "--uses", "0", c).fails(t, "number of uses")
	runCLI(t, "", "invite", "create", "--domain", "nowhere.example", c).fails(t, "not served here")

	r = runCLI(t, "", "invite", "list", c)
	r.ok(t, "")
	if strings.Count(r.out, "\n") != 3 || !strings.Contains(r.out, "zoe") || !strings.Contains(r.out, "true") {
		t.Fatalf("invite list: %q", r.out)
	}
	id := strings.Fields(strings.Split(r.out, "\n")[1])[0]
	runCLI(t, "", "invite", "revoke", id, c).ok(t, "invitation revoked\n")
	runCLI(t, "", "invite", "revoke", id, c).fails(t, "no such invitation")

	r = runCLI(t, "", "admin", "token", "create", "--name", "backups", c)
	r.ok(t, "")
	tok := strings.TrimSpace(r.out)
	if !strings.HasPrefix(tok, "parley_") || len(tok) < 40 {
		t.Fatalf("token: %q", r.out)
	}
	r = runCLI(t, "", "admin", "token", "list", c)
	r.ok(t, "")
	if !strings.Contains(r.out, "backups") || strings.Contains(r.out, tok) {
		t.Fatalf("token list (must not show the token): %q", r.out)
	}
	tid := strings.Fields(strings.Split(r.out, "\n")[1])[0]
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := server.OpenStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := server.NewAdmin(cfg, st, nil, nil, nil).CheckAPIToken(t.Context(), tok); !ok {
		t.Fatal("created token does not authenticate")
	}
	st.Close()
	runCLI(t, "", "admin", "token", "revoke", tid, c).ok(t, "token revoked\n")
	runCLI(t, "", "admin", "token", "revoke", tid, c).fails(t, "no such token")
}
