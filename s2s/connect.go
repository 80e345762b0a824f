package s2s

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// target is one address to try for a remote domain.
type target struct {
	addr   string
	direct bool // XEP-0368 direct TLS
}

// resolve lists the addresses of domain's s2s service, best first:
// Config.Routes, else SRV _xmpps-server._tcp and _xmpp-server._tcp merged
// by priority (direct TLS first on ties; Go orders by weight within a
// priority), else the domain's A/AAAA records on 5269.
func (s *Service) resolve(ctx context.Context, domain string) ([]target, error) {
	if addrs, ok := s.cfg.Routes[domain]; ok {
		var out []target
		for _, a := range addrs {
			if rest, ok := strings.CutPrefix(a, "tls://"); ok {
				out = append(out, target{addr: rest, direct: true})
			} else {
				out = append(out, target{addr: strings.TrimPrefix(a, "tcp://")})
			}
		}
		return out, nil
	}
	type rec struct {
		prio   uint16
		direct bool
		t      target
	}
	var recs []rec
	found := false
	for _, svc := range []struct {
		name   string
		direct bool
	}{{"xmpps-server", true}, {"xmpp-server", false}} {
		_, srvs, err := s.cfg.Resolver.LookupSRV(ctx, svc.name, "tcp", domain)
		if err != nil {
			continue
		}
		for _, r := range srvs {
			found = true
			if r.Target == "." || r.Target == "" {
				continue // RFC 2782: service decidedly not available
			}
			host := strings.TrimSuffix(r.Target, ".")
			recs = append(recs, rec{prio: r.Priority, direct: svc.direct,
				t: target{addr: net.JoinHostPort(host, strconv.Itoa(int(r.Port))), direct: svc.direct}})
		}
	}
	if found {
		if len(recs) == 0 {
			return nil, fmt.Errorf("%s offers no XMPP server service", domain)
		}
		slices.SortStableFunc(recs, func(a, b rec) int { return cmp.Compare(a.prio, b.prio) })
		out := make([]target, len(recs))
		for i, r := range recs {
			out[i] = r.t
		}
		return out, nil
	}
	return []target{{addr: net.JoinHostPort(domain, "5269")}}, nil
}

// outStream is a connected, TLS-protected stream we initiated, after the
// post-TLS stream header and features.
type outStream struct {
	*stream
	id       string       // stream id the peer gave us (used in dialback keys)
	features *wire.Stanza // <stream:features/>
	certErr  error        // nil when the peer's certificate is valid for its domain
	bidi     bool         // we requested a bidirectional stream (XEP-0288)
}

// connectError carries the stanza error condition for bounced stanzas.
type connectError struct {
	cond string
	err  error
}

func (e *connectError) Error() string { return e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

func classify(err error) string {
	var ce *connectError
	if errors.As(err, &ce) {
		return ce.cond
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return wire.ErrRemoteServerTimeout
	}
	return wire.ErrRemoteServerNotFound
}

// dial resolves remote, connects to the first reachable address and
// negotiates TLS (STARTTLS is required). The returned stream is positioned
// after the features of the TLS-protected stream.
func (s *Service) dial(ctx context.Context, local, remote string) (*outStream, error) {
	targets, err := s.resolve(ctx, remote)
	if err != nil {
		return nil, &connectError{cond: wire.ErrRemoteServerNotFound, err: err}
	}
	var lastErr error = errors.New("no address for " + remote)
	d := net.Dialer{}
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		c, err := d.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			lastErr = err
			continue
		}
		ost, err := s.negotiateTLS(ctx, c, t.direct, local, remote)
		if err != nil {
			_ = c.Close()
			lastErr = err
			continue
		}
		return ost, nil
	}
	if ctx.Err() != nil {
		return nil, &connectError{cond: wire.ErrRemoteServerTimeout, err: fmt.Errorf("connecting to %s: %w", remote, ctx.Err())}
	}
	return nil, lastErr
}

func (s *Service) negotiateTLS(ctx context.Context, c net.Conn, direct bool, local, remote string) (*outStream, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	st := newStream(s.wrapConn(c), s.cfg.Limits)
	timeout := s.cfg.ConnectTimeout
	if direct {
		if err := st.upgrade(tls.Client(st.raw, s.clientTLS(local, remote, true)), timeout); err != nil {
			return nil, fmt.Errorf("TLS with %s: %w", remote, err)
		}
	}
	for {
		if err := st.header(local, remote, "", nil); err != nil {
			return nil, err
		}
		h, err := st.rd.ReadHeader()
		if err != nil {
			return nil, fmt.Errorf("stream header from %s: %w", remote, err)
		}
		if h.NS != wire.NSServer {
			st.closeStream(&wire.StreamError{Condition: wire.CondInvalidNamespace})
			return nil, fmt.Errorf("%s: stream namespace %q", remote, h.NS)
		}
		feats, err := st.rd.Next()
		if err != nil {
			return nil, fmt.Errorf("features from %s: %w", remote, err)
		}
		if isStreamError(feats) {
			return nil, &connectError{cond: wire.ErrRemoteServerNotFound,
				err: fmt.Errorf("%s: stream error %s", remote, streamErrorCondition(feats))}
		}
		if feats.NS != wire.NSStream || feats.Name != "features" {
			return nil, fmt.Errorf("%s: expected stream features", remote)
		}
		if st.tls {
			ost := &outStream{stream: st, id: h.ID, features: feats}
			ost.certErr = s.peerCertValid(st.tlsState(), remote)
			return ost, nil
		}
		if feats.Child(nsTLS, "starttls") == nil {
			st.closeStream(&wire.StreamError{Condition: wire.CondPolicyViolation, Text: "TLS is required"})
			return nil, &connectError{cond: wire.ErrRemoteServerNotFound, err: fmt.Errorf("%s does not offer STARTTLS", remote)}
		}
		if err := st.send([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
			return nil, err
		}
		resp, err := st.rd.Next()
		if err != nil {
			return nil, err
		}
		if resp.NS != nsTLS || resp.Name != "proceed" {
			return nil, fmt.Errorf("%s refused STARTTLS", remote)
		}
		if err := st.upgrade(tls.Client(st.raw, s.clientTLS(local, remote, false)), timeout); err != nil {
			return nil, fmt.Errorf("TLS with %s: %w", remote, err)
		}
	}
}

// readDeadline is the read timeout for streams that have not authenticated.
func (s *Service) preAuthTimeout() time.Duration { return 2 * s.cfg.ConnectTimeout }
