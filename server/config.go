package server

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/abuse"
	"github.com/parley-xmpp/parley/basic"
	"github.com/parley-xmpp/parley/component"
	"github.com/parley-xmpp/parley/extdisco"
	"github.com/parley-xmpp/parley/im"
	"github.com/parley-xmpp/parley/mam"
	"github.com/parley-xmpp/parley/muc"
	"github.com/parley-xmpp/parley/omemo"
	"github.com/parley-xmpp/parley/proxy65"
	"github.com/parley-xmpp/parley/push"
	"github.com/parley-xmpp/parley/register"
	"github.com/parley-xmpp/parley/upload"
)

// Config is the whole server configuration. cmd/parley fills it from YAML
// and environment variables (viper); tests build it directly. The
// mapstructure tags are the YAML key names documented in
// configs/parley.example.yaml.
type Config struct {
	Hosts        []string              `mapstructure:"hosts"`
	DataDir      string                `mapstructure:"data_dir"`
	TLS          TLSConfig             `mapstructure:"tls"`
	Listen       ListenConfig          `mapstructure:"listen"`
	Storage      StorageConfig         `mapstructure:"storage"`
	Registration register.Settings     `mapstructure:"registration"`
	Limits       LimitsConfig          `mapstructure:"limits"`
	Auth         AuthConfig            `mapstructure:"auth"`
	C2S          C2SConfig             `mapstructure:"c2s"`
	WebSocket    WebSocketConfig       `mapstructure:"websocket"`
	HTTP         HTTPConfig            `mapstructure:"http"`
	Bans         BansConfig            `mapstructure:"bans"`
	Contact      basic.ContactSettings `mapstructure:"contact"`
	Log          LogConfig             `mapstructure:"log"`
	Debug        DebugConfig           `mapstructure:"debug"`
	MAM          mam.Settings          `mapstructure:"mam"`
	Push         push.Settings         `mapstructure:"push"`
	OMEMO        omemo.Settings        `mapstructure:"omemo"`
	Upload       upload.Settings       `mapstructure:"upload"`
	S2S          S2SConfig             `mapstructure:"s2s"`
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
	Admins    []string        `mapstructure:"admins"`
	Invites   InvitesConfig   `mapstructure:"invites"`
	Cluster   ClusterConfig   `mapstructure:"cluster"`
	WebClient WebClientConfig `mapstructure:"web_client"`
	MUC       muc.Settings    `mapstructure:"muc"`
}

// WebClientConfig controls the embedded web client (Converse.js).
type WebClientConfig struct {
	// Enabled serves it at /chat/ (and redirects / there) on the http and
	// https listeners.
	Enabled bool `mapstructure:"enabled"`
}

// InvitesConfig controls invitations (XEP-0401/0445/0379).
type InvitesConfig struct {
	// UsersCanInvite lets every user create contact invitations that
	// also create an account; otherwise only admins invite.
	UsersCanInvite bool `mapstructure:"users_can_invite"`
	// TTL is how long an invitation is valid unless its creator says.
	TTL time.Duration `mapstructure:"ttl"`
	// BaseURL is the public URL of the invitation landing pages (served
	// at /invite/ on the http and https listeners), e.g.
	// https://example.org/invite behind a reverse proxy. Empty:
	// https://<domain>:<https port>/invite.
	BaseURL string `mapstructure:"base_url"`
}

// ClusterConfig runs several Parley nodes as one service: sessions are
// known cluster-wide through NATS JetStream KV and stanzas travel between
// nodes over NATS; PostgreSQL is the shared durable store.
type ClusterConfig struct {
	// Enabled turns clustering on (requires storage.backend: postgres).
	Enabled bool `mapstructure:"enabled"`
	// Node is this node's unique, stable name (letters, digits, '-', '_').
	Node string            `mapstructure:"node"`
	NATS ClusterNATSConfig `mapstructure:"nats"`
	// Heartbeat is how often the node tells the others it is alive.
	Heartbeat time.Duration `mapstructure:"heartbeat"`
	// DeadAfter: a node silent this long is dead; the survivors remove its
	// sessions and announce them unavailable.
	DeadAfter time.Duration `mapstructure:"dead_after"`
	// Advertise is the host:port at which clients reach this node
	// directly; a draining node sends clients that cannot resume there
	// (<see-other-host/>). Empty: not advertised.
	Advertise string `mapstructure:"advertise"`
	// Drain is how long a stopping node (SIGTERM, parley cluster drain)
	// waits for its clients to resume on other nodes before it closes
	// what is left; 0 stops at once.
	Drain time.Duration `mapstructure:"drain"`
}

