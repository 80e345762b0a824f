// Package s3test gives tests a real S3-compatible server: the one named by
// PARLEY_TEST_S3, or else s3rver (npm, installed into test/s3/node_modules
// by scripts/ensure-s3rver.sh) started once per test binary on 127.0.0.1.
// Without either, tests skip with a message saying why (or fail when
// PARLEY_TEST_S3_REQUIRED=1). Tests only.
package s3test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is an S3-compatible server and bucket.
type Server struct {
	Endpoint  string // host:port
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	UseSSL    bool
	// Source says where it came from, for logs.
	Source string
}

// Env is the variable naming an external server:
// http(s)://ACCESS:SECRET@host:port/bucket[?region=…].
const Env = "PARLEY_TEST_S3"

// ParseURL parses the PARLEY_TEST_S3 form.
func ParseURL(raw string) (Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Server{}, err
	}
	secret, _ := u.User.Password()
	s := Server{
		Endpoint: u.Host, Bucket: strings.Trim(u.Path, "/"), AccessKey: u.User.Username(), SecretKey: secret,
		Region: u.Query().Get("region"), UseSSL: u.Scheme == "https", Source: Env,
	}
	if (u.Scheme != "http" && u.Scheme != "https") || s.Endpoint == "" || s.Bucket == "" || s.AccessKey == "" || secret == "" {
		return Server{}, fmt.Errorf("%s=%q: expected http(s)://ACCESS:SECRET@host:port/bucket", Env, raw)
	}
	return s, nil
}

var (
	once    sync.Once
	started Server
	skipWhy string // why there is no server (skip)
	errFail error  // the server could not be started (fail)
	// keep holds the launcher's stdin open; it exits when the test binary
	// does and the pipe closes.
	keep *os.File
)

// Dir is test/s3 in the source tree.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Start returns the server, or skips the test saying why there is none.
func Start(t testing.TB) Server {
	t.Helper()
	once.Do(func() {
		if raw := os.Getenv(Env); raw != "" {
			started, errFail = ParseURL(raw)
			return
		}
		started, skipWhy, errFail = launch()
	})
	if errFail != nil {
		t.Fatalf("S3 test server: %v", errFail)
	}
	if skipWhy != "" {
		msg := "S3 TEST NOT RUN: " + skipWhy
		if os.Getenv("PARLEY_TEST_S3_REQUIRED") == "1" {
			t.Fatal(msg + " (PARLEY_TEST_S3_REQUIRED=1)")
		}
		t.Skip(msg)
	}
	return started
}

// launch starts test/s3/run-s3rver.js with node.
func launch() (Server, string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return Server{}, Env + " is not set and node is not on PATH to run s3rver", nil
	}
	dir := Dir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "s3rver", "package.json")); err != nil {
		return Server{}, fmt.Sprintf("%s is not set and s3rver is not installed in %s/node_modules: run scripts/ensure-s3rver.sh (or scripts/test)", Env, dir), nil
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return Server{}, "", err
	}
	cmd := exec.Command(node, filepath.Join(dir, "run-s3rver.js"))
	cmd.Dir = dir
	cmd.Stdin = stdinR
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return Server{}, "", err
	}
	if err := cmd.Start(); err != nil {
		return Server{}, "", fmt.Errorf("starting s3rver: %w", err)
	}
	stdinR.Close()
	keep = stdinW
	go func() { _ = cmd.Wait() }()
	type ready struct {
		Endpoint  string `json:"endpoint"`
		Bucket    string `json:"bucket"`
		AccessKey string `json:"access_key"`
		SecretKey string `json:"secret_key"`
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		var r ready
		if !ok || json.Unmarshal([]byte(line), &r) != nil || r.Endpoint == "" {
			return Server{}, "", fmt.Errorf("s3rver did not start: %q %s", line, stderr.String())
		}
		return Server{Endpoint: r.Endpoint, Bucket: r.Bucket, AccessKey: r.AccessKey, SecretKey: r.SecretKey,
			Region: "us-east-1", Source: "s3rver (test/s3/run-s3rver.js)"}, "", nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		return Server{}, "", fmt.Errorf("s3rver did not start within 30s: %s", stderr.String())
	}
}

// URL is the server in the PARLEY_TEST_S3 form.
func (s Server) URL() string {
	scheme := "http"
	if s.UseSSL {
		scheme = "https"
	}
	return scheme + "://" + url.UserPassword(s.AccessKey, s.SecretKey).String() + "@" + s.Endpoint + "/" + s.Bucket
}

// Client is a plain minio client for checking the bucket behind Parley's
// back.
func (s Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: s.UseSSL,
		Region: s.Region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Prefix returns a fresh object prefix for one test; the objects under it
// are removed when the test ends.
func (s Server) Prefix(t testing.TB) string {
	t.Helper()
	p := "parley-test-" + strings.ToLower(rand.Text()[:10]) + "/"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := s.Client(t)
		for o := range c.ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: p, Recursive: true}) {
			if o.Err != nil {
				t.Logf("cleaning %s: %v", p, o.Err)
				return
			}
			_ = c.RemoveObject(ctx, s.Bucket, o.Key, minio.RemoveObjectOptions{})
		}
	})
	return p
}

// Objects lists the keys and sizes under prefix.
func (s Server) Objects(t testing.TB, prefix string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := map[string]int64{}
	for o := range s.Client(t).ListObjects(ctx, s.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("listing %s: %v", prefix, o.Err)
		}
		m[strings.TrimPrefix(o.Key, prefix)] = o.Size
	}
	return m
}
