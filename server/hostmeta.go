package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// HTTPConfig controls the http and https listeners.
type HTTPConfig struct {
	// TrustedProxies are the addresses (IPs or CIDR prefixes) of reverse
	// proxies whose X-Forwarded-Host and X-Forwarded-Proto headers are
	// believed. Anyone else's are ignored.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
	// ReadHeaderTimeout bounds reading a request's header; IdleTimeout
	// closes a keep-alive connection without a request for that long.
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	// BodyTimeout: a request body that brings no data for this long, and
	// WriteTimeout: a response write that does not complete in this long,
	// end the connection (a transfer that keeps moving may take longer).
	BodyTimeout  time.Duration `mapstructure:"body_timeout"`
	WriteTimeout time.Duration `mapstructure:"write_timeout"`
	// ConnectionsPerAddress bounds connections to the http and https
	// listeners from one address (IPv6: one /64), trusted_proxies
	// excepted; 0 = no limit.
	ConnectionsPerAddress int `mapstructure:"connections_per_address"`
}

// BansConfig is the fail2ban-style ban of client addresses (auth.Bans).
type BansConfig struct {
	// MaxStrikes offences (failed logins, streams closed for broken XML or
	// exceeded limits) from one address (IPv4, or IPv6 /64) within Window
	// ban it for Duration; 0 disables bans.
	MaxStrikes int           `mapstructure:"max_strikes"`
	Window     time.Duration `mapstructure:"window"`
	Duration   time.Duration `mapstructure:"duration"`
	// Exempt are never banned (besides http.trusted_proxies, whose
	// clients all share the proxy's address).
	Exempt []string `mapstructure:"exempt"`
}

func defaultHTTPConfig() HTTPConfig {
	return HTTPConfig{TrustedProxies: []string{"127.0.0.0/8", "::1"}, ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: time.Minute, BodyTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		ConnectionsPerAddress: 100}
}

// problems checks the http section, with whole key paths.
func (h HTTPConfig) problems() []string {
	var p []string
	for key, d := range map[string]time.Duration{"http.read_header_timeout": h.ReadHeaderTimeout,
		"http.idle_timeout": h.IdleTimeout, "http.body_timeout": h.BodyTimeout, "http.write_timeout": h.WriteTimeout} {
		if d < 100*time.Millisecond {
			p = append(p, key+": expected a duration such as 30s")
		}
	}
	if h.ConnectionsPerAddress < 0 {
		p = append(p, fmt.Sprintf("http.connections_per_address: expected a number >= 0, got %d", h.ConnectionsPerAddress))
	}
	return append(p, prefixProblems("http.trusted_proxies", h.TrustedProxies)...)
}

func defaultBansConfig() BansConfig {
	return BansConfig{MaxStrikes: 30, Window: 10 * time.Minute, Duration: 15 * time.Minute, Exempt: []string{"127.0.0.0/8", "::1"}}
}

// problems checks the bans section, with whole key paths.
func (b BansConfig) problems() []string {
	var p []string
	if b.MaxStrikes < 0 || (b.MaxStrikes > 0 && (b.Window <= 0 || b.Duration <= 0)) {
		p = append(p, "bans: expected max_strikes >= 0 (0 disables bans) and positive window and duration")
	}
	return append(p, prefixProblems("bans.exempt", b.Exempt)...)
}

// prefixProblems names the entries of a list of addresses or CIDR prefixes
// that are neither.
func prefixProblems(key string, list []string) []string {
	_, bad := parseProxies(list)
	p := make([]string, 0, len(bad))
	for _, b := range bad {
		p = append(p, fmt.Sprintf("%s: %q is not an IP address or CIDR prefix", key, b))
	}
	return p
}

// proxySet holds parsed trusted proxies.
type proxySet []netip.Prefix

func parseProxies(list []string) (proxySet, []string) {
	var ps proxySet
	var bad []string
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p.Masked())
		} else if a, err := netip.ParseAddr(s); err == nil {
			ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		} else {
			bad = append(bad, s)
		}
	}
	return ps, bad
}

func (ps proxySet) trusts(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// wsURL is the WebSocket URL advertised by host-meta (XEP-0156). Its host
// is one of the configured hosts, or the address the client connected
// to: never a name a client or an untrusted proxy sent, which would let
// anyone make the server (and a cache in front of it) hand out a URL of
// their choosing. Only a trusted proxy's X-Forwarded-Host/-Proto count,
// and a port other than the listener's only from it.
func (s *Server) wsURL(r *http.Request, secure bool) string {
	trusted := s.proxies.trusts(r.RemoteAddr)
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	localIP, localPort := "", ""
	if local != nil {
		localIP, localPort, _ = net.SplitHostPort(local.String())
	}
	scheme := "ws"
	if secure || r.TLS != nil || (trusted && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")) {
		scheme = "wss"
	}
	hostport := r.Host
	if fh := r.Header.Get("X-Forwarded-Host"); trusted && fh != "" {
		hostport, _, _ = strings.Cut(fh, ",")
		hostport = strings.TrimSpace(hostport)
	}
	name, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		name, port = h, p
	}
	if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535 || (!trusted && port != localPort)) {
		port = localPort
	}
	host := ""
	for _, h := range s.cfg.Hosts {
		if strings.EqualFold(name, h) {
			host = h
		}
	}
	if host == "" {
		// Not a name this server serves: the address the client reached
		// (an IP literal), else the first host, on this listener's port.
		if ip, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil && localIP != "" && ip.String() == localIP {
			host = ip.String()
		} else {
			host = s.cfg.Hosts[0]
		}
		port = localPort
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host + "/xmpp-websocket"
}

// hostMetaXRD is the XEP-0156 XRD document, its URL escaped.
func hostMetaXRD(wsURL string) []byte {
	return []byte("<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='http://docs.oasis-open.org/ns/xri/xrd-1.0'>\n" +
		"  <Link rel='" + xep.NSAltWebSocket + "' href='" + wire.EscapeAttr(wsURL) + "'/>\n</XRD>\n")
}
