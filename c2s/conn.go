package c2s

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/netlimit"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const (
	maxSASLFailures = 3
	maxSASLAttempts = 10
)

// errRestart tells the read loop that the stream restarts (RFC 6120 §4.3.3).
var errRestart = errors.New("stream restart")

// conn is one client connection. Its reader goroutine owns all fields but
// those under mu: serve, then after each idle wait the wake that follows
// it (one at a time: a new one starts only as the last one ends).
type conn struct {
	srv *Server
	t   transport
	id  string
	adm *admission

	// full is fullOf's JID as a string (the reader's cache).
	full   string
	fullOf *session

	domain        string
	lang          string
	authenticated bool
	username      string
	saslFailures  int
	saslAttempts  int
	neg           *auth.Negotiation
	mech          string
	s2            *sasl2Auth    // set while a SASL2 exchange runs (neg is its negotiation)
	inline        *inlineResume // set while a resumption asked for in SASL2 runs
	// preauth is the in-band registration state of the stream (an
	// invitation token presented with XEP-0445).
	preauth module.PreAuthStream

	opened      bool             // the client's stream header was read (loop)
	preauthRate *netlimit.Bucket // elements allowed before authentication
	limiter     *limiter
	// timer is the deadline to bind a session (from the first byte, not
	// extended by traffic), then the XEP-0199 ping timer.
	timer *time.Timer

	mu       sync.Mutex // guards what other goroutines (timers, shutdown) touch
	sess     *session
	pingID   string // id of the ping waiting for an answer, "" for none
	pingSent time.Time
}

// ctx is the context of what a connection's goroutine does: nothing it
// starts outlives its work, so there is nothing to cancel (and an idle
// connection holds no context).
var ctx = context.Background()

func newConn(s *Server, t transport, adm *admission) *conn {
	l := s.limits()
	return &conn{srv: s, t: t, id: router.NewID()[:12], adm: adm,
		limiter:     newLimiter(l.StanzasPerSecond),
		preauthRate: netlimit.NewBucket(l.PreAuthStanzasPerSecond, 4*l.PreAuthStanzasPerSecond)}
}

// logger returns the log with the connection's attributes. It is built
// when something is logged: an idle connection keeps no logger of its own.
func (c *conn) logger() *slog.Logger {
	l := c.srv.log.With("conn", c.id, "transport", c.t.kind(), "remote", c.t.remoteAddr())
	if c.username != "" {
		l = l.With("user", c.username+"@"+c.domain)
	}
	return l
}

func (c *conn) debug(msg string, args ...any) {
	if c.srv.log.Enabled(ctx, slog.LevelDebug) {
		c.logger().Debug(msg, args...)
	}
}

// serve is the connection's first goroutine: it reads and handles what
// the client sends until the stream ends, then closes the connection, or
// until the stream goes idle (see run).
func (c *conn) serve(directTLS bool) {
	srv := c.srv
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		c.adm.end()
		c.t.closeStream(&wire.StreamError{Condition: wire.CondSystemShutdown})
		c.t.finalClose()
		return
	}
	srv.conns[c] = struct{}{}
	srv.mu.Unlock()
	connections.WithLabelValues(c.t.kind()).Inc()
	connectionsTotal.WithLabelValues(c.t.kind()).Inc()
	c.timer = time.AfterFunc(srv.cfg.AuthTimeout, c.authTimeout)
	c.debug("connection opened")
	var err error
	if directTLS {
		err = c.t.startTLS(srv.cfg.TLS)
		c.t.restart()
	}
	c.run(err)
}

// errIdle: the read loop stopped because the stream is idle.
var errIdle = errors.New("idle")

// run reads and handles input until the stream ends, or until it goes
// idle: then the connection passes to a new goroutine that waits for input
// on a short stack (wake) and this one, whose stack has grown with the
// work (TLS, the XML decoder, handlers), ends. An idle connection thus
// costs the smallest goroutine stack instead of the deepest one its
// reader ever needed (see docs/memory.md).
func (c *conn) run(err error) {
	if err == nil {
		err = c.loop()
	}
	if err == errIdle {
		c.srv.lives.Go(c.wake)
		return
	}
	c.end(err)
}

