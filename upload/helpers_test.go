package upload

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/storage/sqlite"
	"github.com/parley-xmpp/parley/wire"
)

const (
	domain     = "example.org"
	uploadHost = "upload.example.org"
)

// session stands in for a client connection (the module test kit's).
type session = modtest.Session

type env struct {
	t      *testing.T
	router *router.Router
	reg    *module.Registry
	store  *sqlite.Store
	blobs  Blobs
	mod    *Module
	srv    *httptest.Server
	client *http.Client
	skew   atomic.Int64 // added to the module's clock
}

// setup wires the module into a real router over a real SQLite store and
// serves its handler under /upload/ on an httptest TLS server. Files go to
// DiskBlobs in a temporary directory.
func setup(t *testing.T, cfg Config) *env {
	t.Helper()
	return setupWith(t, cfg, nil)
}

// setupWith is setup with files in blobs (DiskBlobs when nil).
func setupWith(t *testing.T, cfg Config, blobs Blobs) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if blobs == nil {
		if blobs, err = NewDiskBlobs(dir + "/upload"); err != nil {
			t.Fatal(err)
		}
	}
	r := router.New(router.Config{Domains: []string{domain}})
	reg := module.NewRegistry([]string{domain}, r.Sender(), r)
	reg.SetAccounts(store)
	e := &env{t: t, router: r, reg: reg, store: store, blobs: blobs}

	mux := http.NewServeMux()
	e.srv = httptest.NewUnstartedServer(mux)
	cfg.BaseURLFunc = func(d string) string {
		if d != domain {
			t.Errorf("base URL asked for %q", d)
		}
		return e.srv.URL + "/upload/"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Secret == nil {
		cfg.Secret = []byte("test secret")
	}
	m := New(cfg, store, blobs)
	m.now = func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }
	e.mod = m
	mux.Handle("/upload/", m.Handler())
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()

	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	r.SetRegistry(reg)
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return e
}

// login creates the account if needed and binds a session.
func (e *env) login(full string) *session {
	e.t.Helper()
	j := jid.MustParse(full)
	ctx := context.Background()
	if ok, _ := e.store.AccountExists(ctx, j.Bare().String()); !ok {
		if err := e.store.CreateAccount(ctx, j.Bare().String(), nil); err != nil {
			e.t.Fatal(err)
		}
	}
	s := modtest.NewSession(j.String()).Available(0)
	if _, err := e.router.Bind(s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// iq sends a request from s as c2s does and returns its reply.
func (e *env) iq(s *session, xml string) *wire.Stanza {
	e.t.Helper()
	st := wire.MustParse(xml).WithAttr("from", s.JID().String())
	e.router.Route(context.Background(), st, module.Origin{Kind: module.FromClient, Session: s})
	for _, g := range s.Take() {
		if g.Name == "iq" && g.ID == st.ID {
			return g
		}
	}
	e.t.Fatalf("%s: no reply", xml)
	return nil
}

// slot is a granted upload slot.
type slot struct {
	put, get, auth string
}

// request asks for a slot and returns the reply.
func (e *env) request(s *session, filename string, size int64, ct string) *wire.Stanza {
	e.t.Helper()
	attrs := "filename='" + wire.EscapeAttr(filename) + "' size='" + strconv.FormatInt(size, 10) + "'"
	if ct != "" {
		attrs += " content-type='" + wire.EscapeAttr(ct) + "'"
	}
	return e.iq(s, "<iq type='get' id='slot' to='"+uploadHost+"'><request xmlns='"+NS+"' "+attrs+"/></iq>")
}

// slot asks for a slot and fails the test unless one is granted.
func (e *env) slot(s *session, filename string, size int64, ct string) slot {
	e.t.Helper()
	r := e.request(s, filename, size, ct)
	sl := r.Child(NS, "slot")
	if r.Type != "result" || sl == nil {
		e.t.Fatalf("slot request: %s", r.Raw)
	}
	put := sl.Child(NS, "put")
	out := slot{put: put.AttrValue("url"), get: sl.Child(NS, "get").AttrValue("url")}
	for _, h := range put.ChildrenNamed(NS, "header") {
		if h.AttrValue("name") == "Authorization" {
			out.auth = h.Text()
		}
	}
	if out.put == "" || out.get == "" || out.auth == "" {
		e.t.Fatalf("incomplete slot: %s", r.Raw)
	}
	return out
}

// put uploads body to the slot; ct "" sends no Content-Type.
func (e *env) put(url, auth, ct string, body []byte) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) *http.Response {
	e.t.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp
}

func (e *env) get(url string, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp := e.do(req)
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func wantStatus(t *testing.T, what string, resp *http.Response, code int) {
	t.Helper()
	if resp.StatusCode != code {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: status %d (%s), want %d", what, resp.StatusCode, bytes.TrimSpace(b), code)
	}
}

// wantError checks an error reply's condition.
func wantError(t *testing.T, what string, r *wire.Stanza, cond string) *wire.Element {
	t.Helper()
	e := r.Child(wire.NSClient, "error")
	if r.Type != "error" || e == nil || e.Child(wire.NSStanzas, cond) == nil {
		t.Fatalf("%s: want %s error, got %s", what, cond, r.Raw)
	}
	return e
}
