package interop

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

// TestSlixmppBytestreamsProxy: two slixmpp clients (xep_0065) find the
// server's SOCKS5 proxy and move 200 kB through it, byte for byte.
func TestSlixmppBytestreamsProxy(t *testing.T) {
	slixmpp.available(t)
	ts := testserver.Start(t, func(c *server.Config) {
		c.Proxy65.Listen = "127.0.0.1:0"
		c.Proxy65.Host = "127.0.0.1"
	})
	alice := ts.AddUser("alice", "alice-pw")
	bob := ts.AddUser("bob", "bob-pw")
	host, port := splitAddr(ts.Addr("c2s"))
	cfg, _ := json.Marshal(map[string]any{"host": host, "port": port,
		"initiator": alice + "/sender", "initiator_password": "alice-pw",
		"target": bob + "/receiver", "target_password": "bob-pw",
		"size": 200_000, "deadline": scriptDeadline})
	ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonPath, "slixmpp/bytestreams.py", string(cfg))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("script output:\n%s", out)
	if err != nil {
		t.Fatalf("bytestreams script: %v", err)
	}
	var proxies, received transferEvent
	for _, line := range strings.Split(string(out), "\n") {
		var e transferEvent
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		switch e.Event {
		case "proxies":
			proxies = e
		case "received":
			received = e
		}
	}
	_, p := splitAddr(ts.Addr("proxy65"))
	if hp := proxies.Proxies["proxy.localhost"]; len(hp) != 2 || hp[0] != "127.0.0.1" || int(hp[1].(float64)) != p {
		t.Fatalf("discovered proxies %v", proxies.Proxies)
	}
	if received.Bytes != 200_000 || received.SHA256 == "" || received.SHA256 != received.SentSHA256 {
		t.Fatalf("received %+v", received)
	}
}

type transferEvent struct {
	Event      string           `json:"event"`
	Proxies    map[string][]any `json:"proxies"`
	Bytes      int              `json:"bytes"`
	SHA256     string           `json:"sha256"`
	SentSHA256 string           `json:"sent_sha256"`
}