// wake is an idle connection's goroutine: it waits for input below any
// TLS layer, then reads it on the same goroutine, growing its stack only
// then.
func (c *conn) wake() {
	err := c.t.wait()
	if err == nil {
		growStack(0)
	}
	c.run(err)
}

// activeStack is the stack that handling a stanza needs (routing, the
// modules, the store): the woken goroutine grows to it at once, from its
// first, shallow frames, instead of doubling from the smallest stack
// several times with the whole deep call stack to copy each time (13 % of
// the server's CPU at 10,000 msg/s, 9 % in the woken readers, when every
// message arrived on an idle stream). The stack goes when the stream is
// idle again and this goroutine ends.
const activeStack = 16 << 10

// growStack has a frame of nearly activeStack bytes (room is left for the
// frames below it and the guard), so calling it grows the
// goroutine's stack to hold that much (the runtime doubles the stack
// until it fits, in one copy).
//
//go:noinline
func growStack(i int) byte {
	var frame [activeStack - 2048]byte
	return frame[i%len(frame)]
}

func (c *conn) authTimeout() {
	limitHits.WithLabelValues(limitAuthTimeout).Inc()
	c.fail(&wire.StreamError{Condition: wire.CondConnectionTimeout, Text: "authentication took too long"})
}

// end runs when the read loop stopped.
func (c *conn) end(err error) {
	c.mu.Lock()
	c.timer.Stop()
	c.mu.Unlock()
	c.finish(err)
	c.t.finalClose()
	c.adm.end()
	connections.WithLabelValues(c.t.kind()).Dec()
	c.srv.mu.Lock()
	delete(c.srv.conns, c)
	c.srv.mu.Unlock()
}

// loop reads streams and their elements; it returns errIdle when the
// stream goes idle, and is called again (by wake) when input arrives.
func (c *conn) loop() error {
	for {
		if !c.opened {
			if err := c.openStream(); err != nil {
				return err
			}
			c.opened = true
		}
		for {
			if c.t.park() {
				return errIdle
			}
			st, err := c.t.next()
			if err != nil {
				return err
			}
			if err := c.handle(st); err != nil {
				if err == errRestart {
					c.opened = false
					break
				}
				return err
			}
		}
	}
}

// finish ends the connection after the read loop stopped.
func (c *conn) finish(err error) {
	if errors.Is(err, netlimit.ErrBudget) {
		limitHits.WithLabelValues(limitPreAuthBytes).Inc()
		err = &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too much data before authentication"}
	}
	var se *wire.StreamError
	switch {
	case err == nil, errors.Is(err, wire.ErrStreamEnd):
	case errors.As(err, &se):
		countStreamError(se.Condition)
		c.logger().Info("stream error", "condition", se.Condition, "text", se.Text)
		// A bound session whose pings went unanswered is a phone that lost
		// its network, not an offender.
		if offence(se.Condition) && !(se.Condition == wire.CondConnectionTimeout && c.authenticated) {
			c.strike(se.Condition)
		}
	case errors.Is(err, io.EOF):
	default:
		c.debug("connection ended", "err", err)
	}
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, wire.ErrStreamEnd) && se == nil {
			c.t.close()
		} else {
			c.t.closeStream(se)
		}
		return
	}
	clean := err == nil || errors.Is(err, wire.ErrStreamEnd)
	c.endSession(sess, se, clean)
	c.logger().Info("connection ended", "jid", sess.jid.String())
}

// fail ends the stream with a stream error from any goroutine. Before a
// session is bound the stream is closed at once, never waiting behind a
// blocked write; a bound session writes the error after what it queued.
func (c *conn) fail(se *wire.StreamError) {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	countStreamError(se.Condition)
	if sess != nil {
		sess.mu.Lock()
		mine := sess.owner == c
		sess.mu.Unlock()
		if mine {
			sess.Close(se)
			return
		}
	}
	c.t.closeStream(se)
}

func (c *conn) shutdown() {
	c.fail(&wire.StreamError{Condition: wire.CondSystemShutdown, Text: "the server is shutting down"})
}

