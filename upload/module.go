package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces.
const (
	NS = xep.NSHTTPUpload
)

// Module implements module.Module, module.Starter and module.Stopper.
type Module struct {
	cfg   Config
	meta  storage.Uploads
	blobs Blobs
	sign  signer
	log   *slog.Logger
	now   func() time.Time

	reg   *module.Registry
	hosts map[string]string // service host → virtual host

	stopMu sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

var (
	_ module.Module  = (*Module)(nil)
	_ module.Starter = (*Module)(nil)
	_ module.Stopper = (*Module)(nil)
)

// New returns the module. meta keeps slot and file records, blobs the
// files (NewDiskBlobs(filepath.Join(dataDir, "upload")) for local disk).
func New(cfg Config, meta storage.Uploads, blobs Blobs) *Module {
	cfg = cfg.withDefaults()
	return &Module{cfg: cfg, meta: meta, blobs: blobs, sign: newSigner(cfg.Secret), log: cfg.Logger,
		now: time.Now, hosts: map[string]string{}}
}

// Name implements module.Module.
func (m *Module) Name() string { return "upload" }

// Register implements module.Module: one service host per virtual host.
func (m *Module) Register(r *module.Registry) error {
	m.reg = r
	// The files go with the account; their records name them, so this
	// runs before the store removes the account's rows.
	r.OnDeleteAccount(m.DeleteUser)
	domains := m.cfg.Domains
	if len(domains) == 0 {
		domains = r.Domains()
	}
	for _, d := range domains {
		host := m.cfg.Hosts[d]
		if host == "" {
			host = m.cfg.HostPrefix + d
		}
		if _, dup := m.hosts[host]; dup || slices.Contains(r.Domains(), host) {
			return fmt.Errorf("upload: service host %q is used twice", host)
		}
		m.hosts[host] = d
		// No Handler: messages, presence and IQs to JIDs under the host
		// are answered service-unavailable by the router.
		r.AddHost(module.Host{Domain: host, Parent: d, Name: "HTTP File Upload"})
		r.HostIQ(host, xep.NSDiscoInfo, "query", module.TargetHost, getOnly(m.handleDiscoInfo))
		r.HostIQ(host, xep.NSDiscoItems, "query", module.TargetHost, getOnly(m.handleDiscoItems))
		r.HostIQ(host, xep.NSPing, "ping", module.TargetHost, getOnly(m.handlePing))
		r.HostIQ(host, NS, "request", module.TargetHost, getOnly(m.handleRequest))
	}
	return nil
}

// Host returns the service host of a virtual host, or "".
func (m *Module) Host(domain string) string {
	for h, d := range m.hosts {
		if d == domain {
			return h
		}
	}
	return ""
}

// Start implements module.Starter: it measures disk usage and starts the
// expiry sweep.
func (m *Module) Start(ctx context.Context) error {
	m.stopMu.Lock()
	defer m.stopMu.Unlock()
	if m.cancel != nil {
		return nil
	}
	loopCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel, m.done = cancel, make(chan struct{})
	go m.loop(loopCtx)
	return nil
}

// Stop implements module.Stopper.
func (m *Module) Stop(ctx context.Context) error {
	m.stopMu.Lock()
	cancel, done := m.cancel, m.done
	m.stopMu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (m *Module) loop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.cfg.SweepInterval)
	defer t.Stop()
	for {
		if err := m.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("upload sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes files older than FileTTL and stale slots, and measures
// disk usage. The background loop calls it; tests may too.
func (m *Module) Sweep(ctx context.Context) error {
	var errs []error
	now := m.now()
	if m.cfg.FileTTL > 0 {
		if _, _, err := m.pruneBefore(ctx, now.Add(-m.cfg.FileTTL)); err != nil {
			errs = append(errs, err)
		}
	}
	if n, err := m.meta.DeleteStaleUploads(ctx, now, now.Add(-abandonedAfter)); err != nil {
		errs = append(errs, err)
	} else if n > 0 {
		m.log.Debug("upload: removed stale slots", "count", n)
	}
	if used, err := m.blobs.Usage(ctx); err != nil {
		errs = append(errs, err)
	} else {
		diskUsage.Set(float64(used))
	}
	return errors.Join(errs...)
}

// Prune deletes files uploaded more than olderThan ago and returns how
// many files and bytes it removed (for `parley upload prune`).
func (m *Module) Prune(ctx context.Context, olderThan time.Duration) (files int, bytes int64, err error) {
	return m.pruneBefore(ctx, m.now().Add(-olderThan))
}

func (m *Module) pruneBefore(ctx context.Context, t time.Time) (files int, bytes int64, err error) {
	for {
		batch, err := m.meta.UploadsCompletedBefore(ctx, t, 500)
		if err != nil {
			return files, bytes, err
		}
		for _, u := range batch {
			if err := m.remove(ctx, u); err != nil {
				return files, bytes, err
			}
			files++
			bytes += u.Size
		}
		if len(batch) < 500 {
			return files, bytes, nil
		}
	}
}

// remove deletes a file, then its record (a record without a file is
// harmless: GET answers 404).
func (m *Module) remove(ctx context.Context, u storage.Upload) error {
	if u.State != storage.UploadPending {
		if err := m.blobs.Delete(u.ID); err != nil {
			return fmt.Errorf("upload: deleting file %s: %w", u.ID, err)
		}
	}
	if err := m.meta.DeleteUpload(ctx, u.ID); err != nil {
		return err
	}
	if u.State == storage.UploadComplete {
		filesDeleted.Inc()
		diskUsage.Sub(float64(u.Size))
	}
	return nil
}

// DeleteUser deletes every file and slot of owner (a bare JID), for
// account deletion. A PUT still running for one of its slots fails and
// removes its file.
func (m *Module) DeleteUser(ctx context.Context, owner string) error {
	list, err := m.meta.OwnerUploads(ctx, owner)
	if err != nil {
		return err
	}
	for _, u := range list {
		if err := m.remove(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

// Stats summarizes stored files, total and per user (for `parley upload
// stats`).
func (m *Module) Stats(ctx context.Context) (storage.UploadStats, error) {
	return m.meta.UploadStats(ctx)
}

// getOnly wraps a handler of IQ get requests: a set is not what the
// service offers.
func getOnly(h module.IQHandler) module.IQHandler {
	return func(ctx context.Context, ev *module.Event) (*wire.Element, error) {
		if ev.Stanza.Type != "get" {
			return nil, module.Err(wire.ErrServiceUnavailable)
		}
		return h(ctx, ev)
	}
}

func (m *Module) handleDiscoInfo(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	return m.discoInfo(ev.Stanza.Tree().FirstElement())
}

func (m *Module) handleDiscoItems(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	if ev.Stanza.Tree().FirstElement().AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	return wire.NewElement(xep.NSDiscoItems, "query"), nil
}

func (m *Module) handlePing(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	return nil, nil
}

func (m *Module) handleRequest(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	res, err := m.requestSlot(ctx, ev, ev.Stanza.Tree().FirstElement())
	var se *module.StanzaError
	if err != nil && !errors.As(err, &se) {
		m.log.Error("upload: slot request failed", "from", ev.Stanza.From, "err", err)
	}
	return res, err
}

func (m *Module) discoInfo(q *wire.Element) (*wire.Element, error) {
	if q.AttrValue("node") != "" {
		return nil, module.Err(wire.ErrItemNotFound)
	}
	res := wire.NewElement(xep.NSDiscoInfo, "query")
	res.Add(wire.NewElement(xep.NSDiscoInfo, "identity", "category", "store", "type", "file", "name", "HTTP File Upload"))
	for _, f := range []string{xep.NSDiscoInfo, xep.NSDiscoItems, xep.NSPing, NS} {
		res.Add(wire.NewElement(xep.NSDiscoInfo, "feature", "var", f))
	}
	res.Add(wire.NewElement(xep.NSDataForms, "x", "type", "result").Add(
		wire.NewElement(xep.NSDataForms, "field", "var", "FORM_TYPE", "type", "hidden").
			Add(wire.NewElement(xep.NSDataForms, "value").AddText(NS)),
		wire.NewElement(xep.NSDataForms, "field", "var", "max-file-size").
			Add(wire.NewElement(xep.NSDataForms, "value").AddText(strconv.FormatInt(m.cfg.MaxFileSize, 10))),
	))
	return res, nil
}

// isLocalUser reports whether the request comes from a user of one of
// this server's virtual hosts over c2s.
func (m *Module) isLocalUser(ev *module.Event) bool {
	if ev.Origin.Kind != module.FromClient || ev.From.Localpart() == "" {
		return false
	}
	domains := m.reg.Domains()
	return slices.Contains(domains, ev.From.Domainpart())
}

func (m *Module) requestSlot(ctx context.Context, ev *module.Event, req *wire.Element) (*wire.Element, error) {
	if !m.isLocalUser(ev) {
		reject(reasonNotAllowed)
		return nil, module.Errorf(wire.ErrNotAllowed, "only users of this server may upload files")
	}
	owner := ev.From.Bare().String()
	name, err := sanitizeFilename(req.AttrValue("filename"))
	if err != nil {
		reject(reasonBadRequest)
		return nil, module.Errorf(wire.ErrBadRequest, "%s", err)
	}
	size, err := strconv.ParseInt(strings.TrimSpace(req.AttrValue("size")), 10, 64)
	if err != nil || size <= 0 {
		reject(reasonBadRequest)
		return nil, module.Errorf(wire.ErrBadRequest, "size must be a positive number of bytes")
	}
	ct, err := normalizeContentType(req.AttrValue("content-type"))
	if err != nil {
		reject(reasonBadRequest)
		return nil, module.Errorf(wire.ErrBadRequest, "%s", err)
	}
	if size > m.cfg.MaxFileSize {
		reject(reasonTooLarge)
		max := strconv.FormatInt(m.cfg.MaxFileSize, 10)
		return nil, &module.StanzaError{
			Condition: wire.ErrNotAcceptable,
			Text:      "File too large. The maximum file size is " + max + " bytes",
			App: wire.NewElement(NS, "file-too-large").Add(
				wire.NewElement(NS, "max-file-size").AddText(max)),
		}
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	u := storage.Upload{
		ID: newID(), Owner: owner, Filename: name, Size: size, ContentType: ct,
		Created: now, Expires: now.Add(m.cfg.SlotTTL).Truncate(time.Second),
	}
	switch err := m.meta.CreateUpload(ctx, u, max(m.cfg.Quota, 0)); {
	case errors.Is(err, storage.ErrQuotaExceeded):
		reject(reasonQuota)
		return nil, module.Errorf(wire.ErrResourceConstraint,
			"Quota exceeded: your files may use at most %d bytes; delete files or wait until old ones expire", m.cfg.Quota)
	case err != nil:
		return nil, fmt.Errorf("creating slot: %w", err)
	}
	slotsIssued.Inc()
	fileURL := m.baseURL(ev.To.Domainpart()) + "/" + u.ID + "/" + url.PathEscape(name)
	m.log.Debug("upload slot", "owner", owner, "id", u.ID, "size", size)
	return wire.NewElement(NS, "slot").Add(
		wire.NewElement(NS, "put", "url", fileURL).Add(
			wire.NewElement(NS, "header", "name", "Authorization").AddText(m.sign.authorization(u))),
		wire.NewElement(NS, "get", "url", fileURL),
	), nil
}

// baseURL is the public base URL for the service host's virtual host.
func (m *Module) baseURL(host string) string {
	domain := m.hosts[host]
	var base string
	switch {
	case m.cfg.BaseURLFunc != nil:
		base = m.cfg.BaseURLFunc(domain)
	case m.cfg.BaseURL != "":
		base = m.cfg.BaseURL
	default:
		base = "https://" + domain + ":5281/upload"
	}
	return strings.TrimRight(base, "/")
}