// ClusterNATSConfig says how to reach NATS.
type ClusterNATSConfig struct {
	// URLs of the NATS servers (one cluster); credentials may be given in
	// the URL (nats://user:password@host:4222).
	URLs []string `mapstructure:"urls"`
	// Prefix of the subjects and JetStream buckets this cluster uses, so
	// that several Parley clusters can share one NATS.
	Prefix string `mapstructure:"prefix"`
	// Replicas of the session bucket (3 on a three-server NATS cluster).
	Replicas int `mapstructure:"replicas"`
	// CredsFile is a NATS credentials file (JWT and NKey), if NATS wants one.
	CredsFile string `mapstructure:"creds_file"`
	// CAFile is a PEM bundle to verify NATS servers' TLS certificates.
	CAFile string `mapstructure:"ca_file"`
}

// S2SConfig controls federation with other XMPP servers.
type S2SConfig struct {
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
	// QueueBytes bounds what is queued for one remote domain.
	QueueBytes int `mapstructure:"queue_bytes"`
}

// TLSConfig names the certificate and key. Both empty: a self-signed ECDSA
// certificate is generated once into data_dir and reused.
type TLSConfig struct {
	Cert string `mapstructure:"cert"`
	Key  string `mapstructure:"key"`
	// ACME obtains and renews certificates automatically (Let's Encrypt
	// or another RFC 8555 CA); cert/key (or the self-signed certificate)
	// are served until a name has its certificate.
	ACME ACMEConfig `mapstructure:"acme"`
}