// openStream reads the client's header and answers with ours and the
// features for the current state.
func (c *conn) openStream() error {
	h, err := c.t.readHeader()
	if err != nil {
		if se, ok := wire.AsStreamError(err); ok {
			c.headerThenError(se)
		}
		return err
	}
	if c.lang == "" {
		c.lang = h.Lang
		if c.lang == "" || len(c.lang) > 35 {
			c.lang = "en"
		}
	}
	var se *wire.StreamError
	to := strings.ToLower(h.To)
	switch {
	case h.NS != wire.NSClient:
		se = &wire.StreamError{Condition: wire.CondInvalidNamespace, Text: "the default namespace must be jabber:client"}
	case !versionOK(h.Version):
		se = &wire.StreamError{Condition: wire.CondUnsupportedVersion, Text: "this server speaks XMPP version 1.0"}
	case to == "" || !c.srv.domains[to]:
		se = &wire.StreamError{Condition: wire.CondHostUnknown, Text: "this server does not serve " + h.To}
	case c.domain != "" && to != c.domain:
		se = &wire.StreamError{Condition: wire.CondHostUnknown, Text: "the domain cannot change on stream restart"}
	}
	if se != nil {
		c.headerThenError(se)
		return se
	}
	c.domain = to
	return c.t.writeHeader(router.NewID(), c.domain, c.lang, c.features())
}

func versionOK(v string) bool {
	major, _, _ := strings.Cut(v, ".")
	return major == "1"
}

func (c *conn) headerThenError(se *wire.StreamError) {
	from := c.domain
	if from == "" && len(c.srv.cfg.Domains) > 0 {
		from = c.srv.cfg.Domains[0]
	}
	_ = c.t.writeHeader(router.NewID(), from, "en", nil)
	c.t.closeStream(se)
}

func (c *conn) features() []byte {
	var b []byte
	switch {
	case c.authenticated:
		if c.sess == nil { // bound already after SASL2 with Bind2
			b = append(b, "<bind xmlns='"+xep.NSBind+"'/><session xmlns='"+xep.NSSession+"'><optional/></session>"...)
		}
		if !c.smEnabled() { // Bind2 may have enabled it; offered again, clients try to resume
			b = append(b, "<sm xmlns='"+sm.NS+"'/>"...)
		}
		b = append(b, "<csi xmlns='"+nsCSI+"'/>"...)
	case !c.t.secure() && c.t.kind() == "tcp":
		b = append(b, "<starttls xmlns='"+xep.NSTLS+"'>"...)
		if c.srv.cfg.RequireTLS {
			b = append(b, "<required/>"...)
		}
		b = append(b, "</starttls>"...)
		if !c.srv.cfg.RequireTLS {
			b = c.appendMechanisms(b)
		}
	default:
		b = c.appendMechanisms(b)
	}
	if c.authenticated || c.t.secure() || !c.srv.cfg.RequireTLS {
		for _, f := range c.srv.reg.StreamFeatures() {
			if e := f(c.authenticated); e != nil {
				b = e.AppendXML(b, "")
			}
		}
	}
	return b
}

func (c *conn) bindings() auth.ChannelBindings {
	cs := c.t.tlsState()
	if cs == nil {
		return auth.ChannelBindings{}
	}
	cb := auth.BindingsFromTLS(cs)
	if leaf := c.srv.leafFor(c.domain); leaf != nil {
		cb.TLSServerEndPoint = auth.ServerEndPoint(leaf)
	}
	return cb
}

func (c *conn) appendMechanisms(b []byte) []byte {
	cb := c.bindings()
	mechs := c.srv.auth.Mechanisms(c.t.secure(), cb)
	b = append(b, "<mechanisms xmlns='"+xep.NSSASL+"'>"...)
	for _, m := range mechs {
		b = append(b, "<mechanism>"+m+"</mechanism>"...)
	}
	b = append(b, "</mechanisms>"...)
	if types := cb.Types(); len(types) > 0 {
		// XEP-0440: tell clients which channel bindings we support.
		b = append(b, "<sasl-channel-binding xmlns='"+xep.NSSASLCB+"'>"...)
		for _, t := range types {
			b = append(b, "<channel-binding type='"+t+"'/>"...)
		}
		b = append(b, "</sasl-channel-binding>"...)
	}
	return c.appendSASL2(b, mechs, cb)
}

