package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

func TestScannerSplitsTopLevelElements(t *testing.T) {
	in := "  <message to='a' id='1'><body>x &lt; y</body></message>\n<r xmlns='urn:xmpp:sm:3'/>" +
		"<iq type='get' id='p&apos;1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>" +
		"<message a=\"q'>\"><x/><body>pb:3:7:42:1700000000000000000</body></message></stream:stream>"
	want := []string{"<message to='a' id='1'><body>x &lt; y</body></message>", "<r xmlns='urn:xmpp:sm:3'/>",
		"<iq type='get' id='p&apos;1' from='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<message a=\"q'>\"><x/><body>pb:3:7:42:1700000000000000000</body></message>"}
	// Whole, and a byte a read (the scanner works on what is buffered).
	for _, src := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
		sc := newScanner(bufio.NewReader(src))
		var got []string
		for {
			el, err := sc.next()
			if errors.Is(err, errStreamEnd) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, string(el))
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	}
	if elemName([]byte(want[1])) != "r" || isStanza([]byte(want[1])) || !isStanza([]byte(want[2])) {
		t.Error("elemName/isStanza")
	}
	if v := attrValue([]byte(want[2]), "id"); v != "p&apos;1" {
		t.Errorf("attrValue = %q", v)
	}
	step, sender, seq, due, ok := parseMarker([]byte(want[3]))
	if !ok || step != 3 || sender != 7 || seq != 42 || due != 1700000000000000000 {
		t.Errorf("parseMarker = %d %d %d %d %v", step, sender, seq, due, ok)
	}
	if _, _, _, _, ok := parseMarker([]byte("<message><body>pb:1:2</body></message>")); ok {
		t.Error("a truncated marker parsed")
	}
	m := appendMarker(nil, 1, 2, 3, 4)
	if string(m) != "pb:1:2:3:4" {
		t.Errorf("appendMarker = %s", m)
	}
}

// BenchmarkReceive is a receiver's work for one delivered message:
// splitting it off the stream, the stanza count and the marker.
func BenchmarkReceive(b *testing.B) {
	msg := "<message from='bench1@localhost/r' to='bench0@localhost' type='chat' id='k3'><body>pb:1:7:12345:1700000000000000000</body></message>"
	in := strings.Repeat(msg, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	c := &client{}
	for i := 0; i < b.N; {
		sc := newScanner(bufio.NewReader(strings.NewReader(in)))
		for j := 0; j < 1000 && i < b.N; j, i = j+1, i+1 {
			el, err := sc.next()
			if err != nil {
				b.Fatal(err)
			}
			if stanza, _ := c.answer(el, true); !stanza || elemName(el) != "message" {
				b.Fatal("not a message")
			}
			if _, _, _, _, ok := parseMarker(el); !ok {
				b.Fatal("no marker")
			}
		}
	}
}

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p := pct(d)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("pct = %+v", p)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 {
		t.Error("median")
	}
}

