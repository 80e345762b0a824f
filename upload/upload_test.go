package upload

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

func TestDisco(t *testing.T) {
	e := setup(t, Config{Settings: Settings{MaxFileSize: 5 << 20}})
	a := e.login("alice@example.org/phone")

	hosts := e.reg.Hosts()
	if len(hosts) != 1 || hosts[0].Domain != uploadHost || hosts[0].Parent != domain {
		t.Fatalf("hosts = %+v", hosts)
	}
	r := e.iq(a, "<iq type='get' id='d1' to='"+uploadHost+"'><query xmlns='"+xep.NSDiscoInfo+"'/></iq>")
	q := r.Child(xep.NSDiscoInfo, "query")
	if r.Type != "result" || q == nil || r.From != uploadHost {
		t.Fatalf("disco#info: %s", r.Raw)
	}
	id := q.Child(xep.NSDiscoInfo, "identity")
	if id.AttrValue("category") != "store" || id.AttrValue("type") != "file" {
		t.Fatalf("identity: %s", r.Raw)
	}
	var hasNS bool
	for _, f := range q.ChildrenNamed(xep.NSDiscoInfo, "feature") {
		hasNS = hasNS || f.AttrValue("var") == NS
	}
	if !hasNS {
		t.Fatalf("feature %s missing: %s", NS, r.Raw)
	}
	fields := map[string]string{}
	for _, f := range q.Child(xep.NSDataForms, "x").ChildrenNamed(xep.NSDataForms, "field") {
		fields[f.AttrValue("var")] = f.ChildText(xep.NSDataForms, "value")
	}
	if fields["FORM_TYPE"] != NS || fields["max-file-size"] != strconv.Itoa(5<<20) {
		t.Fatalf("form fields %v: %s", fields, r.Raw)
	}

	r = e.iq(a, "<iq type='get' id='d2' to='"+uploadHost+"'><query xmlns='"+xep.NSDiscoItems+"'/></iq>")
	if r.Type != "result" {
		t.Fatalf("disco#items: %s", r.Raw)
	}
	r = e.iq(a, "<iq type='get' id='d3' to='"+uploadHost+"'><query xmlns='"+xep.NSDiscoInfo+"' node='x'/></iq>")
	wantError(t, "disco#info node", r, wire.ErrItemNotFound)
	r = e.iq(a, "<iq type='set' id='d4' to='"+uploadHost+"'><foo xmlns='urn:example'/></iq>")
	wantError(t, "unknown iq", r, wire.ErrServiceUnavailable)
	r = e.iq(a, "<iq type='get' id='d5' to='"+uploadHost+"'><ping xmlns='"+xep.NSPing+"'/></iq>")
	if r.Type != "result" {
		t.Fatalf("ping: %s", r.Raw)
	}
}

func TestRoundTrip(t *testing.T) { testRoundTrip(t, setup) }

