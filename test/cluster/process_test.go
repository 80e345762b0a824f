package cluster

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

// Nodes that must die for real run as child processes of the parley
// binary, built once per test run.
var (
	buildOnce sync.Once
	parleyBin string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func parleyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "parley-cluster-bin")
		if buildErr != nil {
			return
		}
		parleyBin = filepath.Join(buildDir, "parley")
		out, err := exec.Command("go", "build", "-o", parleyBin, "../../cmd/parley").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return parleyBin
}

// proc is a node running as a child process.
type proc struct {
	name  string
	cmd   *exec.Cmd
	c2s   string
	admin string
	out   *bytes.Buffer
	done  chan struct{}
}

func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProc runs node name of spec on ip with the cluster's default
// timing (1s heartbeats, dead after 10s), as an operator would. The node
// name comes from PARLEY_CLUSTER_NODE, the rest from a YAML file; cluster
// holds more keys of its cluster section ("heartbeat: 200ms", …).
func startProc(t *testing.T, spec testserver.ClusterSpec, name, ip string, cluster ...string) *proc {
	t.Helper()
	bin := parleyBinary(t)
	dir := t.TempDir()
	p := &proc{name: name, c2s: freeAddr(t, ip), admin: freeAddr(t, ip), out: &bytes.Buffer{}, done: make(chan struct{})}
	cfg := fmt.Sprintf(`hosts: [localhost]
data_dir: %q
listen:
  c2s: %q
  c2s_tls: ""
  http: ""
  https: ""
  admin: %q
  s2s: ""
  s2s_tls: ""
storage:
  backend: postgres
  postgres:
    dsn: %q
    schema: %q
auth:
  iterations: 4096
limits:
  stanzas_per_second: 10000
log:
  level: info
cluster:
  enabled: true
  nats:
    urls: [%q]
    prefix: %q
`, dir, p.c2s, p.admin, testserver.PostgresDSN(), spec.Schema, testserver.NATSURL(), spec.Prefix)
	for _, line := range cluster {
		cfg += "  " + line + "\n"
	}
	path := filepath.Join(dir, "parley.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "serve", "--config", path)
	p.cmd.Env = append(os.Environ(), "PARLEY_CLUSTER_NODE="+name)
	p.cmd.Stdout, p.cmd.Stderr = &lockedWriter{w: p.out}, &lockedWriter{w: p.out}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.log())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited during start:\n%s", name, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s:\n%s", name, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var logMu sync.Mutex

type lockedWriter struct{ w *bytes.Buffer }

func (l *lockedWriter) Write(b []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return l.w.Write(b)
}

func (p *proc) log() string {
	logMu.Lock()
	defer logMu.Unlock()
	return p.out.String()
}

// kill sends SIGKILL: no goodbye, no session closed, nothing flushed.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) login(t *testing.T, user, pw, res string) *testserver.Client {
	t.Helper()
	c := testserver.ConnectTo(t, p.c2s, "localhost")
	c.LoginWith(c.Features(), "SCRAM-SHA-256", user, pw, res)
	return c
}

// loginSM logs in on p with resumable stream management.
func (p *proc) loginSM(t *testing.T, user, pw, res string) (*testserver.Client, string) {
	t.Helper()
	c := testserver.ConnectTo(t, p.c2s, "localhost")
	if err := c.Auth(c.Features(), "SCRAM-SHA-256", user, pw); err != nil {
		t.Fatal(err)
	}
	c.Restart()
	c.Bind(res)
	c.Send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
	e := c.Next()
	if e.Name != "enabled" {
		t.Fatalf("enable: %s", e.Raw)
	}
	c.StartReader()
	return c, e.Attr("id")
}

const (
	nsMAM     = "urn:xmpp:mam:2"
	nsRSM     = "http://jabber.org/protocol/rsm"
	nsForward = "urn:xmpp:forward:0"
)

// archiveBodies returns the bodies of every message in c's archive, paging
// through it.
func archiveBodies(t *testing.T, c *testserver.Client) []string {
	t.Helper()
	var bodies []string
	after := ""
	for page := 0; page < 100; page++ {
		qid := fmt.Sprint("q", page)
		set := "<set xmlns='" + nsRSM + "'><max>250</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		set += "</set>"
		c.Send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'>%s</query></iq>", qid, nsMAM, qid, set)
		for {
			st := c.ExpectWithin("mam "+qid, 20*time.Second, func(s *wire.Stanza) bool {
				if s.ID == qid && s.Name == "iq" {
					return true
				}
				r := s.Child(nsMAM, "result")
				return r != nil && r.AttrValue("queryid") == qid
			})
			if st.Name == "iq" {
				if st.Type != "result" {
					t.Fatalf("mam: %s", st.Raw)
				}
				fin := st.Child(nsMAM, "fin")
				if fin.AttrValue("complete") == "true" {
					return bodies
				}
				after = fin.Child(nsRSM, "set").ChildText(nsRSM, "last")
				break
			}
			msg := st.Child(nsMAM, "result").Child(nsForward, "forwarded").Child(wire.NSClient, "message")
			bodies = append(bodies, msg.ChildText(wire.NSClient, "body"))
		}
	}
	t.Fatal("archive query did not end")
	return nil
}
