// Package pgtest runs PostgreSQL clusters owned by one test (initdb and
// pg_ctl from Debian's postgresql), so outage tests can stop and start a
// real database without disturbing the shared server. Tests only.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Cluster is a PostgreSQL cluster owned by one test: its own data
// directory, port and socket directory, so stopping it disturbs nobody.
type Cluster struct {
	t     testing.TB
	bin   string // directory of initdb, pg_ctl
	dir   string // everything lives below
	data  string
	port  int
	runAs string // "" or the user to run the server as (when we are root)
}

// findPGBin returns the newest /usr/lib/postgresql/*/bin holding initdb
// and pg_ctl, else the directory of initdb on $PATH, else "".
func findPGBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d
		}
	}
	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func isExec(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start initdbs and starts a cluster, or skips the test (loudly)
// when that is impossible here.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := findPGBin()
	if bin == "" {
		t.Skip("initdb/pg_ctl not found (looked in /usr/lib/postgresql/*/bin and $PATH) — outage test skipped")
	}
	c := &Cluster{t: t, bin: bin, port: freePort(t)}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root: run the cluster as postgres.
		if _, err := user.Lookup("postgres"); err != nil {
			t.Skip("running as root and there is no postgres user to run initdb as — outage test skipped")
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Skip("running as root and runuser is missing — outage test skipped")
		}
		c.runAs = "postgres"
	}
	dir, err := os.MkdirTemp("", "parley-pg-outage-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir, c.data = dir, filepath.Join(dir, "data")
	t.Cleanup(func() {
		c.pgctl(30*time.Second, "stop", "-m", "immediate") // if still running; errors ignored
		os.RemoveAll(dir)
	})
	if c.runAs != "" {
		u, _ := user.Lookup(c.runAs)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Skipf("cannot hand %s to %s: %v — outage test skipped", dir, c.runAs, err)
		}
	}
	if out, err := c.run(2*time.Minute, filepath.Join(bin, "initdb"), "-D", c.data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Skipf("initdb failed (%v) — outage test skipped:\n%s", err, out)
	}
	c.Start()
	return c
}

// run runs a command, as c.runAs when set, bounded by timeout.
func (c *Cluster) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if c.runAs != "" {
		args = append([]string{"-u", c.runAs, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *Cluster) pgctl(timeout time.Duration, args ...string) (string, error) {
	args = append([]string{"-D", c.data, "-w", "-t", strconv.Itoa(int(timeout.Seconds()))}, args...)
	return c.run(timeout+10*time.Second, filepath.Join(c.bin, "pg_ctl"), args...)
}

// Start (re)starts the server.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20", c.port, c.dir)
	if out, err := c.pgctl(30*time.Second, "start", "-l", filepath.Join(c.dir, "log"), "-o", opts); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server (fast shutdown).
func (c *Cluster) Stop() {
	c.t.Helper()
	if out, err := c.pgctl(30*time.Second, "stop", "-m", "fast"); err != nil {
		c.t.Fatalf("pg_ctl stop: %v\n%s", err, out)
	}
}

// DSN connects to the cluster's postgres database.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