// testRoundTrip runs with files in the store that setup gives (disk or S3).
func testRoundTrip(t *testing.T, setup func(*testing.T, Config) *env) {
	e := setup(t, Config{})
	a := e.login("alice@example.org/phone")
	data := randomBytes(20<<20, 1)

	sl := e.slot(a, "très cool.jpg", int64(len(data)), "image/jpeg")
	if sl.put != sl.get {
		t.Fatalf("put %s and get %s differ", sl.put, sl.get)
	}
	u, err := url.Parse(sl.get)
	if err != nil || u.Scheme != "https" || !strings.HasPrefix(sl.get, e.srv.URL+"/upload/") ||
		!strings.HasSuffix(u.EscapedPath(), "/tr%C3%A8s%20cool.jpg") {
		t.Fatalf("get URL %q", sl.get)
	}
	if !strings.HasPrefix(sl.auth, "Bearer ") {
		t.Fatalf("authorization %q", sl.auth)
	}

	// Not served before the upload.
	resp, _ := e.get(sl.get)
	wantStatus(t, "GET before PUT", resp, http.StatusNotFound)

	resp = e.put(sl.put, sl.auth, "image/jpeg", data)
	wantStatus(t, "PUT", resp, http.StatusCreated)
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("PUT lacks CORS headers: %v", resp.Header)
	}

	resp, got := e.get(sl.get)
	wantStatus(t, "GET", resp, http.StatusOK)
	if !bytes.Equal(got, data) {
		t.Fatalf("GET returned %d bytes, different from the %d uploaded", len(got), len(data))
	}
	h := resp.Header
	for k, want := range map[string]string{
		"Content-Length":              strconv.Itoa(len(data)),
		"Content-Type":                "image/jpeg",
		"X-Content-Type-Options":      "nosniff",
		"Access-Control-Allow-Origin": "*",
		"Accept-Ranges":               "bytes",
	} {
		if h.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if cd := h.Get("Content-Disposition"); !strings.HasPrefix(cd, "inline") {
		t.Errorf("Content-Disposition = %q, want inline for a JPEG", cd)
	}
	etag := h.Get("ETag")
	if etag == "" || h.Get("Last-Modified") == "" {
		t.Errorf("no ETag/Last-Modified: %v", h)
	}

	resp, got = e.get(sl.get, "Range", "bytes=1000000-1000999")
	wantStatus(t, "range GET", resp, http.StatusPartialContent)
	if !bytes.Equal(got, data[1000000:1001000]) {
		t.Fatalf("range returned %d wrong bytes", len(got))
	}
	if cr := resp.Header.Get("Content-Range"); cr != "bytes 1000000-1000999/"+strconv.Itoa(len(data)) {
		t.Errorf("Content-Range = %q", cr)
	}
	resp, got = e.get(sl.get, "Range", "bytes=-10")
	wantStatus(t, "suffix range", resp, http.StatusPartialContent)
	if !bytes.Equal(got, data[len(data)-10:]) {
		t.Fatalf("suffix range returned wrong bytes")
	}
	resp, _ = e.get(sl.get, "If-None-Match", etag)
	wantStatus(t, "conditional GET", resp, http.StatusNotModified)

	req, _ := http.NewRequest(http.MethodHead, sl.get, nil)
	resp = e.do(req)
	wantStatus(t, "HEAD", resp, http.StatusOK)
	if resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD Content-Length %d", resp.ContentLength)
	}

	// The file name is part of the address.
	resp, _ = e.get(strings.TrimSuffix(sl.get, "cool.jpg") + "other.jpg")
	wantStatus(t, "GET with another name", resp, http.StatusNotFound)

	st, err := e.mod.Stats(context.Background())
	if err != nil || st.Files != 1 || st.Bytes != int64(len(data)) || st.Owners[0].Owner != "alice@example.org" {
		t.Fatalf("Stats = %+v, %v", st, err)
	}
}

func TestSlotRequestRejections(t *testing.T) {
	e := setup(t, Config{Settings: Settings{MaxFileSize: 1000}})
	a := e.login("alice@example.org/phone")

	r := e.request(a, "big.bin", 1001, "")
	er := wantError(t, "oversize", r, wire.ErrNotAcceptable)
	if er.AttrValue("type") != "modify" || er.Child(NS, "file-too-large").ChildText(NS, "max-file-size") != "1000" {
		t.Fatalf("oversize error: %s", r.Raw)
	}
	for _, size := range []string{"0", "-1", "x", "", "99999999999999999999999"} {
		r := e.iq(a, "<iq type='get' id='s' to='"+uploadHost+"'><request xmlns='"+NS+"' filename='a.txt' size='"+size+"'/></iq>")
		wantError(t, "size "+size, r, wire.ErrBadRequest)
	}
	for _, name := range []string{"", " ", "../../etc/passwd", "a/b.txt", `..\..\boot.ini`, "..", ".", "a\tb", "a\u0085b", strings.Repeat("x", 256)} {
		r := e.request(a, name, 10, "")
		wantError(t, "filename "+strconv.Quote(name), r, wire.ErrBadRequest)
	}
	r = e.request(a, "a.txt", 10, "not a type")
	wantError(t, "content type", r, wire.ErrBadRequest)
	r = e.iq(a, "<iq type='set' id='s' to='"+uploadHost+"'><request xmlns='"+NS+"' filename='a.txt' size='1'/></iq>")
	wantError(t, "set", r, wire.ErrServiceUnavailable)

	// Remote users are refused.
	remote := wire.MustParse("<iq type='get' id='rem' from='eve@evil.example/x' to='" + uploadHost + "'><request xmlns='" + NS + "' filename='a.txt' size='10'/></iq>")
	var sent []*wire.Stanza
	var mu sync.Mutex
	e.router.SetRemote(remoteFunc(func(st *wire.Stanza) {
		mu.Lock()
		sent = append(sent, st)
		mu.Unlock()
	}))
	e.router.Route(context.Background(), remote, module.Origin{Kind: module.FromServer})
	mu.Lock()
	if len(sent) != 1 {
		t.Fatalf("remote request: %d replies", len(sent))
	}
	wantError(t, "remote user", sent[0], wire.ErrNotAllowed)
	mu.Unlock()

	// A name is sanitized, not refused, for format characters and spaces.
	sl := e.slot(a, " photo\u202egpj.exe ", 10, "")
	if !strings.HasSuffix(sl.get, "/photogpj.exe") {
		t.Fatalf("sanitized URL %q", sl.get)
	}
}

