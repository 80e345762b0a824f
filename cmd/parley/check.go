package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/parley-xmpp/parley/cluster"
	"github.com/parley-xmpp/parley/server"
)

// resolver is the part of *net.Resolver that `parley check` uses; tests
// replace checkResolver.
type resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

var (
	checkResolver resolver = net.DefaultResolver
	dnsTimeout             = 5 * time.Second
)

func newCheckCmd(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check configuration, certificate, listeners and DNS records",
		Long: `Check the configuration, the TLS certificate, that every listener address
can be bound, and the DNS SRV records of every non-local host. Prints one line
per check with OK, WARN or FAIL and exits non-zero when any check FAILs.
Nothing is changed: a missing self-signed certificate is not generated.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := &checkReport{w: cmd.OutOrStdout()}
			runChecks(cmd.Context(), r, opts.configFile, time.Now())
			switch {
			case r.fails == 1:
				return errors.New("1 check failed")
			case r.fails > 1:
				return fmt.Errorf("%d checks failed", r.fails)
			}
			return nil
		},
	}
}

type checkReport struct {
	w            io.Writer
	fails, warns int
}

const (
	statusOK   = "OK"
	statusWarn = "WARN"
	statusFail = "FAIL"
)

func (r *checkReport) line(status, topic, format string, args ...any) {
	switch status {
	case statusFail:
		r.fails++
	case statusWarn:
		r.warns++
	}
	msg := fmt.Sprintf(format, args...)
	// Multi-line messages (configuration errors) stay under their line.
	msg = strings.ReplaceAll(msg, "\n", "\n      ")
	fmt.Fprintf(r.w, "%-4s  %s: %s\n", status, topic, msg)
}

func runChecks(ctx context.Context, r *checkReport, configFile string, now time.Time) {
	file, err := resolveConfigPath(configFile)
	if err != nil {
		r.line(statusFail, "config", "%v", err)
		return
	}
	cfg, err := loadConfig(file)
	if err != nil {
		r.line(statusFail, "config", "%v", err)
		return
	}
	if file == "" {
		r.line(statusOK, "config", "no configuration file (defaults and PARLEY_* environment) is valid; hosts: %s", strings.Join(cfg.Hosts, ", "))
	} else {
		r.line(statusOK, "config", "%s is valid; hosts: %s", file, strings.Join(cfg.Hosts, ", "))
	}
	for _, name := range unknownEnv(os.Environ()) {
		r.line(statusWarn, "config", "environment variable %s ignored: not a configuration key", name)
	}
	checkCert(r, cfg, now)
	checkListeners(r, cfg)
	checkDNS(ctx, r, cfg)
	checkCluster(ctx, r, cfg)
}

// checkCluster reports whether NATS is reachable and offers JetStream.
func checkCluster(ctx context.Context, r *checkReport, cfg server.Config) {
	if !cfg.Cluster.Enabled {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := cluster.Check(ctx, server.ClusterNodeConfig(cfg, nil))
	if err != nil {
		r.line(statusFail, "cluster.nats.urls", "%v", err)
		return
	}
	r.line(statusOK, "cluster.nats.urls", "NATS %s reachable at %s", res.Version, res.Server)
	switch {
	case res.JetStream != nil:
		r.line(statusFail, "cluster.nats", "JetStream is not available (start nats-server with -js, or enable it for this account): %v", res.JetStream)
	case res.Bucket == "":
		r.line(statusOK, "cluster.nats", "JetStream available; the session bucket %s_sessions will be created at start", cfg.Cluster.NATS.Prefix)
	default:
		r.line(statusOK, "cluster.nats", "JetStream available; session bucket %s exists", res.Bucket)
	}
}

// allLocal reports whether every host is a local name, for which a
// self-signed certificate is expected.
func allLocal(hosts []string) bool {
	for _, h := range hosts {
		if !isLocalHost(h) {
			return false
		}
	}
	return true
}

// isLocalHost: localhost, *.localhost, *.local and IP literals have no
// public DNS and no publicly trusted certificate.
func isLocalHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") {
		return true
	}
	return net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")) != nil
}

// checkACME reports the ACME certificates in data_dir/acme: missing (not
// obtained yet) or expiring within 14 days (renewal, due at 30 days, is
// failing).
func checkACME(r *checkReport, cfg server.Config, now time.Time) {
	const topic = "acme"
	r.line(statusOK, topic, "certificates from %s for %s (and service hosts), kept in %s", server.ACMEDirectory(cfg),
		strings.Join(cfg.Hosts, ", "), server.ACMECacheDir(cfg))
	for _, h := range cfg.Hosts {
		cert, err := server.ACMECertificate(cfg, h)
		if err != nil {
			r.line(statusWarn, topic, "%s: no certificate yet (%v); the server obtains one at start through HTTP-01 on listen.http (port 80) or TLS-ALPN-01 on listen.https (port 443)", h, err)
			continue
		}
		for _, p := range server.CertificateProblems(cert, []string{h}, now) {
			status := statusWarn
			if p.Severity == server.CertFail {
				status = statusFail
			}
			r.line(status, topic, "%s: %s", h, p.Message)
		}
	}
}

func checkCert(r *checkReport, cfg server.Config, now time.Time) {
	const topic = "certificate"
	if cfg.TLS.ACME.Agree {
		checkACME(r, cfg, now)
	}
	var (
		cert *tls.Certificate
		err  error
		src  string
	)
	if cfg.TLS.Cert != "" || cfg.TLS.Key != "" {
		src = cfg.TLS.Cert
		cert, err = server.LoadOrCreateCertificate(cfg) // loads only: never generates when tls.cert is set
	} else {
		certFile, _ := server.SelfSignedPaths(cfg.DataDir)
		src = certFile + " (self-signed)"
		cert, err = server.LoadSelfSigned(cfg.DataDir, cfg.Hosts)
		if err == nil && cert == nil {
			status := statusWarn
			if allLocal(cfg.Hosts) {
				status = statusOK
			}
			r.line(status, topic, "no certificate yet, one will be generated on first start: self-signed, in %s (set tls.cert and tls.key for production)", certFile)
			return
		}
	}
	if err != nil {
		r.line(statusFail, topic, "%v", err)
		return
	}
	problems := server.CertificateProblems(cert, cfg.Hosts, now)
	bad := false
	for _, p := range problems {
		status := statusWarn
		switch {
		case p.Severity == server.CertFail:
			status = statusFail
		case p.Kind == "self-signed" && allLocal(cfg.Hosts):
			status = statusOK // expected for a local test server
		}
		if status != statusOK {
			bad = true
		}
		r.line(status, topic, "%s: %s", src, p.Message)
	}
	if !bad {
		leaf := cert.Leaf
		if leaf == nil && len(cert.Certificate) > 0 {
			leaf, _ = x509.ParseCertificate(cert.Certificate[0])
		}
		if leaf != nil {
			r.line(statusOK, topic, "%s covers %s, valid until %s", src, strings.Join(cfg.Hosts, ", "), leaf.NotAfter.UTC().Format("2006-01-02"))
		}
	}
}

func checkListeners(r *checkReport, cfg server.Config) {
	for _, l := range []struct{ key, addr string }{
		{"listen.c2s", cfg.Listen.C2S}, {"listen.c2s_tls", cfg.Listen.C2STLS},
		{"listen.http", cfg.Listen.HTTP}, {"listen.https", cfg.Listen.HTTPS}, {"listen.admin", cfg.Listen.Admin},
	} {
		if l.addr == "" {
			r.line(statusOK, l.key, "disabled")
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err == nil {
			_ = ln.Close()
			r.line(statusOK, l.key, "%s can be bound", l.addr)
			continue
		}
		switch {
		case errors.Is(err, syscall.EADDRINUSE):
			r.line(statusWarn, l.key, "%s is in use (by another process, or parley is already running); serve cannot start while it is", l.addr)
		case errors.Is(err, syscall.EACCES):
			r.line(statusFail, l.key, "%s cannot be bound: permission denied (ports below 1024 need privileges, e.g. CAP_NET_BIND_SERVICE)", l.addr)
		case errors.Is(err, syscall.EADDRNOTAVAIL):
			r.line(statusFail, l.key, "%s cannot be bound: the address is not on this machine", l.addr)
		default:
			r.line(statusFail, l.key, "%s cannot be bound: %v", l.addr, err)
		}
	}
}

// srvResult is one SRV lookup.
type srvResult struct {
	records []*net.SRV
	missing bool // NXDOMAIN or no records
	err     error
}

var srvServices = []struct {
	service, what, fallback string
	listen                  func(server.ListenConfig) string
}{
	{"xmpp-client", "clients (STARTTLS)", "clients fall back to %s:5222", func(l server.ListenConfig) string { return l.C2S }},
	{"xmpps-client", "clients (direct TLS, XEP-0368)", "clients use STARTTLS instead", func(l server.ListenConfig) string { return l.C2STLS }},
	{"xmpp-server", "other servers (STARTTLS)", "other servers fall back to %s:5269", nil},
	{"xmpps-server", "other servers (direct TLS, XEP-0368)", "other servers use STARTTLS instead", nil},
}

func checkDNS(ctx context.Context, r *checkReport, cfg server.Config) {
	for _, h := range cfg.Hosts {
		topic := "dns " + h
		if isLocalHost(h) {
			r.line(statusOK, topic, "local name, DNS not checked")
			continue
		}
		results, addrs, hostErr := lookupHostRecords(ctx, h)
		for i, svc := range srvServices {
			name := "_" + svc.service + "._tcp." + h
			res := results[i]
			switch {
			case res.err != nil:
				r.line(statusWarn, topic, "%s: lookup failed: %v", name, res.err)
			case res.missing:
				fallback := svc.fallback
				if strings.Contains(fallback, "%s") {
					fallback = fmt.Sprintf(fallback, h)
				}
				r.line(statusWarn, topic, "%s: missing (for %s; %s)", name, svc.what, fallback)
			case len(res.records) == 1 && (res.records[0].Target == "." || res.records[0].Target == ""):
				r.line(statusOK, topic, "%s: \".\" (service explicitly not offered)", name)
			default:
				var targets []string
				for _, s := range res.records {
					targets = append(targets, fmt.Sprintf("%s:%d", strings.TrimSuffix(s.Target, "."), s.Port))
				}
				r.line(statusOK, topic, "%s → %s", name, strings.Join(targets, ", "))
				if svc.listen != nil {
					checkSRVPort(r, topic, name, res.records, svc.listen(cfg.Listen))
				}
			}
		}
		clientSRV := !results[0].missing || !results[1].missing
		switch {
		case hostErr != nil && !clientSRV:
			r.line(statusFail, topic, "no client SRV records and %s has no address (%v): clients cannot find this server", h, hostErr)
		case hostErr != nil:
			r.line(statusWarn, topic, "%s has no address record (%v)", h, hostErr)
		default:
			r.line(statusOK, topic, "%s has addresses %s", h, strings.Join(addrs, ", "))
		}
	}
}

// checkSRVPort warns when no SRV record points at the port the listener
// uses (fine behind a port forward, a mistake otherwise).
func checkSRVPort(r *checkReport, topic, name string, records []*net.SRV, addr string) {
	if addr == "" {
		r.line(statusWarn, topic, "%s is published but its listener is disabled in the configuration", name)
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return
	}
	for _, s := range records {
		if fmt.Sprint(s.Port) == port {
			return
		}
	}
	r.line(statusWarn, topic, "%s points to port %d but the listener uses port %s (fine only behind a port forward)", name, records[0].Port, port)
}

// lookupHostRecords runs the SRV and address lookups for host concurrently
// with a timeout.
func lookupHostRecords(ctx context.Context, host string) ([]srvResult, []string, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	results := make([]srvResult, len(srvServices))
	var (
		wg      sync.WaitGroup
		addrs   []string
		hostErr error
	)
	for i, svc := range srvServices {
		wg.Go(func() {
			_, recs, err := checkResolver.LookupSRV(ctx, svc.service, "tcp", host)
			var dnsErr *net.DNSError
			switch {
			case err == nil && len(recs) == 0, errors.As(err, &dnsErr) && dnsErr.IsNotFound:
				results[i] = srvResult{missing: true}
			case err != nil:
				results[i] = srvResult{err: err}
			default:
				results[i] = srvResult{records: recs}
			}
		})
	}
	wg.Go(func() {
		addrs, hostErr = checkResolver.LookupHost(ctx, host)
	})
	wg.Wait()
	return results, addrs, hostErr
}
