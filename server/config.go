package server

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/abuse"
	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/basic"
	"github.com/parley-xmpp/parley/c2s"
	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/component"
	"github.com/parley-xmpp/parley/extdisco"
	"github.com/parley-xmpp/parley/im"
	"github.com/parley-xmpp/parley/mam"
	"github.com/parley-xmpp/parley/muc"
	"github.com/parley-xmpp/parley/omemo"
	"github.com/parley-xmpp/parley/proxy65"
	"github.com/parley-xmpp/parley/push"
	"github.com/parley-xmpp/parley/register"
	"github.com/parley-xmpp/parley/s2s"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/upload"
	"github.com/parley-xmpp/parley/webclient"
)

// Config is the whole server configuration. cmd/parley fills it from YAML
// and environment variables (viper); tests build it directly. The
// mapstructure tags are the YAML key names documented in
// configs/parley.example.yaml. It only composes the sections: a section
// that a package uses is defined there with its defaults and checks
// (mam.Settings, c2s.Settings, storage.Config, …); the server's own are
// tls (tls.go), http and bans (hostmeta.go), listen, limits, log and debug.
type Config struct {
	Hosts        []string              `mapstructure:"hosts"`
	DataDir      string                `mapstructure:"data_dir"`
	TLS          TLSConfig             `mapstructure:"tls"`
	Listen       ListenConfig          `mapstructure:"listen"`
	Storage      storage.Config        `mapstructure:"storage"`
	Registration register.Settings     `mapstructure:"registration"`
	Limits       LimitsConfig          `mapstructure:"limits"`
	Auth         auth.Settings         `mapstructure:"auth"`
	C2S          c2s.Settings          `mapstructure:"c2s"`
	WebSocket    c2s.WebSocketSettings `mapstructure:"websocket"`
	HTTP         HTTPConfig            `mapstructure:"http"`
	Bans         BansConfig            `mapstructure:"bans"`
	Contact      basic.ContactSettings `mapstructure:"contact"`
	Log          LogConfig             `mapstructure:"log"`
	Debug        DebugConfig           `mapstructure:"debug"`
	MAM          mam.Settings          `mapstructure:"mam"`
	Push         push.Settings         `mapstructure:"push"`
	OMEMO        omemo.Settings        `mapstructure:"omemo"`
	Upload       upload.Settings       `mapstructure:"upload"`
	S2S          s2s.Settings          `mapstructure:"s2s"`
	Abuse        abuse.Settings        `mapstructure:"abuse"`
	// Components are the XEP-0114 external components accepted on
	// listen.component.
	Components []component.Component `mapstructure:"components"`
	// Proxy65 is the XEP-0065 SOCKS5 bytestreams proxy.
	Proxy65 proxy65.Settings `mapstructure:"proxy65"`
	// ExternalServices are the STUN/TURN servers announced with XEP-0215.
	ExternalServices extdisco.Settings `mapstructure:"external_services"`
	// Admins are the bare JIDs that may run the XEP-0133 administration
	// commands and create account invitations; they are also service
	// admins of multi-user chat (owners of every room).
	Admins    []string             `mapstructure:"admins"`
	Invites   admin.InviteSettings `mapstructure:"invites"`
	Cluster   cluster.Settings     `mapstructure:"cluster"`
	WebClient webclient.Settings   `mapstructure:"web_client"`
	MUC       muc.Settings         `mapstructure:"muc"`
}

// ListenConfig holds listener addresses; "" disables a listener.
type ListenConfig struct {
	C2S    string `mapstructure:"c2s"`
	C2STLS string `mapstructure:"c2s_tls"`
	HTTP   string `mapstructure:"http"`
	HTTPS  string `mapstructure:"https"`
	Admin  string `mapstructure:"admin"`
	// S2S and S2STLS accept other servers (STARTTLS on 5269, direct TLS
	// per XEP-0368 on 5270).
	S2S    string `mapstructure:"s2s"`
	S2STLS string `mapstructure:"s2s_tls"`
	// Component accepts XEP-0114 external components (keep it private:
	// components authenticate with a shared secret only).
	Component string `mapstructure:"component"`
}

