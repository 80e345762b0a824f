package server

import (
	"log/slog"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/basic"
	"github.com/parley-xmpp/parley/c2s"
	"github.com/parley-xmpp/parley/carbons"
	"github.com/parley-xmpp/parley/im"
	"github.com/parley-xmpp/parley/mam"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/push"
	"github.com/parley-xmpp/parley/register"
	"github.com/parley-xmpp/parley/storage"
)

// buildModules is the one ordered list of modules. Hook order follows this
// list (CoreDNS plugin.cfg style): blocking and presence (im) first, so a
// blocked stanza never reaches the archive or carbons.
func buildModules(cfg Config, store storage.Store, log *slog.Logger) []module.Module {
	contact := map[string][]string{
		"abuse-addresses":    cfg.Contact.Abuse,
		"admin-addresses":    cfg.Contact.Admin,
		"feedback-addresses": cfg.Contact.Feedback,
		"sales-addresses":    cfg.Contact.Sales,
		"security-addresses": cfg.Contact.Security,
		"support-addresses":  cfg.Contact.Support,
	}
	return []module.Module{
		// push only queues work in its hooks; before im so that its
		// Undeliverable hook sees what im then stores offline.
		push.New(push.Config{IncludeBody: cfg.Push.IncludeBody, Coalesce: cfg.Push.Coalesce, Logger: log}, store),
		im.New(im.Config{
			MaxRosterItems:     cfg.Limits.MaxRosterItems,
			MaxOfflineMessages: cfg.Limits.MaxOfflineMessages,
			MaxBlockItems:      cfg.Limits.MaxBlockItems,
			Logger:             log,
		}, store, store, store),
		// mam before carbons: copies carry the stanza-id the archive adds.
		mam.New(mam.Config{
			Retention:     cfg.MAM.Retention,
			DedupWindow:   cfg.MAM.DedupWindow,
			DefaultPolicy: cfg.MAM.DefaultPolicy,
			MaxPageSize:   cfg.MAM.MaxPageSize,
			Logger:        log,
		}, store, store, store),
		carbons.New(carbons.Config{Logger: log}),
		basic.New(basic.Config{ServerName: "Parley", Version: Version, Contact: contact, Logger: log}, store),
		register.New(register.Config{
			Open:              cfg.Registration.Open,
			PerAddressPerHour: cfg.Registration.PerAddressPerHour,
			Derive: func(password string) ([]storage.SCRAMCredential, error) {
				return auth.DeriveCredentials(password, cfg.Auth.Iterations)
			},
			Domains: cfg.Hosts,
			Logger:  log,
		}, store),
	}
}

// registrationOf finds the XEP-0077 module for pre-authentication requests.
func registrationOf(mods []module.Module) c2s.Registration {
	for _, m := range mods {
		if r, ok := m.(*register.Module); ok {
			return r
		}
	}
	return nil
}