// handle processes one top-level element according to the stream state.
func (c *conn) handle(st *wire.Stanza) error {
	if c.sess != nil {
		return c.handleBound(st)
	}
	switch {
	case !c.authenticated && !c.preauthRate.Take(1):
		limitHits.WithLabelValues(limitPreAuthStanzas).Inc()
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many requests before authentication"}
	case st.NS == xep.NSTLS && st.Name == "starttls":
		return c.startTLS()
	case st.NS == xep.NSSASL2 || c.s2 != nil:
		return c.handleSASL2(st)
	case st.NS == xep.NSSASL:
		return c.handleSASL(st)
	case st.IsStanza():
		return c.handleUnbound(st)
	case c.authenticated && st.NS == sm.NS && st.Name == "resume":
		return c.resume(st)
	case c.authenticated && st.NS == sm.NS && st.Name == "enable":
		return c.writeNonza(smFailed("unexpected-request", nil))
	}
	return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected <" + st.Name + "/> in " + st.NS}
}

func (c *conn) startTLS() error {
	if c.t.secure() || c.authenticated || c.t.kind() != "tcp" {
		_ = c.t.writeRaw([]byte("<failure xmlns='" + xep.NSTLS + "'/>"))
		_ = c.t.flush()
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "TLS is already negotiated or not available here"}
	}
	if err := c.t.writeRaw([]byte("<proceed xmlns='" + xep.NSTLS + "'/>")); err != nil {
		return err
	}
	if err := c.t.flush(); err != nil {
		return err
	}
	if err := c.t.startTLS(c.srv.cfg.TLS); err != nil {
		c.debug("TLS handshake failed", "err", err)
		c.t.close()
		return io.EOF
	}
	c.t.restart()
	return errRestart
}

// handleUnbound handles stanzas before resource binding.
func (c *conn) handleUnbound(st *wire.Stanza) error {
	if !c.authenticated {
		if st.Name == "iq" && c.srv.register != nil &&
			(st.Child(xep.NSRegister, "query") != nil || st.Child(xep.NSPARS, "preauth") != nil) &&
			(c.t.secure() || !c.srv.cfg.RequireTLS) {
			c.preauth.Domain, c.preauth.RemoteAddr, c.preauth.Secure = c.domain, c.t.remoteAddr(), c.t.secure()
			if reply := c.srv.register.PreAuthStream(ctx, st, &c.preauth); reply != nil {
				if err := c.t.write(reply); err != nil {
					return err
				}
				return c.t.flush()
			}
			return nil
		}
		if !c.t.secure() && c.srv.cfg.RequireTLS {
			return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "use STARTTLS first"}
		}
		return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "authenticate first"}
	}
	if st.Name == "iq" && st.Type == "set" && st.Child(xep.NSBind, "bind") != nil {
		return c.bind(st)
	}
	if st.Name == "iq" && st.Child(xep.NSSession, "session") != nil {
		// RFC 3921 session establishment is a no-op kept for old clients.
		if err := c.t.write(wire.IQResult(st.WithFromTo(st.From, ""), nil)); err != nil {
			return err
		}
		return c.t.flush()
	}
	return &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "bind a resource first"}
}

func (c *conn) writeIQ(st *wire.Stanza) error {
	if err := c.t.write(st); err != nil {
		return err
	}
	return c.t.flush()
}

func (c *conn) bind(st *wire.Stanza) error {
	res := strings.TrimSpace(st.Child(xep.NSBind, "bind").ChildText(xep.NSBind, "resource"))
	if res == "" {
		res = "parley-" + router.NewID()[:8]
	}
	full, err := jid.New(c.username, c.domain, res)
	if err != nil || len(res) > 1023 {
		return c.writeIQ(wire.ErrorReply(st.WithFromTo("", ""), wire.ErrBadRequest, "the resource is not valid"))
	}
	reply := wire.IQResult(st.WithFromTo("", ""), wire.NewElement(xep.NSBind, "bind").Add(
		wire.NewElement(xep.NSBind, "jid").AddText(full.String())))
	_, err = c.openSession(full, func(s *session) error {
		s.queueFirst(reply)
		return nil
	})
	if errors.Is(err, router.ErrTooManySessions) {
		return c.writeIQ(wire.ErrorReply(st.WithFromTo("", ""), wire.ErrResourceConstraint, "too many sessions for this account"))
	}
	var refused *bindRefusedError
	if errors.As(err, &refused) {
		// The cluster's session registry is out of reach: no session can
		// be bound safely; the client may try again.
		c.logger().Warn("cannot bind", "err", err)
		return c.writeIQ(wire.ErrorReply(st.WithFromTo("", ""), wire.ErrInternalServerError, "sessions cannot be bound right now; try again later"))
	}
	return err
}