type remoteFunc func(st *wire.Stanza)

func (f remoteFunc) Send(_ context.Context, st *wire.Stanza) error { f(st); return nil }

func TestQuota(t *testing.T) {
	e := setup(t, Config{Settings: Settings{Quota: 1000}})
	a := e.login("alice@example.org/phone")
	b := e.login("bob@example.org/pc")

	s1 := e.slot(a, "one.bin", 600, "")
	wantStatus(t, "PUT", e.put(s1.put, s1.auth, "", randomBytes(600, 2)), http.StatusCreated)
	r := e.request(a, "two.bin", 401, "")
	er := wantError(t, "quota", r, wire.ErrResourceConstraint)
	if er.AttrValue("type") != "wait" || er.ChildText(wire.NSStanzas, "text") == "" {
		t.Fatalf("quota error: %s", r.Raw)
	}
	e.slot(a, "two.bin", 400, "") // exactly fills it (pending slots count)
	wantError(t, "quota with pending slot", e.request(a, "three.bin", 1, ""), wire.ErrResourceConstraint)
	e.slot(b, "bob.bin", 1000, "") // per user

	// Expired slots stop counting.
	e.skew.Store(int64(DefaultSlotTTL + time.Second))
	e.slot(a, "three.bin", 400, "")
}

func TestPutRejections(t *testing.T) { testPutRejections(t, setup) }

