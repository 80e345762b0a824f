package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// certificates hands the server's certificate to every TLS handshake
// (tls.Config.GetCertificate), so that a new one takes effect for new
// connections without touching established ones: reloaded from tls.cert
// and tls.key on SIGHUP and when the files change (an external ACME
// client renewing them), or obtained and renewed with ACME (acme.go).
type certificates struct {
	log  *slog.Logger
	cur  atomic.Pointer[tls.Certificate]
	acme *acmeCerts // nil without tls.acme

	mu  sync.Mutex // serializes reloads
	cfg Config
}

func newCertificates(cfg Config, log *slog.Logger) (*certificates, error) {
	c := &certificates{log: log, cfg: cfg}
	cert, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		return nil, err
	}
	c.cur.Store(cert)
	if cfg.TLS.ACME.Email != "" || cfg.TLS.ACME.Directory != "" || cfg.TLS.ACME.Agree {
		if c.acme, err = newACME(cfg, log); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// get is tls.Config.GetCertificate.
func (c *certificates) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c.acme != nil {
		if cert := c.acme.get(hello); cert != nil {
			return cert, nil
		}
	}
	return c.cur.Load(), nil
}

// current returns the certificate handshakes without ACME get.
func (c *certificates) current() *tls.Certificate { return c.cur.Load() }

// reload loads tls.cert/tls.key (or the self-signed certificate) again.
// A file that cannot be used leaves the current certificate in place.
func (c *certificates) reload(cfg Config) (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cert, err := LoadOrCreateCertificate(cfg)
	if err != nil {
		return false, err
	}
	c.cfg = cfg
	old := c.cur.Load()
	if old != nil && len(old.Certificate) > 0 && len(cert.Certificate) > 0 && bytes.Equal(old.Certificate[0], cert.Certificate[0]) {
		return false, nil
	}
	c.cur.Store(cert)
	attrs := []any{"file", cfg.TLS.Cert}
	if cert.Leaf != nil {
		attrs = append(attrs, "subject", cert.Leaf.Subject.CommonName, "not_after", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	c.log.Info("certificate reloaded; new connections use it", attrs...)
	return true, nil
}

// certDebounce lets an ACME client finish writing both files before the
// reload.
const certDebounce = 500 * time.Millisecond

// watch reloads the certificate when tls.cert or tls.key changes, until
// ctx ends. It watches the directories, so that files replaced by a
// rename (how most ACME clients write) and symlink swaps are seen.
func (c *certificates) watch(ctx context.Context) {
	c.mu.Lock()
	files := []string{c.cfg.TLS.Cert, c.cfg.TLS.Key}
	c.mu.Unlock()
	if files[0] == "" {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		c.log.Warn("certificate files are not watched (reload with SIGHUP)", "err", err)
		return
	}
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[filepath.Dir(f)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			c.log.Warn("certificate directory is not watched (reload with SIGHUP)", "dir", d, "err", err)
		}
	}
	go func() {
		defer w.Close()
		var timer *time.Timer
		fire := make(chan struct{}, 1)
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !c.concerns(ev.Name) {
					continue
				}
				if timer == nil {
					timer = time.AfterFunc(certDebounce, func() {
						select {
						case fire <- struct{}{}:
						default:
						}
					})
				} else {
					timer.Reset(certDebounce)
				}
			case <-fire:
				c.mu.Lock()
				cfg := c.cfg
				c.mu.Unlock()
				if _, err := c.reload(cfg); err != nil {
					c.log.Error("certificate files changed but cannot be used; keeping the current certificate", "err", err)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				c.log.Warn("watching certificate files", "err", err)
			}
		}
	}()
}

// concerns reports whether a changed path is (or is the directory entry
// of) the certificate or key, including Kubernetes-style ..data swaps.
func (c *certificates) concerns(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	base := filepath.Base(name)
	for _, f := range []string{c.cfg.TLS.Cert, c.cfg.TLS.Key} {
		if filepath.Clean(name) == filepath.Clean(f) || base == filepath.Base(f) {
			return true
		}
	}
	return base == "..data"
}