// bindRefusedError is the router's reason for not binding a session.
type bindRefusedError struct{ err error }

func (e *bindRefusedError) Error() string { return "binding refused: " + e.err.Error() }
func (e *bindRefusedError) Unwrap() error { return e.err }

// openSession binds full to a new session read by this connection (RFC
// 6120 §7.7.2.2: a session with the same full JID is replaced). before
// puts first what must precede anything routed to the session — the bind
// result, or the SASL2 <success/> with Bind2 — and sets up its state; it
// runs once the router knows the session and before its writer starts.
// When the router does not bind it the error is a *bindRefusedError
// (wrapping router.ErrTooManySessions when the account has too many);
// other errors are the transport's.
func (c *conn) openSession(full jid.JID, before func(s *session) error) (*session, error) {
	s := newSession(c, full)
	replaced, err := c.srv.router.Bind(s)
	if err != nil {
		return nil, &bindRefusedError{err}
	}
	if replaced != nil {
		replaced.Close(&wire.StreamError{Condition: wire.CondConflict, Text: "replaced by a new session with the same resource"})
	}
	c.mu.Lock()
	c.sess = s
	c.timer.Stop()
	c.mu.Unlock()
	if err := before(s); err != nil {
		// The connection broke: end the session like any other.
		s.start()
		c.srv.terminate(s, nil)
		return nil, err
	}
	s.start()
	c.logger().Info("session bound", "jid", full.String())
	c.srv.reg.FireBound(ctx, s)
	c.startPing(s)
	return s, nil
}

// handleBound handles everything after binding.
func (c *conn) handleBound(st *wire.Stanza) error {
	c.limiter.wait(ctx)
	if !st.IsStanza() {
		switch st.NS {
		case xep.NSTLS, xep.NSSASL:
			return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "negotiation is already complete"}
		}
		return c.handleSMBound(st)
	}
	s := c.sess
	if st.Name == "iq" && (st.Type == "get" || st.Type == "set") {
		// A query sees what the client sent before it: a message still
		// waiting for its archive commit would be missing from the
		// client's own MAM query right after it (read your writes), as
		// it never was before the pipeline.
		s.settled()
	}
	hold := module.NewHold()
	s.beginRequest()
	err := c.routeBound(st, hold)
	s.endRequest()
	if err != nil {
		return err
	}
	// Counted only once routing returned and the writes it queued are
	// committed: storage and delivery queues have the stanza, so an <a/>
	// never acknowledges something not committed.
	s.handled(hold)
	return nil
}

func (c *conn) routeBound(st *wire.Stanza, hold *module.Hold) error {
	kindIn[wire.KindIndex(st.Name)].Inc()
	if c.isPong(st) {
		return nil
	}
	if st.Name == "iq" && st.Child(xep.NSSession, "session") != nil && (st.To == "" || st.To == c.domain) {
		return c.sess.Send(wire.IQResult(st.WithFromTo(c.sess.jid.String(), ""), nil))
	}
	if c.fullOf != c.sess {
		// The session's JID as a string, once per session rather than
		// once per stanza.
		c.full, c.fullOf = c.sess.jid.String(), c.sess
	}
	if st.From != c.full {
		// RFC 6120 §8.1.2.1: the server stamps 'from' with the full JID,
		// whatever the client put there.
		st = st.WithAttr("from", c.full)
	}
	c.srv.router.Route(ctx, st, module.Origin{Kind: module.FromClient, Session: c.sess, Hold: hold, From: c.sess.jid})
	return nil
}

// startPing arms the timer that pings an idle client (XEP-0199) and
// closes connections that stay silent; no goroutine waits meanwhile.
func (c *conn) startPing(s *session) {
	if c.srv.cfg.PingInterval <= 0 {
		return
	}
	c.mu.Lock()
	c.timer.Stop()
	c.timer = time.AfterFunc(c.srv.cfg.PingInterval, func() { c.pingTick(s) })
	c.mu.Unlock()
}