// LimitsConfig bounds what one client can make the server hold or do.
type LimitsConfig struct {
	MaxStanzaBytes int `mapstructure:"max_stanza_bytes"`
	MaxDepth       int `mapstructure:"max_depth"`
	MaxAttributes  int `mapstructure:"max_attributes"`
	// The per-user limits of the im module (roster, offline, block list).
	im.Limits `mapstructure:",squash"`
	// SendQueueBytes bounds what is queued for one client that does not
	// read fast enough; beyond it the client is disconnected.
	SendQueueBytes int `mapstructure:"send_queue_bytes"`
	// StanzasPerSecond is the sustained rate a client may send (burst of
	// twice that); excess stanzas are read more slowly, not dropped.
	StanzasPerSecond int `mapstructure:"stanzas_per_second"`
	// Per-account byte quotas (the offline one is im's max_offline_bytes).
	MaxPrivateBytes      int64 `mapstructure:"max_private_bytes"`
	MaxPrivateNamespaces int   `mapstructure:"max_private_namespaces"`
	MaxPEPBytes          int64 `mapstructure:"max_pep_bytes"`
	// MaxArchiveBytes: 0 keeps archives unlimited; otherwise the oldest
	// messages go once an archive grows beyond it.
	MaxArchiveBytes int64 `mapstructure:"max_archive_bytes"`
	// WriteTimeout: a write to a client or server connection that makes no
	// progress for this long fails and ends the connection.
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// PreAuthBytesPerSecond and PreAuthStanzasPerSecond bound what a
	// connection sends before it authenticates (bursts of four seconds'
	// worth); beyond, it is disconnected with policy-violation.
	PreAuthBytesPerSecond   int `mapstructure:"preauth_bytes_per_second"`
	PreAuthStanzasPerSecond int `mapstructure:"preauth_stanzas_per_second"`
	// ConnectionsPerAddress bounds client connections (TCP, TLS and
	// WebSocket) from one address (IPv6: one /64); 0 = no limit.
	ConnectionsPerAddress int `mapstructure:"connections_per_address"`
	// UnauthenticatedConnections bounds client connections that have not
	// authenticated yet, in total; 0 = no limit.
	UnauthenticatedConnections int `mapstructure:"unauthenticated_connections"`
}

// LogConfig controls structured logging.
type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug, info, warn, error
	Format string `mapstructure:"format"` // text or json
}

// DebugConfig holds diagnostics that are off in production.
type DebugConfig struct {
	// PProf serves Go's profiler (net/http/pprof) at /debug/pprof on the
	// admin listener. Profiles show stanza contents in memory; keep the
	// admin listener private.
	PProf bool `mapstructure:"pprof"`
}

// DefaultConfig is what `parley serve` runs with no config file.
func DefaultConfig() Config {
	return Config{
		Hosts:   []string{"localhost"},
		DataDir: "./data",
		Listen: ListenConfig{
			C2S:    ":5222",
			C2STLS: ":5223",
			HTTP:   ":5280",
			HTTPS:  ":5281",
			Admin:  "127.0.0.1:5290",
			S2S:    ":5269",
			S2STLS: ":5270",
		},
		Storage:      storage.DefaultConfig(),
		Registration: register.DefaultSettings(),
		Limits: LimitsConfig{
			MaxStanzaBytes:   262144,
			MaxDepth:         32,
			MaxAttributes:    64,
			Limits:           im.DefaultLimits(),
			SendQueueBytes:   8 << 20,
			StanzasPerSecond: 100,
			// A bookmarks list and client settings need a few kB; 100 kB
			// avatars and OMEMO bundles fit many times in the PEP quota.
			MaxPrivateBytes:      1 << 20,
			MaxPrivateNamespaces: 100,
			MaxPEPBytes:          10 << 20,
			WriteTimeout:         30 * time.Second,
			// A client sends a few hundred bytes and about ten elements
			// before it is logged in (TLS handshake, SASL, maybe XEP-0077).
			PreAuthBytesPerSecond:      8192,
			PreAuthStanzasPerSecond:    5,
			ConnectionsPerAddress:      100,
			UnauthenticatedConnections: 4096,
		},
		Auth:             auth.DefaultSettings(),
		C2S:              c2s.DefaultSettings(),
		Log:              LogConfig{Level: "info", Format: "text"},
		MAM:              mam.DefaultSettings(),
		Push:             push.DefaultSettings(),
		Upload:           upload.DefaultSettings(),
		S2S:              s2s.DefaultSettings(),
		Abuse:            abuse.DefaultSettings(),
		ExternalServices: extdisco.DefaultSettings(),
		Proxy65:          proxy65.DefaultSettings(),
		Components:       []component.Component{},
		HTTP:             defaultHTTPConfig(),
		Bans:             defaultBansConfig(),
		Invites:          admin.DefaultInviteSettings(),
		Cluster:          cluster.DefaultSettings(),
		WebClient:        webclient.DefaultSettings(),
		MUC:              muc.DefaultSettings(),
	}
}

