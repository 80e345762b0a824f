package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	s3test "github.com/parley-xmpp/parley/test/s3"
	"github.com/parley-xmpp/parley/upload"
	"github.com/parley-xmpp/parley/wire"
)

const nsUpload = "urn:xmpp:http:upload:0"

// findUploadService discovers the XEP-0363 service through the server's
// disco#items and checks its disco#info.
func findUploadService(t *testing.T, c *testserver.Client) (host string, maxSize int64) {
	t.Helper()
	r := c.IQ("items", "<iq type='get' id='items' to='%s'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>", testserver.Domain)
	for _, it := range r.Child("http://jabber.org/protocol/disco#items", "query").ChildrenNamed("", "item") {
		j := it.AttrValue("jid")
		info := c.IQ("info-"+j, "<iq type='get' id='info-%s' to='%s'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>", j, j)
		q := info.Child("http://jabber.org/protocol/disco#info", "query")
		if q == nil {
			continue
		}
		upload := false
		for _, f := range q.ChildrenNamed("", "feature") {
			upload = upload || f.AttrValue("var") == nsUpload
		}
		if !upload {
			continue
		}
		for _, f := range q.Child(nsXData, "x").ChildrenNamed(nsXData, "field") {
			if f.AttrValue("var") == "max-file-size" {
				maxSize, _ = strconv.ParseInt(f.ChildText(nsXData, "value"), 10, 64)
			}
		}
		if maxSize <= 0 {
			t.Fatalf("upload service %s lacks max-file-size: %s", j, info.Raw)
		}
		return j, maxSize
	}
	t.Fatalf("no service with %s in disco#items of %s (is the upload module wired in server/modules.go?): %s", nsUpload, testserver.Domain, r.Raw)
	return "", 0
}

// uploadClient is an HTTPS client for the server's self-signed listener
// that sends every request to it, whatever host the slot URL names (the
// test server's base URL may carry a public name).
func uploadClient(ts *testserver.Server) *http.Client {
	addr := ts.Addr("https")
	var d net.Dialer
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func TestUploadOverHTTPS(t *testing.T) { testUploadOverHTTPS(t, testserver.Start(t), 3<<20, nil) }

// TestUploadS3OverHTTPS is TestUploadOverHTTPS with upload.backend s3 on a
// real S3-compatible server (PARLEY_TEST_S3, or s3rver from test/s3): the
// bytes land in the bucket, come back through Parley's HTTPS handler, and
// leave the bucket with the account.
func TestUploadS3OverHTTPS(t *testing.T) {
	t.Parallel()
	opt, srv, prefix := testserver.OnS3(t)
	ts := testserver.Start(t, opt)
	// 20 MiB: a multipart upload to the bucket.
	testUploadOverHTTPS(t, ts, 20<<20, func(id string, size int) {
		objs := srv.Objects(t, prefix)
		got, ok := objs[id]
		if size < 0 {
			if ok {
				t.Fatalf("object %s is still in the bucket after account removal", id)
			}
			return
		}
		if !ok || got != int64(size) {
			t.Fatalf("bucket holds %v under %s, want %s with %d bytes", objs, prefix, id, size)
		}
	})
}

// TestUploadS3StartupErrors: a server configured with an S3 bucket that
// does not exist, or an endpoint where nothing listens, does not start and
// says which key is wrong.
func TestUploadS3StartupErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	type startupCase struct {
		name string
		s3   upload.S3Config
		want string
	}
	cases := []startupCase{
		{"unreachable", upload.S3Config{Endpoint: closed, Bucket: "files", AccessKey: "a", SecretKey: "s"},
			"upload.s3.endpoint: cannot reach http://" + closed + "/files"},
		{"no bucket", upload.S3Config{Endpoint: closed, AccessKey: "a", SecretKey: "s"}, "upload.s3.bucket: expected"},
	}
	if srv, ok := s3IfAvailable(t); ok {
		missing := testserver.S3Config(srv, "")
		missing.Bucket = "parley-missing"
		cases = append(cases, startupCase{"missing bucket", missing, `upload.s3.bucket: bucket "parley-missing" does not exist`})
	}
	for _, c := range cases {
		cfg := server.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Upload.Backend = "s3"
		cfg.Upload.S3 = c.s3
		_, err := server.New(cfg, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: server.New = %v, want an error with %q", c.name, err, c.want)
			continue
		}
		t.Logf("%s: %v", c.name, err)
	}
}

