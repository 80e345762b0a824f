// Package basic answers the small server queries every XMPP server is
// expected to handle: service discovery (XEP-0030) with contact addresses
// (XEP-0157) and entity capabilities (XEP-0115), ping (XEP-0199), software
// version (XEP-0092), entity time (XEP-0202) and vcard-temp (XEP-0054).
package basic

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// CapsNode is the XEP-0115 'node' of Parley's capabilities.
const CapsNode = "https://parley.im"

// DefaultMaxVCardBytes bounds a stored vCard (serialized).
const DefaultMaxVCardBytes = 64 << 10

// ContactSettings is the contact section of the configuration file:
// XEP-0157 addresses (URIs such as xmpp:admin@example.org or
// mailto:abuse@example.org) by purpose. server.Config composes it.
type ContactSettings struct {
	Abuse    []string `mapstructure:"abuse"`
	Admin    []string `mapstructure:"admin"`
	Feedback []string `mapstructure:"feedback"`
	Sales    []string `mapstructure:"sales"`
	Security []string `mapstructure:"security"`
	Support  []string `mapstructure:"support"`
}

// fields pairs each XEP-0157 field with its key in the section.
func (c ContactSettings) fields() []struct {
	key, field string
	uris       []string
} {
	return []struct {
		key, field string
		uris       []string
	}{
		{"abuse", "abuse-addresses", c.Abuse}, {"admin", "admin-addresses", c.Admin},
		{"feedback", "feedback-addresses", c.Feedback}, {"sales", "sales-addresses", c.Sales},
		{"security", "security-addresses", c.Security}, {"support", "support-addresses", c.Support},
	}
}

// Fields returns the addresses keyed by XEP-0157 field name, for
// Config.Contact.
func (c ContactSettings) Fields() map[string][]string {
	m := map[string][]string{}
	for _, f := range c.fields() {
		m[f.field] = f.uris
	}
	return m
}

// Problems returns what is wrong with c, each as "key: problem" with the
// key relative to the contact section.
func (c ContactSettings) Problems() []string {
	var p []string
	for _, f := range c.fields() {
		for i, u := range f.uris {
			if !strings.Contains(u, ":") {
				p = append(p, fmt.Sprintf("%s[%d]: %q is not a URI (expected e.g. xmpp:admin@example.org or mailto:abuse@example.org)", f.key, i, u))
			}
		}
	}
	return p
}

// Config configures the module.
type Config struct {
	// ServerName is the disco identity name and the XEP-0092 name
	// ("Parley" when empty).
	ServerName string
	// Version is the XEP-0092 version ("unknown" when empty).
	Version string
	// OS is reported in XEP-0092 replies only when set: the operating
	// system is not revealed by default (XEP-0092 §5, privacy).
	OS string
	// Contact maps XEP-0157 field names (abuse-addresses, admin-addresses,
	// feedback-addresses, sales-addresses, security-addresses,
	// status-addresses, support-addresses) to URIs (mailto:, xmpp:,
	// https:). Empty: no contact form in disco#info.
	Contact map[string][]string
	// MaxVCardBytes bounds a vCard set by a user (DefaultMaxVCardBytes
	// when <= 0).
	MaxVCardBytes int
	// OnVCardSet, when set, is called after a user's client stored a
	// vCard, with the vCard as stored (e.g. for the avatar module's
	// XEP-0398 conversion of the PHOTO to PEP). Errors are the callee's to
	// log.
	OnVCardSet func(ctx context.Context, owner string, vcard []byte)
	Logger     *slog.Logger
}