// Validate checks values and returns an error naming the key path and what
// was expected. Each section that a package owns checks itself (its
// Problems); what is checked here is the server's own sections and what
// crosses sections.
func (c *Config) Validate() error {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, args...))
	}
	if len(c.Hosts) == 0 {
		bad("hosts", "expected at least one domain name")
	}
	seen := map[string]bool{}
	for i, h := range c.Hosts {
		j, err := jid.Parse(h)
		if err != nil || j.Localpart() != "" || j.Resourcepart() != "" || strings.ContainsAny(h, "@/ ") {
			bad(fmt.Sprintf("hosts[%d]", i), "%q is not a valid domain name", h)
			continue
		}
		if seen[j.Domainpart()] {
			bad(fmt.Sprintf("hosts[%d]", i), "%q is listed twice", h)
		}
		seen[j.Domainpart()] = true
	}
	if c.DataDir == "" {
		bad("data_dir", "expected a directory path")
	}
	if c.TLS.ACME.Agree && c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
		bad("tls.acme", "ACME needs listen.http (HTTP-01, port 80) or listen.https (TLS-ALPN-01, port 443)")
	}
	for key, addr := range map[string]string{
		"listen.c2s": c.Listen.C2S, "listen.c2s_tls": c.Listen.C2STLS,
		"listen.http": c.Listen.HTTP, "listen.https": c.Listen.HTTPS, "listen.admin": c.Listen.Admin,
		"listen.s2s": c.Listen.S2S, "listen.s2s_tls": c.Listen.S2STLS, "listen.component": c.Listen.Component,
	} {
		if addr == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			bad(key, "%q is not a host:port address (\"\" disables the listener)", addr)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not a level (expected debug, info, warn or error)", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not a format (expected text or json)", c.Log.Format)
	}
	for i, a := range c.Admins {
		j, err := jid.Parse(a)
		if err != nil || j.Localpart() == "" || j.Resourcepart() != "" || !seen[j.Domainpart()] {
			bad(fmt.Sprintf("admins[%d]", i), "%q is not the bare JID of an account on one of hosts (e.g. admin@%s)", a, c.firstHost())
		}
	}
	if c.Cluster.Enabled && c.Storage.Backend != "postgres" {
		bad("storage.backend", "%q cannot be shared by the nodes of a cluster: cluster.enabled needs storage.backend: postgres", c.Storage.Backend)
	}
	// The server's own sections check themselves with whole key paths
	// (some problems are of a section as a whole, such as "tls: …").
	errs = append(errs, c.TLS.problems()...)
	errs = append(errs, c.HTTP.problems()...)
	errs = append(errs, c.Bans.problems()...)
	// The sections that packages own check themselves with keys relative
	// to the section.
	for _, sec := range []struct {
		key      string
		problems []string
	}{
		{"storage", c.Storage.Problems()},
		{"limits", c.Limits.problems()},
		{"auth", c.Auth.Problems()},
		{"c2s", c.C2S.Problems()},
		{"s2s", c.S2S.Problems()},
		{"invites", c.Invites.Problems()},
		{"cluster", c.Cluster.Problems()},
		{"muc", c.MUC.Problems(c.Hosts)},
		{"mam", c.MAM.Problems()},
		{"push", c.Push.Problems()},
		{"omemo", c.OMEMO.Problems(c.Hosts)},
		{"registration", c.Registration.Problems()},
		{"contact", c.Contact.Problems()},
		{"abuse", c.Abuse.Problems()},
		{"external_services", c.ExternalServices.Problems()},
		{"proxy65", c.Proxy65.Problems()},
		{"upload", c.Upload.Problems()},
	} {
		for _, p := range sec.problems {
			errs = append(errs, sec.key+"."+p)
		}
	}
	errs = append(errs, c.componentProblems(seen)...)
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// problems checks the limits section: the server's own limits, and im's
// (roster, offline, block list) that it embeds.
func (l LimitsConfig) problems() []string {
	var p []string
	for _, v := range []struct {
		key      string
		got, min int
	}{
		{"max_stanza_bytes", l.MaxStanzaBytes, 10000}, {"max_depth", l.MaxDepth, 4}, {"max_attributes", l.MaxAttributes, 8},
		{"send_queue_bytes", l.SendQueueBytes, 1 << 20}, {"stanzas_per_second", l.StanzasPerSecond, 1},
		{"max_private_namespaces", l.MaxPrivateNamespaces, 1}, {"preauth_bytes_per_second", l.PreAuthBytesPerSecond, 0},
		{"preauth_stanzas_per_second", l.PreAuthStanzasPerSecond, 0}, {"connections_per_address", l.ConnectionsPerAddress, 0},
		{"unauthenticated_connections", l.UnauthenticatedConnections, 0},
	} {
		if v.got < v.min {
			p = append(p, fmt.Sprintf("%s: expected a number >= %d, got %d", v.key, v.min, v.got))
		}
	}
	for key, v := range map[string]int64{"max_private_bytes": l.MaxPrivateBytes, "max_pep_bytes": l.MaxPEPBytes} {
		if v < 1024 {
			p = append(p, fmt.Sprintf("%s: expected a number of bytes >= 1024, got %d", key, v))
		}
	}
	if l.MaxArchiveBytes < 0 {
		p = append(p, fmt.Sprintf("max_archive_bytes: expected a number of bytes (0: no limit), got %d", l.MaxArchiveBytes))
	}
	if l.WriteTimeout < time.Second {
		p = append(p, "write_timeout: expected a duration of at least 1s such as 30s")
	}
	if v := l.PreAuthBytesPerSecond; v > 0 && v < 1024 {
		p = append(p, fmt.Sprintf("preauth_bytes_per_second: expected 0 (no limit) or at least 1024, got %d", v))
	}
	return append(p, l.Limits.Problems()...)
}