// s3IfAvailable is s3test.Start without skipping the calling test.
func s3IfAvailable(t *testing.T) (srv s3test.Server, ok bool) {
	t.Run("s3 server", func(t *testing.T) {
		srv, ok = s3test.Start(t), true
	})
	return srv, ok
}

// testUploadOverHTTPS uploads a file of size bytes, downloads it (whole
// and a range) and removes the account, over the server's HTTPS listener.
// stored, when not nil,
// checks the store: the file with that id has size bytes, or is gone when
// size is -1.
func testUploadOverHTTPS(t *testing.T, ts *testserver.Server, size int, stored func(id string, size int)) {
	if ts.Addr("https") == "" {
		t.Fatal("the https listener is disabled")
	}
	ts.AddUser("alice", "pw1")
	a := ts.Login("alice", "pw1", "phone")
	host, maxSize := findUploadService(t, a)
	if host != "upload."+testserver.Domain {
		t.Logf("upload service is %s", host)
	}

	data := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(data)
	if int64(len(data)) > maxSize {
		t.Fatalf("max-file-size %d is below the test file", maxSize)
	}

	// Too large.
	r := a.IQ("big", "<iq type='get' id='big' to='%s'><request xmlns='%s' filename='big.bin' size='%d'/></iq>", host, nsUpload, maxSize+1)
	if r.Type != "error" || r.Child(wire.NSClient, "error").Child(nsUpload, "file-too-large") == nil {
		t.Fatalf("oversize request: %s", r.Raw)
	}

	r = a.IQ("slot", "<iq type='get' id='slot' to='%s'><request xmlns='%s' filename='holiday photo.jpg' size='%d' content-type='image/jpeg'/></iq>",
		host, nsUpload, len(data))
	slot := r.Child(nsUpload, "slot")
	if r.Type != "result" || slot == nil {
		t.Fatalf("slot request: %s", r.Raw)
	}
	putURL := slot.Child(nsUpload, "put").AttrValue("url")
	getURL := slot.Child(nsUpload, "get").AttrValue("url")
	var auth string
	for _, h := range slot.Child(nsUpload, "put").ChildrenNamed(nsUpload, "header") {
		if h.AttrValue("name") == "Authorization" {
			auth = h.Text()
		}
	}
	u, err := url.Parse(getURL)
	if err != nil || u.Scheme != "https" || !strings.HasSuffix(u.EscapedPath(), "/holiday%20photo.jpg") {
		t.Fatalf("get URL %q", getURL)
	}
	t.Logf("slot: put %s get %s", putURL, getURL)

	hc := uploadClient(ts)
	put := func(body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, putURL, bytes.NewReader(body))
		req.Header.Set("Content-Type", "image/jpeg")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	get := func(hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, getURL, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	if resp := put(data); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s", resp.Status)
	}
	if resp := put(data); resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusForbidden {
		t.Fatalf("second PUT: %s", resp.Status)
	}
	resp, got := get()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET: %s, %d bytes, equal %v", resp.Status, len(got), bytes.Equal(got, data))
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("GET headers: %v", resp.Header)
	}
	resp, got = get("Range", "bytes=100-199")
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, data[100:200]) {
		t.Fatalf("range GET: %s, %d bytes", resp.Status, len(got))
	}
	// The id is the next to last path segment.
	segs := strings.Split(u.Path, "/")
	id := segs[len(segs)-2]
	if stored != nil {
		stored(id, len(data))
	}

	// Deleting the account deletes its files.
	r = a.IQ("rm", "<iq type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>")
	if r.Type != "result" {
		t.Fatalf("account removal: %s", r.Raw)
	}
	if resp, _ := get(); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after account removal: %s (is upload's DeleteUser hooked into account deletion?)", resp.Status)
	}
	if stored != nil {
		stored(id, -1)
	}
}
