// Package crash proves crash safety (issue 16): the real server binary is
// killed with SIGKILL at random moments while a client with stream
// management sends messages, restarted on the same store, and every
// message the server acknowledged must be in the recipient's offline
// delivery (when the recipient was offline) and archive, once, in order.
//
//	go test ./test/crash                               50 rounds per backend
//	PARLEY_CRASH_ROUNDS=1000 go test ./test/crash -timeout 3h -v
//
// The PostgreSQL backend runs when a server is reachable
// (PARLEY_TEST_POSTGRES, default the local one); it says so when skipped.
package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const nsSM = "urn:xmpp:sm:3"

func rounds() int {
	if n, err := strconv.Atoi(os.Getenv("PARLEY_CRASH_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 50
}

// bin is cmd/parley, built once by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-crash-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "parley")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/parley-xmpp/parley/cmd/parley").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is the server as a child process on a fixed port and data dir.
type proc struct {
	t      *testing.T
	bin    string
	config string
	addr   string
	log    *os.File
	cmd    *exec.Cmd
	starts int
}

func newProc(t *testing.T, bin, storage string) *proc {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t)
	config := filepath.Join(dir, "parley.yaml")
	yaml := fmt.Sprintf(`hosts: [localhost]
data_dir: %q
listen: {c2s: %q, c2s_tls: "", http: "", https: "", admin: "", s2s: "", s2s_tls: ""}
auth: {iterations: 4096}
limits: {stanzas_per_second: 100000, max_offline_messages: 100000, max_offline_bytes: 1073741824}
log: {level: warn}
%s`, filepath.Join(dir, "data"), addr, storage)
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, bin: bin, config: config, addr: addr, log: log}
	t.Cleanup(func() {
		p.kill()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("server log (last 4 KiB):\n%s", tail(b, 4096))
		}
	})
	for _, u := range []string{"alice", "bob"} {
		out, err := exec.Command(bin, "user", "add", u+"@localhost", "--password", "pw", "--config", config).CombinedOutput()
		if err != nil {
			t.Fatalf("user add %s: %v\n%s", u, err, out)
		}
	}
	return p
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func freePort(t *testing.T) string {
	t.Helper()
	c, err := (&netListen{}).listen()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// start runs the server and waits until it accepts connections.
func (p *proc) start() {
	p.t.Helper()
	p.starts++
	fmt.Fprintf(p.log, "---- start %d\n", p.starts)
	p.cmd = exec.Command(p.bin, "serve", "--config", p.config)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	dieWithTest(p.cmd)
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			p.cmd = nil
			p.t.Fatalf("server exited at start: %v", err)
		default:
		}
		if c, err := dial(p.addr); err == nil {
			c.Close()
			go func(cmd *exec.Cmd) { <-done }(p.cmd)
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatal("server did not start within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL: no shutdown code runs.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	for i := 0; i < 500; i++ { // the port is free once the process is gone
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	p.cmd = nil
}

func (p *proc) login(user, resource string) *testserver.Client {
	p.t.Helper()
	c := testserver.ConnectTo(p.t, p.addr, "localhost")
	c.LoginWith(c.Features(), "SCRAM-SHA-256", user, "pw", resource)
	return c
}

// body is message i of round r.
func body(r, i int) string { return fmt.Sprintf("r%d m%d", r, i) }

// indexes extracts the message numbers of round r from bodies, in order.
func indexes(r int, bodies []string) []int {
	prefix := fmt.Sprintf("r%d m", r)
	var out []int
	for _, b := range bodies {
		if n, ok := strings.CutPrefix(b, prefix); ok {
			if i, err := strconv.Atoi(n); err == nil {
				out = append(out, i)
			}
		}
	}
	return out
}

// check: every acknowledged message (0..acked-1) is there once and in
// order; what was not acknowledged may be there or not, but never twice
// or out of order.
func check(t *testing.T, what string, got []int, acked int, complete bool) {
	t.Helper()
	seen := map[int]bool{}
	last := -1
	for _, i := range got {
		if seen[i] {
			t.Fatalf("%s: message %d twice (acked %d): %v", what, i, acked, got)
		}
		if i < last {
			t.Fatalf("%s: message %d after %d (acked %d): %v", what, i, last, acked, got)
		}
		seen[i], last = true, i
	}
	if !complete {
		return
	}
	for i := 0; i < acked; i++ {
		if !seen[i] {
			t.Fatalf("%s: acknowledged message %d of %d is missing: %v", what, i, acked, got)
		}
	}
}

// bodies collects message bodies from a client's reader goroutine.
type bodies struct {
	mu   sync.Mutex
	list []string
}

func (b *bodies) tap(st *wire.Stanza) bool {
	if st.Name != "message" {
		return false
	}
	b.mu.Lock()
	b.list = append(b.list, st.Child(wire.NSClient, "body").Text())
	b.mu.Unlock()
	return true
}

func (b *bodies) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.list...)
}

