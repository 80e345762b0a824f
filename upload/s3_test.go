package upload

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/minio/minio-go/v7"

	s3test "github.com/parley-xmpp/parley/test/s3"
)

// The S3 tests run against a real S3-compatible server: PARLEY_TEST_S3, or
// s3rver started from test/s3 (scripts/ensure-s3rver.sh installs it);
// without either they skip saying so.

func s3Config(srv s3test.Server, prefix string) S3Config {
	return S3Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region, Prefix: prefix,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, UseSSL: srv.UseSSL, PathStyle: true}
}

// newS3Blobs returns S3Blobs under a prefix of their own (emptied when
// the test ends).
func newS3Blobs(t *testing.T) (*S3Blobs, s3test.Server, string) {
	t.Helper()
	srv := s3test.Start(t)
	prefix := srv.Prefix(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := NewS3Blobs(ctx, s3Config(srv, prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("S3 store: %s (%s), prefix %s", b.Describe(), srv.Source, prefix)
	return b, srv, prefix
}

func setupS3(t *testing.T, cfg Config) *env {
	t.Helper()
	b, _, _ := newS3Blobs(t)
	return setupWith(t, cfg, b)
}

// The module's own tests, with files in S3: PUT and GET through Parley's
// HTTPS handler (20 MiB, so a multipart upload; ranges, HEAD, conditional
// GET), every PUT refusal, single use, truncated bodies, expiry, Prune,
// Stats, account deletion and Usage.
func TestUploadS3RoundTrip(t *testing.T)             { testRoundTrip(t, setupS3) }
func TestUploadS3PutRejections(t *testing.T)         { testPutRejections(t, setupS3) }
func TestUploadS3ExpiryPruneDeleteUser(t *testing.T) { testExpiryPruneDeleteUser(t, setupS3) }

func TestUploadS3Blobs(t *testing.T) {
	b, srv, prefix := newS3Blobs(t)
	ctx := context.Background()
	objects := func() map[string]int64 { return srv.Objects(t, prefix) }

	// Sizes around the part size: one PUT, exactly one part, multipart.
	sizes := []int{1, s3PartSize, s3PartSize + 1, 2*s3PartSize + 12345}
	keys := make([]string, len(sizes))
	var total int64
	for i, n := range sizes {
		keys[i] = newID()
		data := randomBytes(n, uint64(n))
		// One byte per Read: a slow client.
		r := io.Reader(bytes.NewReader(data))
		if i == 0 {
			r = iotest.OneByteReader(r)
		}
		if err := b.Put(ctx, keys[i], r, int64(n)); err != nil {
			t.Fatalf("Put %d bytes: %v", n, err)
		}
		total += int64(n)
		f, mod, size, err := b.Open(keys[i])
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		got, err := io.ReadAll(f)
		if err != nil || size != int64(n) || !bytes.Equal(got, data) || time.Since(mod) > time.Hour {
			t.Fatalf("%d bytes: read %d (size %d, mod %v), equal %v, %v", n, len(got), size, mod, bytes.Equal(got, data), err)
		}
		// Seek like http.ServeContent does, and read a range.
		if n > 100 {
			if end, err := f.Seek(0, io.SeekEnd); err != nil || end != int64(n) {
				t.Fatalf("Seek end = %d, %v", end, err)
			}
			off := int64(n / 2)
			if _, err := f.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			part := make([]byte, 50)
			if _, err := io.ReadFull(f, part); err != nil || !bytes.Equal(part, data[off:off+50]) {
				t.Fatalf("range at %d: %v", off, err)
			}
		}
		f.Close()
	}
	if got, err := b.Usage(ctx); err != nil || got != total {
		t.Fatalf("Usage = %d, %v; want %d", got, err, total)
	}

	// Wrong sizes and failing readers store nothing, in one PUT or in
	// several parts.
	for _, c := range []struct {
		name string
		body []byte
		size int64
		r    func([]byte) io.Reader
	}{
		{"short", randomBytes(999, 1), 1000, nil},
		{"long", randomBytes(1001, 2), 1000, nil},
		{"short multipart", randomBytes(2*s3PartSize+10, 3), 2*s3PartSize + 11, nil},
		{"long multipart", randomBytes(s3PartSize+11, 4), s3PartSize + 10, nil},
		{"long by one at a part boundary", randomBytes(s3PartSize+1, 5), s3PartSize, nil},
		{"reader error", randomBytes(3*s3PartSize, 6), 3 * s3PartSize, func(b []byte) io.Reader {
			return io.MultiReader(bytes.NewReader(b[:s3PartSize+5]), iotest.ErrReader(errors.New("client went away")))
		}},
	} {
		key := newID()
		var r io.Reader = bytes.NewReader(c.body)
		if c.r != nil {
			r = c.r(c.body)
		}
		err := b.Put(ctx, key, r, c.size)
		if err == nil {
			t.Errorf("%s: Put succeeded", c.name)
		} else if c.r == nil && !errors.Is(err, ErrSizeMismatch) {
			t.Errorf("%s: Put = %v, want ErrSizeMismatch", c.name, err)
		}
		eventuallyGone(t, b, c.name, key)
	}
	// A cancelled request: the upload is abandoned.
	cctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write(randomBytes(s3PartSize+100, 7))
		cancel()
		_, _ = pw.Write(make([]byte, 1000))
		pw.Close()
	}()
	cancelled := newID()
	err := b.Put(cctx, cancelled, pr, 3*s3PartSize)
	pr.Close()
	if err == nil {
		t.Fatal("cancelled Put succeeded")
	}
	eventuallyGone(t, b, "cancelled", cancelled)
	if got := objects(); len(got) != len(sizes) {
		t.Fatalf("objects after failed Puts: %v", got)
	}

	// Delete, twice; Open of a missing or invalid key.
	for _, k := range keys[:2] {
		for range 2 {
			if err := b.Delete(k); err != nil {
				t.Fatalf("Delete: %v", err)
			}
		}
		if _, _, _, err := b.Open(k); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open after Delete = %v", err)
		}
	}
	if got, _ := b.Usage(ctx); got != total-int64(sizes[0]+sizes[1]) {
		t.Fatalf("Usage after Delete = %d", got)
	}
	if _, _, _, err := b.Open("../etc/passwd"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(invalid) = %v", err)
	}
	if err := b.Put(ctx, "Bad Key", strings.NewReader("x"), 1); err == nil {
		t.Fatal("Put with an invalid key succeeded")
	}
	// Objects that are not blobs (someone else's, under the prefix) do not
	// count.
	if _, err := srv.Client(t).PutObject(ctx, srv.Bucket, prefix+"README", strings.NewReader("hello"), 5, minio.PutObjectOptions{DisableContentSha256: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Usage(ctx); got != total-int64(sizes[0]+sizes[1]) {
		t.Fatalf("Usage counts foreign objects: %d", got)
	}
}

// eventuallyGone waits until key is not stored: S3 never shows an
// incomplete object, but s3rver writes what it got when the connection
// closes, and Put deletes that again (discard).
func eventuallyGone(t *testing.T, b *S3Blobs, what, key string) {
	t.Helper()
	deadline := time.Now().Add(2*s3DiscardAgain + 3*time.Second)
	for {
		f, _, size, err := b.Open(key)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if f != nil {
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: an object of %d bytes is left after a failed Put (%v)", what, size, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUploadS3Config: configuration mistakes are startup errors that name
// the key at fault.
func TestUploadS3Config(t *testing.T) {
	ok := S3Config{Endpoint: "s3.example.org", Bucket: "bucket", AccessKey: "a", SecretKey: "s"}
	if p := ok.Problems(); len(p) != 0 {
		t.Fatalf("valid config: %v", p)
	}
	for _, c := range []struct {
		change func(*S3Config)
		want   string
	}{
		{func(c *S3Config) { c.Endpoint = "" }, "endpoint:"},
		{func(c *S3Config) { c.Endpoint = "https://s3.example.org" }, "endpoint: \"https://s3.example.org\" must be host[:port] without a scheme"},
		{func(c *S3Config) { c.Endpoint = "s3.example.org/x" }, "endpoint: \"s3.example.org/x\" must be host[:port] without a path"},
		{func(c *S3Config) { c.Bucket = "" }, "bucket: expected"},
		{func(c *S3Config) { c.AccessKey = "" }, "access_key:"},
		{func(c *S3Config) { c.SecretKey = "" }, "secret_key: expected"},
		{func(c *S3Config) { c.SecretKeyFile = "/x" }, "secret_key_file: set either"},
	} {
		cfg := ok
		c.change(&cfg)
		p := strings.Join(cfg.Problems(), "; ")
		if !strings.Contains(p, c.want) {
			t.Errorf("%+v: problems %q, want %q", cfg, p, c.want)
		}
		if _, err := NewS3Blobs(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "upload.s3."+c.want) {
			t.Errorf("NewS3Blobs(%+v) = %v, want upload.s3.%s", cfg, err, c.want)
		}
	}

	// Nothing listens: the endpoint is named.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cfg := ok
	cfg.Endpoint = closed
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = NewS3Blobs(ctx, cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "upload.s3.endpoint: cannot reach http://"+closed+"/bucket") {
		t.Fatalf("unreachable endpoint: %v", err)
	}
	t.Logf("unreachable endpoint (after %v): %v", time.Since(start).Round(time.Millisecond), err)

	// A secret file that is missing or empty.
	cfg = ok
	cfg.SecretKey, cfg.SecretKeyFile = "", filepath.Join(t.TempDir(), "missing")
	if _, err := NewS3Blobs(ctx, cfg); err == nil || !strings.HasPrefix(err.Error(), "upload.s3.secret_key_file: ") {
		t.Fatalf("missing secret file: %v", err)
	}
	if err := os.WriteFile(cfg.SecretKeyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewS3Blobs(ctx, cfg); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("empty secret file: %v", err)
	}
}

// TestUploadS3ConfigServer: against a real server, a missing bucket and
// an unknown access key are named; the secret may come from a file.
func TestUploadS3ConfigServer(t *testing.T) {
	srv := s3test.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg := s3Config(srv, "")
	cfg.Bucket = "no-such-bucket-" + strings.ToLower(newID()[:8])
	_, err := NewS3Blobs(ctx, cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "upload.s3.bucket: bucket \""+cfg.Bucket+"\" does not exist") {
		t.Fatalf("missing bucket: %v", err)
	}
	t.Logf("missing bucket: %v", err)

	// (s3rver checks the access key but not SigV4 signatures, so a wrong
	// secret is only caught by a real S3 server.)
	cfg = s3Config(srv, "")
	cfg.AccessKey += "-wrong"
	_, err = NewS3Blobs(ctx, cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "upload.s3.access_key/secret_key: ") {
		t.Fatalf("wrong access key: %v", err)
	}
	t.Logf("wrong access key: %v", err)

	cfg = s3Config(srv, "")
	cfg.SecretKeyFile = filepath.Join(t.TempDir(), "s3-secret")
	if err := os.WriteFile(cfg.SecretKeyFile, []byte(cfg.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.SecretKey = ""
	if _, err := NewS3Blobs(ctx, cfg); err != nil {
		t.Fatalf("secret from a file: %v", err)
	}
}