// ACMEConfig turns on ACME when agree is true.
type ACMEConfig struct {
	// Email is the account contact the CA writes to about expiry.
	Email string `mapstructure:"email"`
	// Directory is the CA's ACME directory URL (empty: Let's Encrypt).
	Directory string `mapstructure:"directory"`
	// Agree accepts the CA's terms of service; ACME is on when true.
	Agree bool `mapstructure:"agree"`
	// CAFile is a PEM bundle to trust for the directory's HTTPS (a
	// private CA); empty: the system roots.
	CAFile string `mapstructure:"ca_file"`
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

// StorageConfig selects the store backend.
type StorageConfig struct {
	Backend  string         `mapstructure:"backend"`
	Postgres PostgresConfig `mapstructure:"postgres"`
	// GroupCommit batches concurrent archive writes into shared
	// transactions (one commit for many messages); each message is still
	// acknowledged only once its batch has committed.
	GroupCommit bool `mapstructure:"group_commit"`
	// GroupCommitMaxBatch bounds the messages of one batch.
	GroupCommitMaxBatch int `mapstructure:"group_commit_max_batch"`
	// GroupCommitMaxWait is how long a batch waits for more messages
	// after its first.
	GroupCommitMaxWait time.Duration `mapstructure:"group_commit_max_wait"`
}

// PostgresConfig configures the PostgreSQL backend.
type PostgresConfig struct {
	DSN      string `mapstructure:"dsn"`
	MaxConns int    `mapstructure:"max_conns"`
	// Schema to use (created if missing); empty: the DSN's search_path.
	Schema string `mapstructure:"schema"`
	// NoMigrate skips applying migrations at start (run `parley db migrate`
	// instead); the server then refuses a schema that is not up to date.
	NoMigrate bool `mapstructure:"no_migrate"`
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

// AuthConfig controls SASL.
type AuthConfig struct {
	RequireTLS    bool          `mapstructure:"require_tls"`
	AllowPlain    bool          `mapstructure:"allow_plain"`
	Iterations    int           `mapstructure:"iterations"`
	Timeout       time.Duration `mapstructure:"timeout"`
	MaxFailures   int           `mapstructure:"max_failures"`
	FailureWindow time.Duration `mapstructure:"failure_window"`
	// MaxDelay is the longest spacing between verified login attempts on
	// an account over MaxFailures; MaxWait the longest an attempt queues
	// for its turn before it is refused with temporary-auth-failure.
	MaxDelay time.Duration `mapstructure:"max_delay"`
	MaxWait  time.Duration `mapstructure:"max_wait"`
	// FASTTokenLifetime: how long an XEP-0484 token stays valid unused;
	// 0 disables FAST.
	FASTTokenLifetime time.Duration `mapstructure:"fast_token_lifetime"`
}

// C2SConfig controls client sessions.
type C2SConfig struct {
	// PingInterval: the server pings a client silent for this long
	// (XEP-0199) and closes it when the ping is not answered in PingTimeout.
	PingInterval time.Duration `mapstructure:"ping_interval"`
	PingTimeout  time.Duration `mapstructure:"ping_timeout"`
	// ResumeTimeout: how long a stream management session (XEP-0198) stays
	// resumable after its connection drops; 0 disables resumption.
	ResumeTimeout time.Duration `mapstructure:"resume_timeout"`
	// MaxUnacked and MaxUnackedBytes: stanzas kept for a client until it
	// acknowledges them.
	MaxUnacked      int `mapstructure:"max_unacked"`
	MaxUnackedBytes int `mapstructure:"max_unacked_bytes"`
	// CSIHoldBytes bounds what is held back for an inactive client
	// (XEP-0352) before it is sent anyway.
	CSIHoldBytes int `mapstructure:"csi_hold_bytes"`
}

// WebSocketConfig controls the RFC 7395 endpoint.
type WebSocketConfig struct {
	// Origins allowed to open a WebSocket; empty allows any (authentication
	// is SASL, not cookies).
	Origins []string `mapstructure:"origins"`
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
		Storage: StorageConfig{Backend: "sqlite", Postgres: PostgresConfig{MaxConns: 10},
			GroupCommit: true, GroupCommitMaxBatch: 1024, GroupCommitMaxWait: time.Millisecond},
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
		Auth: AuthConfig{
			RequireTLS:    true,
			AllowPlain:    true,
			Iterations:    10000,
			Timeout:       30 * time.Second,
			MaxFailures:   5,
			FailureWindow: 5 * time.Minute,
			MaxDelay:      time.Minute,
			MaxWait:       20 * time.Second,
			// Prosody's default: three weeks.
			FASTTokenLifetime: 21 * 24 * time.Hour,
		},
		C2S: C2SConfig{PingInterval: 5 * time.Minute, PingTimeout: 60 * time.Second,
			ResumeTimeout: 5 * time.Minute, MaxUnacked: 5000, MaxUnackedBytes: 8 << 20, CSIHoldBytes: 512 << 10},
		Log:    LogConfig{Level: "info", Format: "text"},
		MAM:    mam.DefaultSettings(),
		Push:   push.DefaultSettings(),
		Upload: upload.DefaultSettings(),
		S2S: S2SConfig{IdleTimeout: 10 * time.Minute, Bidi: true, AuthTimeout: time.Minute, MaxInbound: 1000,
			ConnectionsPerAddress: 100, MaxDialbacks: 32, QueueBytes: 8 << 20},
		Abuse:            abuse.DefaultSettings(),
		ExternalServices: extdisco.DefaultSettings(),
		Proxy65:          proxy65.DefaultSettings(),
		Components:       []component.Component{},
		HTTP: HTTPConfig{TrustedProxies: []string{"127.0.0.0/8", "::1"}, ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout: time.Minute, BodyTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
			ConnectionsPerAddress: 100},
		Bans:    BansConfig{MaxStrikes: 30, Window: 10 * time.Minute, Duration: 15 * time.Minute, Exempt: []string{"127.0.0.0/8", "::1"}},
		Invites: InvitesConfig{TTL: 7 * 24 * time.Hour},
		Cluster: ClusterConfig{NATS: ClusterNATSConfig{URLs: []string{"nats://127.0.0.1:4222"}, Prefix: "parley", Replicas: 1},
			Heartbeat: time.Second, DeadAfter: 10 * time.Second, Drain: 30 * time.Second},
		WebClient: WebClientConfig{Enabled: true},
		MUC:       muc.DefaultSettings(),
	}
}

// Validate checks values and returns an error naming the key path and what
// was expected.
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
	if a := c.TLS.ACME; a.Email != "" || a.Directory != "" || a.CAFile != "" {
		if !a.Agree {
			bad("tls.acme.agree", "set to true to use ACME (it accepts the CA's terms of service)")
		}
	}
	if c.TLS.ACME.Agree {
		if c.Listen.HTTP == "" && c.Listen.HTTPS == "" {
			bad("tls.acme", "ACME needs listen.http (HTTP-01, port 80) or listen.https (TLS-ALPN-01, port 443)")
		}
		if d := c.TLS.ACME.Directory; d != "" && !strings.HasPrefix(d, "https://") {
			bad("tls.acme.directory", "%q is not an https:// URL", d)
		}
		if e := c.TLS.ACME.Email; e != "" && !strings.Contains(e, "@") {
			bad("tls.acme.email", "%q is not an email address", e)
		}
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		bad("tls", "cert and key must both be set, or both empty for a self-signed certificate")
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
	switch c.Storage.Backend {
	case "sqlite":
	case "postgres":
		if c.Storage.Postgres.DSN == "" {
			bad("storage.postgres.dsn", "expected a PostgreSQL connection string when storage.backend is postgres")
		}
	default:
		bad("storage.backend", "%q is not supported (expected sqlite or postgres)", c.Storage.Backend)
	}
	if c.Storage.Postgres.MaxConns < 0 {
		bad("storage.postgres.max_conns", "expected a positive number")
	}
	if c.Storage.GroupCommitMaxBatch < 1 || c.Storage.GroupCommitMaxBatch > 4096 {
		bad("storage.group_commit_max_batch", "expected a number of messages from 1 to 4096")
	}
	if c.Storage.GroupCommitMaxWait < 0 || c.Storage.GroupCommitMaxWait > time.Second {
		bad("storage.group_commit_max_wait", "expected a duration from 0s to 1s")
	}
	positive := func(key string, v, min int) {
		if v < min {
			bad(key, "expected a number >= %d, got %d", min, v)
		}
	}
	positive("limits.max_stanza_bytes", c.Limits.MaxStanzaBytes, 10000)
	positive("limits.max_depth", c.Limits.MaxDepth, 4)
	positive("limits.max_attributes", c.Limits.MaxAttributes, 8)
	positive("limits.send_queue_bytes", c.Limits.SendQueueBytes, 1<<20)
	positive("limits.stanzas_per_second", c.Limits.StanzasPerSecond, 1)
	positive("limits.max_private_namespaces", c.Limits.MaxPrivateNamespaces, 1)
	for key, v := range map[string]int64{"limits.max_private_bytes": c.Limits.MaxPrivateBytes, "limits.max_pep_bytes": c.Limits.MaxPEPBytes} {
		if v < 1024 {
			bad(key, "expected a number of bytes >= 1024, got %d", v)
		}
	}
	if c.Limits.MaxArchiveBytes < 0 {
		bad("limits.max_archive_bytes", "expected a number of bytes (0: no limit), got %d", c.Limits.MaxArchiveBytes)
	}
	if c.Limits.WriteTimeout < time.Second {
		bad("limits.write_timeout", "expected a duration of at least 1s such as 30s")
	}
	positive("limits.preauth_bytes_per_second", c.Limits.PreAuthBytesPerSecond, 0)
	if v := c.Limits.PreAuthBytesPerSecond; v > 0 && v < 1024 {
		bad("limits.preauth_bytes_per_second", "expected 0 (no limit) or at least 1024, got %d", v)
	}
	positive("limits.preauth_stanzas_per_second", c.Limits.PreAuthStanzasPerSecond, 0)
	positive("limits.connections_per_address", c.Limits.ConnectionsPerAddress, 0)
	positive("limits.unauthenticated_connections", c.Limits.UnauthenticatedConnections, 0)
	positive("auth.iterations", c.Auth.Iterations, 4096)
	positive("auth.max_failures", c.Auth.MaxFailures, 1)
	if c.Auth.Timeout <= 0 {
		bad("auth.timeout", "expected a positive duration such as 30s")
	}
	if c.Auth.FailureWindow <= 0 {
		bad("auth.failure_window", "expected a positive duration such as 5m")
	}
	if c.Auth.MaxDelay < time.Second {
		bad("auth.max_delay", "expected a duration of at least 1s, such as 1m")
	}
	if c.Auth.MaxWait <= 0 {
		bad("auth.max_wait", "expected a positive duration such as 20s")
	}
	if c.Auth.FASTTokenLifetime < 0 || (c.Auth.FASTTokenLifetime > 0 && c.Auth.FASTTokenLifetime < time.Hour) {
		bad("auth.fast_token_lifetime", "expected a duration of at least 1h such as 504h, or 0s to disable FAST")
	}
	if c.C2S.PingInterval < 0 || c.C2S.PingTimeout <= 0 {
		bad("c2s.ping_interval", "expected positive durations for c2s.ping_interval (0 disables) and c2s.ping_timeout")
	}
	if c.C2S.ResumeTimeout < 0 {
		bad("c2s.resume_timeout", "expected a duration such as 5m (0s disables resumption)")
	}
	positive("c2s.max_unacked", c.C2S.MaxUnacked, 16)
	positive("c2s.max_unacked_bytes", c.C2S.MaxUnackedBytes, 1<<20)
	positive("c2s.csi_hold_bytes", c.C2S.CSIHoldBytes, 16<<10)
	if c.S2S.IdleTimeout <= 0 {
		bad("s2s.idle_timeout", "expected a positive duration such as 10m")
	}
	if c.S2S.AuthTimeout < time.Second {
		bad("s2s.auth_timeout", "expected a duration of at least 1s such as 60s")
	}
	positive("s2s.max_inbound", c.S2S.MaxInbound, 0)
	positive("s2s.connections_per_address", c.S2S.ConnectionsPerAddress, 0)
	positive("s2s.max_dialbacks", c.S2S.MaxDialbacks, 1)
	positive("s2s.queue_bytes", c.S2S.QueueBytes, 1<<20)
	for i, r := range c.S2S.Routes {
		d, a, ok := strings.Cut(r, "=")
		if _, _, err := net.SplitHostPort(strings.TrimPrefix(a, "tls://")); !ok || d == "" || err != nil {
			bad(fmt.Sprintf("s2s.routes[%d]", i), "%q is not domain=host:port (or domain=tls://host:port)", r)
		}
	}
	for key, list := range map[string][]string{"s2s.blocked_domains": c.S2S.BlockedDomains, "s2s.allowed_domains": c.S2S.AllowedDomains} {
		for i, d := range list {
			if j, err := jid.Parse(d); err != nil || j.Localpart() != "" || j.Resourcepart() != "" || strings.ContainsAny(d, "@/ ") {
				bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a domain name", d)
			}
		}
	}
	for i, d := range c.S2S.MetricsDomains {
		if j, err := jid.Parse(d); err != nil || j.Localpart() != "" || j.Resourcepart() != "" || strings.ContainsAny(d, "@/ ") {
			bad(fmt.Sprintf("s2s.metrics_domains[%d]", i), "%q is not a domain name", d)
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
	if c.Invites.TTL < time.Minute || c.Invites.TTL > 365*24*time.Hour {
		bad("invites.ttl", "expected a duration from 1m to 8760h, got %s", c.Invites.TTL)
	}
	if u := c.Invites.BaseURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		bad("invites.base_url", "%q is not an http(s) URL", u)
	}
	if c.Bans.MaxStrikes < 0 || (c.Bans.MaxStrikes > 0 && (c.Bans.Window <= 0 || c.Bans.Duration <= 0)) {
		bad("bans", "expected max_strikes >= 0 (0 disables bans) and positive window and duration")
	}
	if _, badExempt := parseProxies(c.Bans.Exempt); len(badExempt) > 0 {
		for _, b := range badExempt {
			bad("bans.exempt", "%q is not an IP address or CIDR prefix", b)
		}
	}
	for key, d := range map[string]time.Duration{"http.read_header_timeout": c.HTTP.ReadHeaderTimeout,
		"http.idle_timeout": c.HTTP.IdleTimeout, "http.body_timeout": c.HTTP.BodyTimeout, "http.write_timeout": c.HTTP.WriteTimeout} {
		if d < 100*time.Millisecond {
			bad(key, "expected a duration such as 30s")
		}
	}
	positive("http.connections_per_address", c.HTTP.ConnectionsPerAddress, 0)
	if _, badProxies := parseProxies(c.HTTP.TrustedProxies); len(badProxies) > 0 {
		for _, b := range badProxies {
			bad("http.trusted_proxies", "%q is not an IP address or CIDR prefix", b)
		}
	}
	errs = append(errs, c.Cluster.problems(c.Storage.Backend)...)
	for _, p := range c.MUC.Problems(c.Hosts) {
		errs = append(errs, "muc."+p)
	}
	// The sections that modules own check themselves.
	for _, sec := range []struct {
		key      string
		problems []string
	}{
		{"mam", c.MAM.Problems()},
		{"push", c.Push.Problems()},
		{"omemo", c.OMEMO.Problems(c.Hosts)},
		{"registration", c.Registration.Problems()},
		{"contact", c.Contact.Problems()},
		{"abuse", c.Abuse.Problems()},
		{"external_services", c.ExternalServices.Problems()},
		{"proxy65", c.Proxy65.Problems()},
		{"upload", c.Upload.Problems()},
		{"limits", c.Limits.Limits.Problems()},
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

// RouteMap returns s2s.routes as domain → addresses.
func (c S2SConfig) RouteMap() map[string][]string {
	m := map[string][]string{}
	for _, r := range c.Routes {
		if d, a, ok := strings.Cut(r, "="); ok {
			m[strings.ToLower(d)] = append(m[strings.ToLower(d)], a)
		}
	}
	return m
}

func (c *Config) firstHost() string {
	if len(c.Hosts) > 0 {
		return c.Hosts[0]
	}
	return "example.org"
}

// nameOK reports whether s is usable in NATS subjects and bucket names.
func nameOK(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (c ClusterConfig) problems(backend string) []string {
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, key+": "+fmt.Sprintf(format, args...))
	}
	if !nameOK(c.NATS.Prefix) {
		bad("cluster.nats.prefix", "%q is not a name of 1-64 letters, digits, '-' or '_'", c.NATS.Prefix)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		bad("cluster.nats.replicas", "expected 1 to 5, got %d", c.NATS.Replicas)
	}
	if c.Heartbeat < 100*time.Millisecond || c.Heartbeat > time.Minute {
		bad("cluster.heartbeat", "expected a duration from 100ms to 1m such as 1s")
	}
	if c.DeadAfter < 3*c.Heartbeat {
		bad("cluster.dead_after", "expected at least three heartbeats (%s), such as 10s", 3*c.Heartbeat)
	}
	if c.Drain < 0 || c.Drain > time.Hour {
		bad("cluster.drain", "expected a duration from 0s (stop at once) to 1h such as 30s")
	}
	if c.Advertise != "" {
		if host, port, err := net.SplitHostPort(c.Advertise); err != nil || host == "" || port == "" {
			bad("cluster.advertise", "%q is not a host:port address such as n1.example.org:5222", c.Advertise)
		}
	}
	if !c.Enabled {
		return errs
	}
	if !nameOK(c.Node) {
		bad("cluster.node", "%q is not a node name: expected 1-64 letters, digits, '-' or '_' (unique in the cluster)", c.Node)
	}
	if backend != "postgres" {
		bad("storage.backend", "%q cannot be shared by the nodes of a cluster: cluster.enabled needs storage.backend: postgres", backend)
	}
	if len(c.NATS.URLs) == 0 {
		bad("cluster.nats.urls", "expected at least one NATS server URL such as nats://127.0.0.1:4222")
	}
	for i, u := range c.NATS.URLs {
		if !strings.Contains(u, "://") && !strings.Contains(u, ":") {
			bad(fmt.Sprintf("cluster.nats.urls[%d]", i), "%q is not a URL such as nats://host:4222", u)
		}
	}
	return errs
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