// pingTick runs on the ping timer: it sends a ping when the client has
// been silent for the interval, and ends the stream when nothing came
// within the timeout after a ping (any input counts as an answer).
func (c *conn) pingTick(s *session) {
	interval, timeout := c.srv.cfg.PingInterval, c.srv.cfg.PingTimeout
	s.mu.Lock()
	mine := s.owner == c && !s.ended
	s.mu.Unlock()
	if !mine {
		return // hibernated or resumed elsewhere; the new owner pings
	}
	now, last := time.Now(), c.t.lastActivity()
	c.mu.Lock()
	if c.pingID != "" {
		waited := now.Sub(c.pingSent)
		switch {
		case last.After(c.pingSent):
			c.pingID = ""
		case waited >= timeout:
			c.mu.Unlock()
			// The connection is presumed dead: close it at once (the
			// session hibernates when it is resumable).
			c.t.closeStream(&wire.StreamError{Condition: wire.CondConnectionTimeout, Text: "no answer to ping"})
			return
		default:
			c.timer.Reset(timeout - waited)
			c.mu.Unlock()
			return
		}
	}
	if idle := now.Sub(last); idle < interval {
		c.timer.Reset(interval - idle)
		c.mu.Unlock()
		return
	}
	id := "ping-" + router.NewID()[:10]
	c.pingID, c.pingSent = id, now
	c.timer.Reset(timeout)
	c.mu.Unlock()
	_ = s.Send(wire.FromElement(wire.NewElement(wire.NSClient, "iq", "type", "get", "id", id,
		"from", c.domain, "to", s.jid.String()).Add(wire.NewElement(xep.NSPing, "ping"))))
}

// isPong reports whether st answers our ping (then it goes no further).
func (c *conn) isPong(st *wire.Stanza) bool {
	if st.Name != "iq" || (st.Type != "result" && st.Type != "error") || (st.To != "" && st.To != c.domain) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pingID == "" || st.ID != c.pingID {
		return false
	}
	c.pingID = ""
	return true
}

// handleSASL runs RFC 6120 §6 authentication.
func (c *conn) handleSASL(st *wire.Stanza) error {
	if c.authenticated {
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "already authenticated"}
	}
	switch st.Name {
	case "auth":
		if c.neg != nil {
			return c.saslFailure("malformed-request", "an authentication is already in progress")
		}
		if !c.t.secure() && c.srv.cfg.RequireTLS {
			return c.saslFailure("encryption-required", "use STARTTLS before authenticating")
		}
		c.mech = st.Attr("mechanism")
		if !c.srv.throttle.Allowed(c.t.remoteAddr()) {
			countAuth(c.mech, "throttled")
			return c.saslFailure("temporary-auth-failure", "too many failed attempts, try again later")
		}
		neg, err := c.srv.auth.Start(ctx, c.mech, c.domain, c.t.secure(), c.bindings())
		if err != nil {
			return c.saslError(err)
		}
		neg.SetGate(c.throttleGate)
		c.neg = neg
		text := strings.TrimSpace(st.Tree().Text())
		if text == "" {
			return c.saslWrite("<challenge xmlns='" + xep.NSSASL + "'/>")
		}
		return c.saslStep(text)
	case "response":
		if c.neg == nil {
			return c.saslFailure("malformed-request", "no authentication in progress")
		}
		return c.saslStep(strings.TrimSpace(st.Tree().Text()))
	case "abort":
		c.neg = nil
		return c.saslFailure("aborted", "")
	}
	return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected SASL element " + st.Name}
}