// testPutRejections runs with files in the store that setup gives (disk or S3).
func testPutRejections(t *testing.T, setup func(*testing.T, Config) *env) {
	e := setup(t, Config{})
	a := e.login("alice@example.org/phone")
	b := e.login("bob@example.org/pc")
	data := randomBytes(1000, 3)

	sl := e.slot(a, "doc.txt", int64(len(data)), "text/plain")

	t.Run("no signature", func(t *testing.T) {
		wantStatus(t, "PUT", e.put(sl.put, "", "text/plain", data), http.StatusForbidden)
	})
	t.Run("wrong signature", func(t *testing.T) {
		bad := sl.auth[:len(sl.auth)-2] + "AA"
		if bad == sl.auth {
			bad = sl.auth[:len(sl.auth)-2] + "BB"
		}
		wantStatus(t, "PUT", e.put(sl.put, bad, "text/plain", data), http.StatusForbidden)
		wantStatus(t, "PUT", e.put(sl.put, "Basic "+strings.TrimPrefix(sl.auth, "Bearer "), "text/plain", data), http.StatusForbidden)
	})
	t.Run("another user's slot", func(t *testing.T) {
		bs := e.slot(b, "doc.txt", int64(len(data)), "text/plain")
		// Bob's valid authorization does not open Alice's slot, nor the
		// other way round.
		wantStatus(t, "bob on alice's slot", e.put(sl.put, bs.auth, "text/plain", data), http.StatusForbidden)
		wantStatus(t, "alice's header on bob's slot", e.put(bs.put, sl.auth, "text/plain", data), http.StatusForbidden)
	})
	t.Run("larger than declared", func(t *testing.T) {
		wantStatus(t, "PUT", e.put(sl.put, sl.auth, "text/plain", append(data, 'x')), http.StatusRequestEntityTooLarge)
	})
	t.Run("smaller than declared", func(t *testing.T) {
		wantStatus(t, "PUT", e.put(sl.put, sl.auth, "text/plain", data[1:]), http.StatusBadRequest)
	})
	t.Run("no length", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, sl.put, io.MultiReader(bytes.NewReader(data)))
		req.Header.Set("Authorization", sl.auth)
		req.ContentLength = -1
		wantStatus(t, "chunked PUT", e.do(req), http.StatusLengthRequired)
	})
	t.Run("content type", func(t *testing.T) {
		wantStatus(t, "PUT", e.put(sl.put, sl.auth, "text/html", data), http.StatusUnsupportedMediaType)
	})
	t.Run("unknown slot", func(t *testing.T) {
		u := strings.Replace(sl.put, "/doc.txt", "/other.txt", 1)
		wantStatus(t, "PUT other name", e.put(u, sl.auth, "text/plain", data), http.StatusNotFound)
		u = e.srv.URL + "/upload/" + newID() + "/doc.txt"
		wantStatus(t, "PUT other id", e.put(u, sl.auth, "text/plain", data), http.StatusNotFound)
	})
	// None of the refusals spent the slot.
	t.Run("single use", func(t *testing.T) {
		wantStatus(t, "PUT", e.put(sl.put, sl.auth, "text/plain; charset=utf-8", data), http.StatusCreated)
		wantStatus(t, "second PUT", e.put(sl.put, sl.auth, "text/plain", data), http.StatusConflict)
		wantStatus(t, "second PUT, other body", e.put(sl.put, sl.auth, "text/plain", randomBytes(1000, 4)), http.StatusConflict)
		_, got := e.get(sl.get)
		if !bytes.Equal(got, data) {
			t.Fatal("the file changed")
		}
	})
	t.Run("expired", func(t *testing.T) {
		s2 := e.slot(a, "late.txt", 10, "")
		e.skew.Store(int64(DefaultSlotTTL + time.Second))
		defer e.skew.Store(0)
		wantStatus(t, "PUT", e.put(s2.put, s2.auth, "", data[:10]), http.StatusForbidden)
	})
	t.Run("truncated body", func(t *testing.T) {
		s3 := e.slot(a, "cut.bin", 100, "")
		u, _ := url.Parse(s3.put)
		conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = io.WriteString(conn, "PUT "+u.EscapedPath()+" HTTP/1.1\r\nHost: "+u.Host+"\r\nAuthorization: "+s3.auth+
			"\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 40))
		_ = conn.CloseWrite()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				t.Fatal("a truncated body was accepted")
			}
		}
		// The slot is spent and nothing is stored or served.
		deadline := time.Now().Add(3 * time.Second)
		for {
			id, _, _ := slotPath(u.Path)
			_, err := e.store.Upload(context.Background(), id)
			if errors.Is(err, storage.ErrNotFound) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slot record still there: %v", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		resp2, _ := e.get(s3.get)
		wantStatus(t, "GET", resp2, http.StatusNotFound)
		id, _, _ := slotPath(u.Path)
		if f, _, _, err := e.blobs.Open(id); !errors.Is(err, fs.ErrNotExist) {
			if f != nil {
				f.Close()
			}
			t.Fatalf("a truncated upload was stored: %v", err)
		}
		if d, ok := e.blobs.(*DiskBlobs); ok {
			assertNoTempFiles(t, d.Dir())
		}
	})
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tmpPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestServedHeaders(t *testing.T) {
	e := setup(t, Config{})
	a := e.login("alice@example.org/phone")
	for _, c := range []struct {
		name, ct, wantCT string
		inline           bool
	}{
		{"page.html", "text/html", "text/html", false},
		{"logo.svg", "image/svg+xml", "image/svg+xml", false},
		{"x.js", "application/javascript", "application/javascript", false},
		{"data.xml", "application/xml", "application/xml", false},
		{"pic.png", "image/png", "image/png", true},
		{"voice.m4a", "audio/mp4", "audio/mp4", true},
		{"notes.txt", "text/plain; charset=utf-8", "text/plain; charset=utf-8", true},
		{"blob", "", "application/octet-stream", false},
	} {
		body := []byte("<html><script>alert(1)</script></html>")
		sl := e.slot(a, c.name, int64(len(body)), c.ct)
		wantStatus(t, c.name, e.put(sl.put, sl.auth, c.ct, body), http.StatusCreated)
		resp, _ := e.get(sl.get)
		wantStatus(t, c.name, resp, http.StatusOK)
		if got := resp.Header.Get("Content-Type"); got != c.wantCT {
			t.Errorf("%s: Content-Type %q, want %q", c.name, got, c.wantCT)
		}
		cd := resp.Header.Get("Content-Disposition")
		if strings.HasPrefix(cd, "inline") != c.inline || !strings.Contains(cd, "filename") {
			t.Errorf("%s: Content-Disposition %q (inline %v)", c.name, cd, c.inline)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: security headers missing: %v", c.name, resp.Header)
		}
	}

	// CORS preflight.
	req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/upload/"+newID()+"/x", nil)
	req.Header.Set("Origin", "https://web.example")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	resp := e.do(req)
	wantStatus(t, "OPTIONS", resp, http.StatusNoContent)
	if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "PUT") || !strings.Contains(m, "GET") {
		t.Errorf("Allow-Methods %q", m)
	}
	if h := resp.Header.Get("Access-Control-Allow-Headers"); !strings.Contains(h, "Authorization") || !strings.Contains(h, "Content-Type") {
		t.Errorf("Allow-Headers %q", h)
	}
	req, _ = http.NewRequest(http.MethodDelete, e.srv.URL+"/upload/"+newID()+"/x", nil)
	wantStatus(t, "DELETE", e.do(req), http.StatusMethodNotAllowed)
}

