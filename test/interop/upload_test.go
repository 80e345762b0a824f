package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
)

var (
	aiohttpOnce sync.Once
	aiohttpErr  error
)

// aiohttpAvailable: slixmpp's XEP-0363 plugin uploads with aiohttp, which
// Debian packages separately (python3-aiohttp); nothing is installed here.
func aiohttpAvailable(t *testing.T) {
	t.Helper()
	aiohttpOnce.Do(func() {
		out, err := exec.Command(pythonPath, "-c", "import aiohttp, slixmpp.plugins.xep_0363").CombinedOutput()
		if err != nil {
			aiohttpErr = fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
		}
	})
	if aiohttpErr != nil {
		missing(t, "aiohttp not importable by %s (%v): slixmpp's XEP-0363 plugin needs the Debian package python3-aiohttp", pythonPath, aiohttpErr)
	}
}

// slixmppUpload is slixmpp driven by slixmpp/http_upload.py, with its
// XEP-0363 plugin; cafile is the server certificate it trusts for HTTPS.
func slixmppUpload(cafile string) lib {
	l := slixmpp
	l.name = "slixmpp-upload"
	l.command = func(ctx context.Context, cfg []byte) *exec.Cmd {
		return exec.CommandContext(ctx, pythonPath, "slixmpp/http_upload.py", string(cfg))
	}
	l.connect = func(ts *testserver.Server, cfg map[string]any) {
		slixmpp.connect(ts, cfg)
		cfg["cafile"] = cafile
	}
	return l
}

// serverCertPEM fetches the certificate of the server's HTTPS listener and
// writes it to a PEM file for the client to trust.
func serverCertPEM(t *testing.T, ts *testserver.Server) (string, *x509.Certificate) {
	t.Helper()
	conn, err := tls.Dial("tcp", ts.Addr("https"), &tls.Config{InsecureSkipVerify: true, ServerName: testserver.Domain})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	path := filepath.Join(t.TempDir(), "parley-test-cert.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, cert
}

// TestSlixmppUpload: slixmpp's XEP-0363 plugin finds the upload service
// through disco, requests a slot and PUTs a file over HTTPS (verifying the
// server's certificate); the GET URL gives the same bytes to slixmpp and
// to a Go client. With files on disk and, when an S3 server is at hand
// (PARLEY_TEST_S3 or s3rver from test/s3), in an S3 bucket.
func TestSlixmppUpload(t *testing.T) {
	slixmppAvailable(t)
	aiohttpAvailable(t)
	t.Run("disk", func(t *testing.T) {
		testSlixmppUpload(t, testserver.Start(t), 2<<20)
	})
	t.Run("s3", func(t *testing.T) {
		opt, srv, prefix := testserver.OnS3(t)
		ts := testserver.Start(t, opt)
		// Larger than a part: a multipart upload behind Parley.
		testSlixmppUpload(t, ts, 12<<20)
		if objs := srv.Objects(t, prefix); len(objs) != 1 {
			t.Errorf("bucket holds %v, want the one file", objs)
		}
	})
}

func testSlixmppUpload(t *testing.T, ts *testserver.Server, size int) {
	alice := ts.AddUser("alice", "alice-pw")
	cafile, cert := serverCertPEM(t, ts)

	data := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{3, 6, 3}).Read(data)
	sum := sha256.Sum256(data)
	path := filepath.Join(t.TempDir(), "slix upload.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	l := slixmppUpload(cafile)
	p := start(t, ts, l, alice+"/slixmpp", "alice-pw",
		op("upload", "path", path, "content_type", "application/octet-stream", "timeout", 60),
		op("download", "timeout", 60))
	evs := finish(t, p)[0]

	var up struct {
		URL         string `json:"url"`
		Service     string `json:"service"`
		MaxFileSize int64  `json:"max_file_size"`
	}
	uploadEvent(t, evs, "uploaded", &up)
	var down struct {
		Status      int    `json:"status"`
		Bytes       int    `json:"bytes"`
		SHA256      string `json:"sha256"`
		ContentType string `json:"content_type"`
	}
	uploadEvent(t, evs, "downloaded", &down)
	t.Logf("slixmpp uploaded %d bytes via %s (max-file-size %d) to %s; GET: %d, %d bytes, %s",
		size, up.Service, up.MaxFileSize, up.URL, down.Status, down.Bytes, down.ContentType)
	if up.Service != "upload."+testserver.Domain {
		t.Errorf("service %q", up.Service)
	}
	u, err := url.Parse(up.URL)
	if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.EscapedPath(), "/slix%20upload.bin") {
		t.Fatalf("GET URL %q", up.URL)
	}
	if down.Status != http.StatusOK || down.Bytes != size || down.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("slixmpp GET: %+v, want %d bytes with sha256 %x", down, size, sum)
	}

	// A Go client that verifies the certificate reads the same bytes.
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	addr := ts.Addr("https")
	var d net.Dialer
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: testserver.Domain},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
	resp, err := hc.Get(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("Go GET: %s, %d bytes, equal %v, %v", resp.Status, len(got), bytes.Equal(got, data), err)
	}
}

func uploadEvent(t *testing.T, evs []event, name string, into any) {
	t.Helper()
	e, ok := find(evs, func(e event) bool { return e.Event == name })
	if !ok {
		t.Fatalf("no %q event", name)
	}
	if err := json.Unmarshal([]byte(e.line), into); err != nil {
		t.Fatal(err)
	}
}
