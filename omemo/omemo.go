// Package omemo supports OMEMO end-to-end encryption (XEP-0384) on the
// server side: PEP node defaults for device lists and bundles, and an
// optional per-domain policy that refuses unencrypted one-to-one chat
// messages. Encrypted messages need nothing else: routing, archiving,
// carbons and offline storage forward them byte for byte.
package omemo

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// PEP nodes of both OMEMO versions.
const (
	NodeLegacyDevices       = xep.NSOMEMOLegacyDevices
	NodeLegacyBundlesPrefix = xep.NSOMEMOLegacyBundlesPrefix
	NodeDevices             = xep.NSOMEMO2Devices
	NodeBundles             = xep.NSOMEMO2Bundles
)

// bundleItems is max_items for OMEMO 2 bundles (one item per device).
const bundleItems = "max"

// NodeDefaults returns PEP node configuration defaults for OMEMO nodes
// (nil for other nodes), for pep.Config.NodeDefaults. Device lists and
// bundles must be readable by anyone who wants to start an encrypted
// session, including non-contacts (XEP-0384 §5.3.1, §5.3.2), and must
// survive restarts.
func NodeDefaults(node string) map[string]string {
	switch {
	case node == NodeLegacyDevices, node == NodeDevices:
		return map[string]string{
			"pubsub#access_model":  "open",
			"pubsub#persist_items": "true",
			"pubsub#max_items":     "1",
		}
	case node == NodeBundles:
		return map[string]string{
			"pubsub#access_model":  "open",
			"pubsub#persist_items": "true",
			"pubsub#max_items":     bundleItems,
		}
	case strings.HasPrefix(node, NodeLegacyBundlesPrefix) && len(node) > len(NodeLegacyBundlesPrefix):
		return map[string]string{
			"pubsub#access_model":  "open",
			"pubsub#persist_items": "true",
			"pubsub#max_items":     "1",
		}
	}
	return nil
}

// Settings is the omemo section of the configuration file (the YAML keys
// are the mapstructure tags); server.Config composes it.
type Settings struct {
	// RequireE2E lists the local domains whose users may send one-to-one
	// chat messages with a body only when they are OMEMO-encrypted.
	RequireE2E []string `mapstructure:"require_e2e"`
}

// Problems returns what is wrong with s for a server serving hosts, each
// as "key: problem" with the key relative to the omemo section.
func (s Settings) Problems(hosts []string) []string {
	var p []string
	for i, d := range s.RequireE2E {
		if !slices.ContainsFunc(hosts, func(h string) bool { return strings.EqualFold(h, d) }) {
			p = append(p, fmt.Sprintf("require_e2e[%d]: %q is not one of hosts", i, d))
		}
	}
	return p
}

// Config configures the module: the file's settings and what the
// server wires in.
type Config struct {
	Settings
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	cfg     Config
	require map[string]bool
	sender  module.Sender
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Module{cfg: cfg, require: map[string]bool{}}
	for _, d := range cfg.RequireE2E {
		m.require[strings.ToLower(d)] = true
	}
	return m
}

// Name implements module.Module.
func (m *Module) Name() string { return "omemo" }

// Register implements module.Module.
func (m *Module) Register(r *module.Registry) error {
	m.sender = r.Sender()
	if len(m.require) > 0 {
		r.Outbound(m.outbound)
	}
	return nil
}

const nsMUCUser = xep.NSMUCUser

// PolicyText is the error text sent back for refused messages.
const PolicyText = "this server requires end-to-end encryption (OMEMO) for one-to-one chat messages; " +
	"the message was not sent: enable OMEMO for this chat and send it again"

// outbound refuses unencrypted one-to-one messages with a body from users
// of domains that require end-to-end encryption.
func (m *Module) outbound(ctx context.Context, ev *module.Event) module.Verdict {
	st := ev.Stanza
	if st.Name != "message" || !m.require[ev.From.Domainpart()] {
		return module.Continue
	}
	if st.Type != "" && st.Type != "chat" && st.Type != "normal" {
		return module.Continue // groupchat, headline, error
	}
	if !xep.HasBody(st) || xep.IsEncrypted(st) || ev.To.Localpart() == "" ||
		st.Child(nsMUCUser, "x") != nil || ev.To.Bare().Equal(ev.From.Bare()) {
		return module.Continue
	}
	if reply := wire.ErrorReply(st, wire.ErrPolicyViolation, PolicyText); reply != nil {
		m.sender.Route(ctx, reply)
	}
	return module.Handled
}
