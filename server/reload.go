package server

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/basic"
	"github.com/parley-xmpp/parley/c2s"
	"github.com/parley-xmpp/parley/im"
	"github.com/parley-xmpp/parley/register"
	"github.com/parley-xmpp/parley/wire"
)

// reloadable are the configuration keys (or key groups, ending in ".")
// a running server applies on reload; every other change needs a restart.
// log.level is applied by the parley command, which owns the logger.
var reloadable = []string{
	"admins", "invites.", "registration.", "contact.", "log.level",
	"tls.cert", "tls.key",
	"limits.max_stanza_bytes", "limits.max_depth", "limits.max_attributes", "limits.send_queue_bytes",
	"limits.stanzas_per_second", "limits.write_timeout", "limits.preauth_bytes_per_second", "limits.preauth_stanzas_per_second", "limits.max_offline_messages", "limits.max_roster_items", "limits.max_block_items",
}

// IsReloadable reports whether a change of key takes effect on reload.
func IsReloadable(key string) bool {
	return slices.ContainsFunc(reloadable, func(r string) bool {
		return key == r || (strings.HasSuffix(r, ".") && strings.HasPrefix(key, r))
	})
}

// ConfigChanges lists the keys (paths such as limits.send_queue_bytes) whose
// values differ between a and b, in declaration order.
func ConfigChanges(a, b Config) []string {
	var out []string
	var walk func(x, y reflect.Value, prefix string)
	walk = func(x, y reflect.Value, prefix string) {
		t := x.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			fx, fy := x.Field(i), y.Field(i)
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
				walk(fx, fy, prefix+name+".")
				continue
			}
			if !reflect.DeepEqual(fx.Interface(), fy.Interface()) {
				out = append(out, prefix+name)
			}
		}
	}
	walk(reflect.ValueOf(a), reflect.ValueOf(b), "")
	return out
}

// ReloadResult says what a reload did.
type ReloadResult struct {
	Applied       []string // changed keys now in effect
	NeedsRestart  []string // changed keys that take effect at the next start
	CertReloaded  bool     // a new certificate serves new connections
	CertError     error    // the certificate files could not be used (the old one stays)
	ConfigChanged bool
}

// Reload applies cfg where that is safe while running: the keys listed in
// IsReloadable (limits for new connections, admins, invitations,
// registration, contact addresses, the certificate files, which are read
// again in any case), and logs one line naming what changed and what
// needs a restart. The other keys keep their running values.
func (s *Server) Reload(cfg Config) (ReloadResult, error) {
	if err := cfg.Validate(); err != nil {
		return ReloadResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var res ReloadResult
	next := s.cfg
	for _, k := range ConfigChanges(s.cfg, cfg) {
		if IsReloadable(k) {
			res.Applied = append(res.Applied, k)
		} else {
			res.NeedsRestart = append(res.NeedsRestart, k)
		}
	}
	res.ConfigChanged = len(res.Applied)+len(res.NeedsRestart) > 0
	next.Admins, next.Invites, next.Registration, next.Contact = cfg.Admins, cfg.Invites, cfg.Registration, cfg.Contact
	next.Log.Level = cfg.Log.Level
	next.TLS.Cert, next.TLS.Key = cfg.TLS.Cert, cfg.TLS.Key
	l, nl := &next.Limits, cfg.Limits
	l.MaxStanzaBytes, l.MaxDepth, l.MaxAttributes, l.SendQueueBytes, l.StanzasPerSecond = nl.MaxStanzaBytes, nl.MaxDepth, nl.MaxAttributes, nl.SendQueueBytes, nl.StanzasPerSecond
	l.WriteTimeout, l.PreAuthBytesPerSecond, l.PreAuthStanzasPerSecond = nl.WriteTimeout, nl.PreAuthBytesPerSecond, nl.PreAuthStanzasPerSecond
	l.MaxOfflineMessages, l.MaxRosterItems, l.MaxBlockItems = nl.MaxOfflineMessages, nl.MaxRosterItems, nl.MaxBlockItems
	s.apply(next)
	s.cfg = next

	res.CertReloaded, res.CertError = s.certs.reload(next)
	attrs := []any{"applied", strings.Join(res.Applied, " "), "needs_restart", strings.Join(res.NeedsRestart, " ")}
	if res.CertError != nil {
		attrs = append(attrs, "certificate_error", res.CertError.Error())
	}
	switch {
	case len(res.NeedsRestart) > 0:
		s.log.Warn("configuration reloaded; some changes need a restart", attrs...)
	case res.ConfigChanged:
		s.log.Info("configuration reloaded", attrs...)
	default:
		s.log.Info("configuration reloaded: no change", attrs...)
	}
	return res, nil
}

// apply hands the reloadable settings of cfg to the parts that use them.
func (s *Server) apply(cfg Config) {
	s.admin.SetPolicy(AdminPolicy(cfg))
	s.c2s.SetLimits(c2s.ConnLimits{
		Limits:                  wire.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes, MaxDepth: cfg.Limits.MaxDepth, MaxAttrs: cfg.Limits.MaxAttributes},
		SendQueueBytes:          cfg.Limits.SendQueueBytes,
		StanzasPerSecond:        cfg.Limits.StanzasPerSecond,
		WriteTimeout:            cfg.Limits.WriteTimeout,
		PreAuthBytesPerSecond:   cfg.Limits.PreAuthBytesPerSecond,
		PreAuthStanzasPerSecond: cfg.Limits.PreAuthStanzasPerSecond,
	})
	for _, m := range s.modules {
		switch m := m.(type) {
		case *register.Module:
			m.SetPolicy(cfg.Registration.Open, cfg.Registration.PerAddressPerHour)
		case *basic.Module:
			m.SetContact(cfg.Contact.Fields())
		case *im.Module:
			m.SetLimits(cfg.Limits.Limits)
		}
	}
}