func (c *Config) firstHost() string {
	if len(c.Hosts) > 0 {
		return c.Hosts[0]
	}
	return "example.org"
}

// componentProblems checks the XEP-0114 components: valid, distinct
// domains that are no host, secrets of some length, and a listener.
func (c *Config) componentProblems(hosts map[string]bool) []string {
	var p []string
	domains := map[string]bool{}
	for i, comp := range c.Components {
		key := fmt.Sprintf("components[%d]", i)
		d := strings.ToLower(comp.Domain)
		j, err := jid.Parse(d)
		switch {
		case err != nil || j.Localpart() != "" || j.Resourcepart() != "" || d == "" || strings.ContainsAny(d, "@/ "):
			p = append(p, fmt.Sprintf("%s.domain: %q is not a domain name", key, comp.Domain))
		case hosts[d]:
			p = append(p, fmt.Sprintf("%s.domain: %q is one of hosts; a component needs a domain of its own", key, comp.Domain))
		case domains[d]:
			p = append(p, fmt.Sprintf("%s.domain: %q is listed twice", key, comp.Domain))
		}
		domains[d] = true
		if len(comp.Secret) < 16 {
			p = append(p, key+".secret: expected a secret of at least 16 characters shared with the component")
		}
	}
	if len(c.Components) > 0 && c.Listen.Component == "" {
		p = append(p, "listen.component: expected an address such as 127.0.0.1:5347 for the components to connect to")
	}
	return p
}