func (c *conn) saslStep(text string) error {
	var in []byte
	if text != "=" {
		var err error
		if in, err = base64.StdEncoding.DecodeString(text); err != nil {
			c.neg = nil
			return c.saslFailure("incorrect-encoding", "the data is not valid base64")
		}
	}
	out, done, err := c.neg.Step(ctx, in)
	if err != nil {
		return c.saslError(err)
	}
	if !done {
		return c.saslWrite("<challenge xmlns='" + xep.NSSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>")
	}
	user := c.neg.Username()
	c.neg = nil
	c.authSucceeded(user)
	success := "<success xmlns='" + xep.NSSASL + "'/>"
	if len(out) > 0 {
		success = "<success xmlns='" + xep.NSSASL + "'>" + base64.StdEncoding.EncodeToString(out) + "</success>"
	}
	if err := c.saslWrite(success); err != nil {
		return err
	}
	c.t.restart()
	return errRestart
}

// throttleGate runs once the client named its account and before its
// proof is verified (auth.Negotiation.SetGate): an account someone has
// been guessing at is slowed down here, and an attempt that would wait
// too long is refused, with the same answer whatever the password.
func (c *conn) throttleGate(ctx context.Context, bare string) error {
	wait, ok := c.srv.throttle.Admit(c.t.remoteAddr(), bare)
	if !ok {
		countAuth(c.mech, "throttled")
		return &auth.Failure{Condition: auth.CondTemporaryAuthFailure, Text: "too many failed attempts, try again later"}
	}
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// authSucceeded marks the stream authenticated as user (SASL or SASL2).
func (c *conn) authSucceeded(user string) {
	bare := user + "@" + c.domain
	c.srv.throttle.Succeeded(c.t.remoteAddr(), bare)
	countAuth(c.mech, "success")
	c.authenticated = true
	c.username = user
	c.adm.authenticated()
	c.t.setBudget(nil)
	c.preauthRate = nil
	c.logger().Info("authenticated", "mechanism", c.mech)
}

func (c *conn) saslError(err error) error { return c.authError(err, c.saslFailure) }

// authError reports a failed negotiation with failure (SASL's or SASL2's
// <failure/>); wrong credentials count against the address and account.
func (c *conn) authError(err error, failure func(cond, text string) error) error {
	neg := c.neg
	c.neg = nil
	var f *auth.Failure
	if errors.As(err, &f) {
		if f.Condition == "not-authorized" {
			user := ""
			if neg != nil {
				user = neg.Username()
			}
			bare := ""
			if user != "" {
				bare = user + "@" + c.domain
			}
			c.srv.throttle.Failed(c.t.remoteAddr(), bare)
			c.strike("not-authorized")
		}
		return failure(f.Condition, f.Text)
	}
	c.logger().Error("SASL failed", "err", err)
	return failure("temporary-auth-failure", "")
}

func (c *conn) saslFailure(cond, text string) error {
	return c.authFailure("<failure xmlns='"+xep.NSSASL+"'><"+cond+"/>", cond, text)
}

// authFailure writes a <failure/> that starts with open and holds the
// condition cond, and counts it against the stream's attempts.
func (c *conn) authFailure(open, cond, text string) error {
	countAuth(c.mech, "failure")
	b := open
	if text != "" {
		b += "<text xml:lang='en'>" + wire.EscapeText(text) + "</text>"
	}
	b += "</failure>"
	if err := c.saslWrite(b); err != nil {
		return err
	}
	// Only wrong credentials count against the stream: clients probe
	// mechanisms and channel-binding types they cannot use and fall back
	// (RFC 6120 §6.4.5 retries). Other failures have their own, higher cap.
	c.saslAttempts++
	if cond == "not-authorized" {
		c.saslFailures++
	}
	if c.saslFailures >= maxSASLFailures || c.saslAttempts >= maxSASLAttempts {
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "too many failed authentication attempts"}
	}
	return nil
}

func (c *conn) saslWrite(s string) error {
	if err := c.t.writeRaw([]byte(s)); err != nil {
		return err
	}
	return c.t.flush()
}

// offence reports whether a stream error is the client's doing (broken
// or forbidden XML, exceeded limits, protocol abuse), which counts toward
// a ban of its address; errors of the server's own making do not.
func offence(cond string) bool {
	switch cond {
	case wire.CondNotWellFormed, wire.CondRestrictedXML, wire.CondPolicyViolation, wire.CondBadFormat,
		wire.CondInvalidNamespace, wire.CondUnsupportedEncoding, wire.CondUnsupportedStanzaType,
		wire.CondInvalidXML, wire.CondNotAuthorized, wire.CondConnectionTimeout:
		return true
	}
	return false
}

// strike counts an offence of this connection's address (auth.Bans).
func (c *conn) strike(reason string) {
	if c.srv.cfg.Bans.Strike(c.t.remoteAddr(), reason) {
		bansTotal.Inc()
		c.logger().Warn("address banned after repeated abuse", "reason", reason)
	}
}