// offlineBodies logs bob in, sends initial presence and returns the
// offline messages he gets (they come before the answer to a ping sent
// after the presence).
func offlineBodies(t *testing.T, p *proc, r int) (*testserver.Client, []string) {
	t.Helper()
	var got bodies
	bob := p.login("bob", fmt.Sprintf("check%d", r))
	bob.Tap(got.tap)
	bob.Send("<presence/>")
	bob.IQ("sync", "<iq type='get' id='sync' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
	bob.Tap(nil)
	return bob, got.get()
}

// storm sends messages to bob from an SM-enabled alice until the
// connection dies or max are sent, asking for an ack every few; it
// returns how many the server acknowledged (XEP-0198 h).
func storm(t *testing.T, p *proc, r int, killAfter time.Duration) int {
	t.Helper()
	alice := p.login("alice", fmt.Sprintf("storm%d", r))
	alice.Send("<enable xmlns='" + nsSM + "'/>")
	alice.Expect("sm enabled", func(s *wire.Stanza) bool { return s.Name == "enabled" && s.NS == nsSM })
	var acked atomic.Int64
	alice.Tap(func(st *wire.Stanza) bool {
		if st.Name == "a" && st.NS == nsSM {
			if h, err := strconv.Atoi(st.Attr("h")); err == nil && int64(h) > acked.Load() {
				acked.Store(int64(h))
			}
			return true
		}
		return false
	})
	sent := make(chan int, 1)
	go func() {
		i := 0
		for ; i < 5000; i++ {
			msg := fmt.Sprintf("<message to='bob@localhost' type='chat' id='m%d'><body>%s</body></message>", i, body(r, i))
			if i%4 == 3 {
				msg += "<r xmlns='" + nsSM + "'/>"
			}
			if alice.TryWrite(msg) != nil {
				break
			}
		}
		sent <- i
	}()
	time.Sleep(killAfter)
	p.kill()
	n := <-sent
	alice.Drop()
	h := int(acked.Load())
	if h > n {
		t.Fatalf("round %d: %d acknowledged but only %d sent", r, h, n)
	}
	return h
}

func run(t *testing.T, storage string) {
	p := newProc(t, bin, storage)
	p.start()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 16))
	total := 0
	for r := range rounds() {
		online := r%2 == 1
		start := time.Now().Add(-time.Millisecond)
		var live bodies
		var bob *testserver.Client
		if online {
			bob = p.login("bob", fmt.Sprintf("live%d", r))
			bob.Tap(live.tap)
			bob.Send("<presence/>")
			bob.IQ("ready", "<iq type='get' id='ready' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
		}
		acked := storm(t, p, r, time.Duration(rng.IntN(150)+1)*time.Millisecond)
		total += acked
		if bob != nil {
			bob.Drop()
		}
		p.start()
		checker, offline := offlineBodies(t, p, r)
		if online {
			check(t, fmt.Sprintf("round %d live delivery", r), indexes(r, live.get()), acked, false)
			check(t, fmt.Sprintf("round %d offline delivery (recipient was online)", r), indexes(r, offline), acked, false)
		} else {
			check(t, fmt.Sprintf("round %d offline delivery", r), indexes(r, offline), acked, true)
		}
		archived := checker.ArchiveBodies("<field var='start'><value>" + start.UTC().Format(time.RFC3339Nano) + "</value></field>")
		check(t, fmt.Sprintf("round %d archive", r), indexes(r, archived), acked, true)
		// Closed as RFC 6120 §4.4 says, reading until the server's closing
		// tag: from then on messages to bob go offline (a client that
		// hangs up at once loses what the server wrote meanwhile).
		checker.Send("</stream:stream>")
		if se := checker.StreamError(); se != nil {
			t.Fatalf("closing bob's check session: %v", se)
		}
		checker.Drop()
		if testing.Verbose() && (r+1)%50 == 0 {
			t.Logf("%d rounds, %d acknowledged messages checked", r+1, total)
		}
	}
	t.Logf("%d rounds with SIGKILL, %d acknowledged messages, all in offline delivery and archive once and in order", rounds(), total)
}

func TestCrashSQLite(t *testing.T) {
	t.Parallel()
	run(t, "storage: {backend: sqlite}")
}

func TestCrashPostgres(t *testing.T) {
	t.Parallel()
	dsn := os.Getenv("PARLEY_TEST_POSTGRES")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Skipf("PostgreSQL not reachable: %v — crash test on PostgreSQL SKIPPED", err)
	}
	schema := fmt.Sprintf("parley_crash_%d", time.Now().UnixNano())
	conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			c.Close(ctx)
		}
	})
	run(t, fmt.Sprintf("storage: {backend: postgres, postgres: {dsn: %q, schema: %q}}", dsn, schema))
}