// TestScenariosAgainstServer runs every scenario at a small scale against
// an in-process server over loopback (plain and STARTTLS), so the SCRAM
// client, the scanner and the scenario bookkeeping are exercised against
// the real server.
func TestScenariosAgainstServer(t *testing.T) {
	ts := testserver.Start(t, func(c *server.Config) { c.Auth.RequireTLS = false })
	tg := &target{c2s: ts.Addr("c2s"), c2sTLS: ts.Addr("c2s_tls"), admin: ts.Addr("admin"), domain: ts.Domain,
		userPrefix: "bench", password: "pw", pid: os.Getpid(), archive: "sqlite"}
	for i := 0; i < 20; i++ {
		ts.AddUser(tg.user(i), tg.password)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var buf bytes.Buffer
	out := &emitter{w: &buf}
	lines := func() []map[string]any {
		var v []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			m := map[string]any{}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			v = append(v, m)
		}
		buf.Reset()
		return v
	}

	for _, sec := range []string{secPlain, secStartTLS, secTLS} {
		d := &dialer{tg: tg, sec: sec, timeout: 10 * time.Second, cache: newSaltCache(), spreadTo: 4}
		r, err := runLogin(ctx, d, tg, loginConfig{logins: 20, concurrency: 4, users: 5, sec: sec}, out)
		if err != nil || r.Errors != 0 || r.Rate <= 0 {
			t.Fatalf("login %s: %+v %v", sec, r, err)
		}
		if l := lines(); len(l) != 1 || l[0]["scenario"] != "login" || l[0]["sec"] != sec {
			t.Errorf("login output: %v", l)
		}
	}
	// A wrong password fails with the server's SASL failure.
	bad := *tg
	bad.password = "wrong"
	if _, err := (&dialer{tg: &bad, sec: secPlain, timeout: 10 * time.Second}).login(ctx, bad.user(0), loginOpts{}); err == nil ||
		!strings.Contains(err.Error(), "not-authorized") {
		t.Errorf("wrong password: %v", err)
	}

	d := &dialer{tg: tg, sec: secPlain, timeout: 10 * time.Second, cache: newSaltCache()}
	sum, err := runThroughput(ctx, d, tg, throughputConfig{pairs: 4, rates: []int{200, 400}, step: 500 * time.Millisecond,
		drain: 5 * time.Second, late: time.Second, maxP99: 5 * time.Second, sm: true, sec: secPlain, keepGoing: true}, out)
	if err != nil {
		t.Fatal(err)
	}
	steps := lines()
	if len(steps) != 2 {
		t.Fatalf("throughput: %d steps: %v", len(steps), steps)
	}
	for _, s := range steps {
		if s["lost"].(float64) != 0 || s["out_of_order"].(float64) != 0 || s["sent"].(float64) < 90 ||
			s["received"] != s["sent"] || s["p99_ms"].(float64) <= 0 {
			t.Errorf("throughput step: %v", s)
		}
		if _, ok := s["sm_unacked"]; ok {
			t.Errorf("the server left stanzas unacknowledged after the step drained: %v", s)
		}
	}
	// Whether a step was sustainable depends on how busy the machine is;
	// the summary must agree with the steps either way.
	want := 0
	for _, s := range steps {
		if s["sustainable"] == true {
			want = max(want, int(s["rate"].(float64)))
		}
	}
	if sum.MaxSustainable != want {
		t.Errorf("max sustainable = %d, the steps say %d: %v", sum.MaxSustainable, want, steps)
	}

	ir, err := runIdle(ctx, d, tg, idleConfig{conns: 10, concurrency: 4, settle: 10 * time.Millisecond, sm: true, presence: true, sec: secPlain}, out)
	if err != nil || ir.RSSAfter <= 0 || ir.GoroutinesPerConn <= 0 {
		t.Fatalf("idle: %+v %v", ir, err)
	}
	lines()

	// Group chat: one room of 6, two of them talking.
	mr0, err := runMUC(ctx, d, tg, mucConfig{throughputConfig: throughputConfig{rates: []int{8}, step: 500 * time.Millisecond,
		drain: 5 * time.Second, late: time.Second, maxP99: 5 * time.Second, sm: true, sec: secPlain},
		rooms: 1, occupants: 6, senders: 2, service: "conference." + ts.Domain}, out)
	if err != nil {
		t.Fatal(err)
	}
	ml := lines()
	if len(ml) != 1 || ml[0]["scenario"] != "muc" || ml[0]["fanout"].(float64) != 6 || ml[0]["lost"].(float64) != 0 ||
		ml[0]["received"].(float64) != 6*ml[0]["sent"].(float64) || ml[0]["out_of_order"].(float64) != 0 || mr0.MaxSustainable != 8 {
		t.Errorf("muc: %v %+v", ml, mr0)
	}

	// The mam scenario on accounts with empty archives.
	mt := *tg
	mt.userPrefix = "mam"
	ts.AddUser(mt.user(0), mt.password)
	ts.AddUser(mt.user(1), mt.password)
	d = &dialer{tg: &mt, sec: secPlain, timeout: 10 * time.Second}
	mr, err := runMAM(ctx, d, &mt, mamConfig{messages: 120, page: 50, repeat: 2, sec: secPlain}, out)
	if err != nil || mr.Messages != 120 || mr.Pages != 3 {
		t.Fatalf("mam: %+v %v", mr, err)
	}
	if l := lines(); len(l) != 2 {
		t.Errorf("mam output: %v", l)
	}
}
