package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Transport security of the load tool's client connections.
const (
	secPlain    = "plain"    // no TLS (the server must allow auth without it)
	secStartTLS = "starttls" // RFC 6120 STARTTLS on the c2s port
	secTLS      = "tls"      // XEP-0368 direct TLS on the c2s_tls port
)

// dialer opens logged-in client connections to a target.
type dialer struct {
	tg       *target
	sec      string
	cache    *saltCache // nil: every login derives the SCRAM key
	timeout  time.Duration
	next     atomic.Uint32 // round robin over local source addresses
	spreadTo int           // loopback source addresses to spread over (0: the kernel's choice)
}

// client is one logged-in connection. After login only the scanner reads
// (one goroutine) and writes go through bw under the caller's care.
type client struct {
	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	sc   *scanner
	jid  string
	user string
	// hIn counts stanzas received since SM was enabled (XEP-0198 h).
	hIn uint32
}

// loginOpts says how far a login goes.
type loginOpts struct {
	resource string
	sm       bool // enable stream management (no resumption)
	presence bool // send initial presence
}

func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	if d.spreadTo > 0 {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && ip.To4() != nil {
				// Many short connections from one address run out of
				// ephemeral ports (TIME_WAIT); loopback has 2^24 addresses.
				n := d.next.Add(1)
				nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+n%uint32(d.spreadTo)))}
			}
		}
	}
	return nd.DialContext(ctx, "tcp", addr)
}

// login connects user and goes as far as opts asks.
func (d *dialer) login(ctx context.Context, user string, opts loginOpts) (*client, error) {
	addr := d.tg.c2s
	if d.sec == secTLS {
		addr = d.tg.c2sTLS
	}
	if addr == "" {
		return nil, fmt.Errorf("the target has no listener for %s", d.sec)
	}
	conn, err := d.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c, err := d.negotiate(conn, user, opts)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", user, err)
	}
	return c, nil
}

func (d *dialer) tlsConfig() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, ServerName: d.tg.domain, MinVersion: tls.VersionTLS12,
		ClientSessionCache: nil, NextProtos: []string{"xmpp-client"}}
}

func (d *dialer) negotiate(conn net.Conn, user string, opts loginOpts) (*client, error) {
	_ = conn.SetDeadline(time.Now().Add(d.timeout))
	if d.sec == secTLS {
		tc := tls.Client(conn, d.tlsConfig())
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	c := &client{conn: conn, user: user}
	rd, features, err := c.openStream(d.tg.domain)
	if err != nil {
		return nil, err
	}
	if d.sec == secStartTLS {
		if features.Child(xep.NSTLS, "starttls") == nil {
			return nil, errors.New("the server offers no STARTTLS")
		}
		if err := c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"); err != nil {
			return nil, err
		}
		st, err := rd.Next()
		if err != nil {
			return nil, err
		}
		if st.Name != "proceed" {
			return nil, fmt.Errorf("STARTTLS: %s", st.Raw)
		}
		tc := tls.Client(conn, d.tlsConfig())
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		c.conn = tc
		if rd, _, err = c.openStream(d.tg.domain); err != nil {
			return nil, err
		}
	}
	if err := c.auth(rd, user+"", d.tg.password, d.cache); err != nil {
		return nil, err
	}
	if rd, _, err = c.restart(d.tg.domain); err != nil {
		return nil, err
	}
	res := ""
	if opts.resource != "" {
		res = "<resource>" + wire.EscapeText(opts.resource) + "</resource>"
	}
	if err := c.send("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>" + res + "</bind></iq>"); err != nil {
		return nil, err
	}
	st, err := rd.Next()
	if err != nil {
		return nil, err
	}
	if st.Type != "result" {
		return nil, fmt.Errorf("bind: %s", st.Raw)
	}
	c.jid = st.Child(xep.NSBind, "bind").ChildText(xep.NSBind, "jid")
	if opts.sm {
		if err := c.send("<enable xmlns='urn:xmpp:sm:3'/>"); err != nil {
			return nil, err
		}
		st, err := rd.Next()
		if err != nil {
			return nil, err
		}
		if st.Name != "enabled" {
			return nil, fmt.Errorf("enable stream management: %s", st.Raw)
		}
	}
	if opts.presence {
		if err := c.send("<presence/>"); err != nil {
			return nil, err
		}
	}
	_ = c.conn.SetDeadline(time.Time{})
	c.sc = newScanner(c.br)
	return c, nil
}

// openStream sets up buffers on the connection (new, or just upgraded to
// TLS) and opens a stream.
func (c *client) openStream(domain string) (*wire.Reader, *wire.Stanza, error) {
	c.br = bufio.NewReaderSize(c.conn, 16<<10)
	c.bw = bufio.NewWriterSize(c.conn, 16<<10)
	return c.restart(domain)
}

// restart sends a stream header and reads the server's header and
// features with a fresh parser on the same buffered reader (after SASL,
// nothing the server sent is lost).
func (c *client) restart(domain string) (*wire.Reader, *wire.Stanza, error) {
	if err := c.send("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='" +
		domain + "' version='1.0'>"); err != nil {
		return nil, nil, err
	}
	rd := wire.NewReader(c.br, wire.Limits{MaxStanzaBytes: 1 << 20})
	if _, err := rd.ReadHeader(); err != nil {
		return nil, nil, fmt.Errorf("stream header: %w", err)
	}
	f, err := rd.Next()
	if err != nil {
		return nil, nil, fmt.Errorf("stream features: %w", err)
	}
	if f.Name != "features" {
		return nil, nil, fmt.Errorf("expected stream features, got %s", f.Raw)
	}
	return rd, f, nil
}

func (c *client) auth(rd *wire.Reader, user, password string, cache *saltCache) error {
	sc := &scramClient{user: user, password: password, cache: cache}
	if err := c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>" +
		base64.StdEncoding.EncodeToString([]byte(sc.first())) + "</auth>"); err != nil {
		return err
	}
	for {
		st, err := rd.Next()
		if err != nil {
			return err
		}
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Tree().Text()))
		if err != nil {
			return fmt.Errorf("SASL: bad base64 in %s", st.Raw)
		}
		switch st.Name {
		case "challenge":
			final, err := sc.final(string(data))
			if err != nil {
				return err
			}
			if err := c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>" +
				base64.StdEncoding.EncodeToString([]byte(final)) + "</response>"); err != nil {
				return err
			}
		case "success":
			return sc.verify(string(data))
		default:
			return fmt.Errorf("SASL: %s", st.Raw)
		}
	}
}

// send writes s and flushes.
func (c *client) send(s string) error {
	if _, err := c.bw.WriteString(s); err != nil {
		return err
	}
	return c.bw.Flush()
}

// answer handles what every client must answer while reading: XEP-0198
// ack requests and pings (so the server never closes a slow reader for
// silence). It counts stanzas for h and reports whether el was one.
func (c *client) answer(el []byte, smOn bool) (stanza bool, reply []byte) {
	if isStanza(el) {
		c.hIn++
		if elemName(el) == "iq" && attrValue(el, "type") == "get" {
			id := attrValue(el, "id")
			from := attrValue(el, "from")
			return true, []byte("<iq type='result' id='" + id + "' to='" + from + "'/>")
		}
		return true, nil
	}
	if smOn && elemName(el) == "r" {
		return false, fmt.Appendf(nil, "<a xmlns='urn:xmpp:sm:3' h='%d'/>", c.hIn)
	}
	return false, nil
}

// close ends the stream politely and closes the socket.
func (c *client) close() {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.bw.WriteString("</stream:stream>")
	_ = c.bw.Flush()
	_ = c.conn.Close()
}
