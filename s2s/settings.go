package s2s

import (
	"fmt"
	"net"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// Settings is the s2s section of the configuration file (the YAML keys are
// the mapstructure tags); server.Config composes it, so its defaults and
// checks are these and nowhere else. The server copies it into Config,
// with the limits that server connections share with client ones.
type Settings struct {
	// RequireValidCerts refuses peers whose certificate is not valid for
	// their domain instead of falling back to dialback (XEP-0220).
	RequireValidCerts bool `mapstructure:"require_valid_certs"`
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `mapstructure:"ca_file"`
	// Routes sends a remote domain to fixed addresses instead of DNS, for
	// private federation: entries "domain=host:port" (STARTTLS) or
	// "domain=tls://host:port" (direct TLS); repeat a domain for several
	// addresses, tried in order.
	Routes []string `mapstructure:"routes"`
	// IdleTimeout closes server connections unused for this long.
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	// Bidi offers and requests bidirectional streams (XEP-0288): one
	// connection per domain pair carries stanzas both ways.
	Bidi bool `mapstructure:"bidi"`
	// BlockedDomains: remote domains (and their subdomains) this server
	// does not federate with.
	BlockedDomains []string `mapstructure:"blocked_domains"`
	// AllowedDomains: when not empty, the only remote domains (and their
	// subdomains) this server federates with.
	AllowedDomains []string `mapstructure:"allowed_domains"`
	// MetricsDomains get their own label in the per-domain s2s metrics
	// (domains in Routes always do); every other domain is "other".
	MetricsDomains []string `mapstructure:"metrics_domains"`
	// AuthTimeout: an inbound stream on which no domain authenticated
	// within this time of its start is closed, whatever it sends.
	AuthTimeout time.Duration `mapstructure:"auth_timeout"`
	// MaxInbound bounds inbound server streams in total and
	// ConnectionsPerAddress those from one address; 0 = no limit.
	MaxInbound            int `mapstructure:"max_inbound"`
	ConnectionsPerAddress int `mapstructure:"connections_per_address"`
	// MaxDialbacks bounds the dialback verifications run at once for
	// peers (each opens a connection to a domain the peer names).
	MaxDialbacks int `mapstructure:"max_dialbacks"`
	// QueueStanzas and QueueBytes bound what is queued for one remote
	// domain, and what one server stream reads ahead of its archive
	// commits (Config.QueueStanzas).
	QueueStanzas int `mapstructure:"queue_stanzas"`
	QueueBytes   int `mapstructure:"queue_bytes"`
}

// DefaultSettings are the defaults of the s2s section.
func DefaultSettings() Settings {
	return Settings{IdleTimeout: 10 * time.Minute, Bidi: true, AuthTimeout: time.Minute, MaxInbound: 1000,
		ConnectionsPerAddress: 100, MaxDialbacks: 32, QueueStanzas: DefaultQueueStanzas, QueueBytes: DefaultQueueBytes}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the s2s section.
func (s Settings) Problems() []string {
	var p []string
	if s.IdleTimeout <= 0 {
		p = append(p, "idle_timeout: expected a positive duration such as 10m")
	}
	if s.AuthTimeout < time.Second {
		p = append(p, "auth_timeout: expected a duration of at least 1s such as 60s")
	}
	for _, v := range []struct {
		key      string
		got, min int
	}{{"max_inbound", s.MaxInbound, 0}, {"connections_per_address", s.ConnectionsPerAddress, 0},
		{"max_dialbacks", s.MaxDialbacks, 1}, {"queue_stanzas", s.QueueStanzas, 100}, {"queue_bytes", s.QueueBytes, 1 << 20}} {
		if v.got < v.min {
			p = append(p, fmt.Sprintf("%s: expected a number >= %d, got %d", v.key, v.min, v.got))
		}
	}
	for i, r := range s.Routes {
		d, a, ok := strings.Cut(r, "=")
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(a, "tls://")); !ok || d == "" || err != nil {
			p = append(p, fmt.Sprintf("routes[%d]: %q is not domain=host:port (or domain=tls://host:port)", i, r))
		}
	}
	for key, list := range map[string][]string{"blocked_domains": s.BlockedDomains, "allowed_domains": s.AllowedDomains,
		"metrics_domains": s.MetricsDomains} {
		for i, d := range list {
			if j, err := jid.Parse(d); err != nil || j.Localpart() != "" || j.Resourcepart() != "" || strings.ContainsAny(d, "@/ ") {
				p = append(p, fmt.Sprintf("%s[%d]: %q is not a domain name", key, i, d))
			}
		}
	}
	return p
}

// RouteMap returns Routes as domain → addresses.
func (s Settings) RouteMap() map[string][]string {
	m := map[string][]string{}
	for _, r := range s.Routes {
		if d, a, ok := strings.Cut(r, "="); ok {
			m[strings.ToLower(d)] = append(m[strings.ToLower(d)], a)
		}
	}
	return m
}