func TestExpiryPruneDeleteUser(t *testing.T) { testExpiryPruneDeleteUser(t, setup) }

// testExpiryPruneDeleteUser runs with files in the store that setup gives (disk or S3).
func testExpiryPruneDeleteUser(t *testing.T, setup func(*testing.T, Config) *env) {
	e := setup(t, Config{Settings: Settings{FileTTL: time.Hour}})
	a := e.login("alice@example.org/phone")
	b := e.login("bob@example.org/pc")
	ctx := context.Background()

	upload := func(s *session, name string, n int) slot {
		sl := e.slot(s, name, int64(n), "")
		wantStatus(t, name, e.put(sl.put, sl.auth, "", randomBytes(n, uint64(n))), http.StatusCreated)
		return sl
	}
	old := upload(a, "old.bin", 100)
	e.skew.Store(int64(50 * time.Minute))
	fresh := upload(a, "fresh.bin", 200)
	pending := e.slot(a, "pending.bin", 10, "")
	bobs := upload(b, "bob.bin", 300)

	e.skew.Store(int64(70 * time.Minute))
	resp, _ := e.get(old.get)
	wantStatus(t, "expired file", resp, http.StatusNotFound)
	if err := e.mod.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if used, _ := e.blobs.Usage(ctx); used != 500 {
		t.Fatalf("usage after sweep %d, want 500", used)
	}
	resp, _ = e.get(fresh.get)
	wantStatus(t, "fresh file", resp, http.StatusOK)
	id, _, _ := slotPath(mustURL(t, pending.put).Path)
	if _, err := e.store.Upload(ctx, id); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired pending slot survived the sweep: %v", err)
	}

	files, n, err := e.mod.Prune(ctx, 10*time.Minute)
	if err != nil || files != 2 || n != 500 {
		t.Fatalf("Prune = %d, %d, %v", files, n, err)
	}
	resp, _ = e.get(bobs.get)
	wantStatus(t, "pruned file", resp, http.StatusNotFound)

	// Account deletion (the registry's, running the module's hook)
	// removes files and slots.
	e.skew.Store(0)
	mine := upload(a, "mine.bin", 50)
	e.slot(a, "slot.bin", 10, "")
	theirs := upload(b, "theirs.bin", 60)
	if err := e.reg.DeleteAccount(ctx, jid.MustParse("alice@example.org")); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.store.OwnerUploads(ctx, "alice@example.org"); len(list) != 0 {
		t.Fatalf("records left: %+v", list)
	}
	resp, _ = e.get(mine.get)
	wantStatus(t, "deleted user's file", resp, http.StatusNotFound)
	resp, _ = e.get(theirs.get)
	wantStatus(t, "other user's file", resp, http.StatusOK)
	if used, _ := e.blobs.Usage(ctx); used != 60 {
		t.Fatalf("usage %d, want 60", used)
	}
	st, _ := e.mod.Stats(ctx)
	if st.Files != 1 || st.Bytes != 60 {
		t.Fatalf("Stats %+v", st)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestDiskBlobs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := NewDiskBlobs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "../../etc", strings.NewReader("x"), 1); err == nil {
		t.Fatal("Put accepted an invalid key")
	}
	key := newID()
	if err := b.Put(ctx, key, strings.NewReader("hello"), 4); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("longer body: %v", err)
	}
	if err := b.Put(ctx, key, strings.NewReader("hel"), 4); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("shorter body: %v", err)
	}
	if _, _, _, err := b.Open(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after failed Put: %v", err)
	}
	assertNoTempFiles(t, dir)

	// A writer that is still writing is never visible.
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, key, pr, 10) }()
	_, _ = pw.Write([]byte("01234"))
	if _, _, _, err := b.Open(key); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("half-written blob visible: %v", err)
	}
	_, _ = pw.Write([]byte("56789"))
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f, _, size, err := b.Open(key)
	if err != nil || size != 10 {
		t.Fatalf("Open: %d, %v", size, err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != "0123456789" {
		t.Fatalf("content %q", got)
	}
	if used, err := b.Usage(ctx); used != 10 || err != nil {
		t.Fatalf("Usage %d, %v", used, err)
	}

	// Leftover temporary files are removed on start.
	stale := filepath.Join(dir, key[:2], tmpPrefix+"crashed")
	if err := os.WriteFile(stale, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDiskBlobs(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temp file kept: %v", err)
	}
	if err := b.Delete(key); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(key); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func TestSanitizeFilename(t *testing.T) {
	for in, want := range map[string]string{
		"a.txt":                  "a.txt",
		"  spaced name.jpg  ":    "spaced name.jpg",
		"très cool.jpg":          "très cool.jpg",
		"evil\u202etxt.exe":      "eviltxt.exe",
		"..hidden":               "..hidden",
		"100%.png?x=1#frag":      "100%.png?x=1#frag",
		"\"quoted\" <name>.html": "\"quoted\" <name>.html",
	} {
		got, err := sanitizeFilename(in)
		if err != nil || got != want {
			t.Errorf("sanitizeFilename(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", ".", "a/b", `a\b`, "/etc/passwd", "a\x00b", "a\nb", "\xff.txt", strings.Repeat("é", 200)} {
		if got, err := sanitizeFilename(in); err == nil {
			t.Errorf("sanitizeFilename(%q) = %q, want an error", in, got)
		}
	}
}

// Odd file names survive the URL round trip.
func TestOddFilenameURL(t *testing.T) {
	e := setup(t, Config{})
	a := e.login("alice@example.org/phone")
	name := "100%.png?x=1#frag"
	sl := e.slot(a, name, 3, "image/png")
	wantStatus(t, "PUT", e.put(sl.put, sl.auth, "image/png", []byte("abc")), http.StatusCreated)
	resp, got := e.get(sl.get)
	wantStatus(t, "GET", resp, http.StatusOK)
	if string(got) != "abc" {
		t.Fatalf("got %q", got)
	}
}
