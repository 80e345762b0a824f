package c2s

import (
	"encoding/base64"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/sm"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// XEP-0388 SASL2: authentication without a stream restart, with the
// session set up inline — XEP-0386 Bind2, XEP-0198 resumption, XEP-0484
// FAST tokens — so that a client is online after one round trip (two for
// SCRAM). The SASL mechanisms themselves are package auth's.

// sasl2Auth is what an <authenticate/> asked for beyond authentication,
// kept until the exchange ends.
type sasl2Auth struct {
	ua         auth.UserAgent
	bind       *wire.Element // XEP-0386 <bind/>, nil when none
	resume     *wire.Element // XEP-0198 <resume/>, nil when none
	tokenMech  string        // XEP-0484 <request-token mechanism/>
	invalidate bool          // XEP-0484 <fast invalidate='true'/>
	upgrades   []string      // XEP-0480 tasks the client asked for

	// After the mechanism succeeded: the upgrade tasks still to run, the
	// mechanism's additional data (for the first <continue/>), and the
	// salt and count handed out for the task under way.
	tasks       []string
	additional  []byte
	taskStarted bool
	taskSalt    []byte
	taskIter    int
}

// Bounds on what a client describes itself with.
const (
	maxUserAgentText = 256 // <software/>, <device/>, in bytes
	maxBind2Tag      = 64  // Bind2 <tag/>, in bytes
)

// uuidRE: XEP-0388 §4 wants a UUID as the user-agent id.
var uuidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)

// appendSASL2 adds the <authentication/> feature: the mechanisms offered
// (the same as SASL's) and what can be negotiated inline.
func (c *conn) appendSASL2(b []byte, mechs []string, cb auth.ChannelBindings) []byte {
	if !c.t.secure() || len(mechs) == 0 {
		return b // XEP-0388 §8: only after TLS, and never without a mechanism
	}
	b = append(b, "<authentication xmlns='"+xep.NSSASL2+"'>"...)
	for _, m := range mechs {
		b = append(b, "<mechanism>"+m+"</mechanism>"...)
	}
	b = append(b, "<inline><bind xmlns='"+xep.NSBind2+"'><inline>"...)
	for _, f := range c.bind2Features() {
		b = append(b, "<feature var='"+f+"'/>"...)
	}
	b = append(b, "</inline></bind>"...)
	if c.srv.cfg.ResumeTimeout > 0 {
		b = append(b, "<sm xmlns='"+sm.NS+"'/>"...)
	}
	if fm := c.srv.cfg.FAST.Mechanisms(cb); len(fm) > 0 {
		b = append(b, "<fast xmlns='"+xep.NSFAST+"'>"...)
		for _, m := range fm {
			b = append(b, "<mechanism>"+m+"</mechanism>"...)
		}
		b = append(b, "</fast>"...)
	}
	b = append(b, "</inline>"...)
	for _, t := range c.srv.auth.UpgradeTasks() {
		b = append(b, "<upgrade xmlns='"+xep.NSSASLUpgrade+"'>"+t+"</upgrade>"...)
	}
	return append(b, "</authentication>"...)
}

// handleSASL2 runs XEP-0388 authentication. While an exchange runs only
// its elements may come (§4.3: anything else ends the stream).
func (c *conn) handleSASL2(st *wire.Stanza) error {
	if st.NS != xep.NSSASL2 {
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "only SASL2 elements may be sent during SASL2 authentication"}
	}
	if c.authenticated {
		// §7.7: after <success/> another <authenticate/> is a stream error.
		return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "already authenticated"}
	}
	switch st.Name {
	case "authenticate":
		if c.neg != nil {
			return &wire.StreamError{Condition: wire.CondPolicyViolation, Text: "an authentication is already in progress"}
		}
		return c.sasl2Start(st)
	case "response":
		if c.s2 == nil {
			return c.sasl2Failure(auth.CondMalformedRequest, "no authentication in progress")
		}
		if len(c.s2.tasks) > 0 {
			c.neg, c.s2 = nil, nil
			return c.sasl2Failure(auth.CondMalformedRequest, "the mechanism is done, a task was offered")
		}
		in, err := decodeSASL2(st.Tree().Text())
		if err != nil {
			c.neg, c.s2 = nil, nil
			return c.sasl2Failure(auth.CondIncorrectEncoding, "the data is not valid base64")
		}
		return c.sasl2Step(in)
	case "abort":
		c.neg, c.s2 = nil, nil
		return c.sasl2Failure(auth.CondAborted, "")
	case "next":
		a := c.s2
		if a == nil || len(a.tasks) == 0 || a.taskStarted || st.Attr("task") != a.tasks[0] {
			c.neg, c.s2 = nil, nil
			return c.sasl2Failure(auth.CondMalformedRequest, "no such task was offered")
		}
		return c.upgradeStart(a)
	case "task-data":
		a := c.s2
		if a == nil || !a.taskStarted {
			c.neg, c.s2 = nil, nil
			return c.sasl2Failure(auth.CondMalformedRequest, "no task is under way")
		}
		return c.upgradeFinish(a, st.Tree())
	}
	return &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected SASL2 element " + st.Name}
}

// decodeSASL2 decodes SASL2 data: base64 without the SASL "=" special
// case (an empty element is empty data).
func decodeSASL2(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimSpace(s))
}

// parseAuthenticate reads what an <authenticate/> asks for; a bad part is
// malformed-request with a text naming it.
func (c *conn) parseAuthenticate(req *wire.Element, cb auth.ChannelBindings) (*sasl2Auth, string) {
	a := &sasl2Auth{}
	if ua := req.Child(xep.NSSASL2, "user-agent"); ua != nil {
		a.ua = auth.UserAgent{ID: ua.AttrValue("id"), Software: ua.ChildText(xep.NSSASL2, "software"),
			Device: ua.ChildText(xep.NSSASL2, "device")}
		switch {
		case ua.HasAttr("id") && !uuidRE.MatchString(a.ua.ID):
			return nil, "the user-agent id must be a UUID"
		case len(a.ua.Software) > maxUserAgentText || len(a.ua.Device) > maxUserAgentText:
			return nil, "the user-agent software and device may have at most 256 bytes each"
		}
		a.ua.ID = strings.ToLower(a.ua.ID)
	}
	if b := req.Child(xep.NSBind2, "bind"); b != nil {
		if tag := b.Child(xep.NSBind2, "tag"); tag != nil && !validTag(tag.Text()) {
			return nil, "the Bind2 tag must be a valid resource of at most 64 bytes"
		}
		a.bind = b
	}
	a.resume = req.Child(sm.NS, "resume")
	for _, u := range req.ChildrenNamed(xep.NSSASLUpgrade, "upgrade") {
		if t := strings.TrimSpace(u.Text()); auth.IsUpgradeTask(t) && !slices.Contains(a.upgrades, t) {
			a.upgrades = append(a.upgrades, t)
		}
	}
	if rt := req.Child(xep.NSFAST, "request-token"); rt != nil {
		a.tokenMech = rt.AttrValue("mechanism")
		ok := false
		for _, m := range c.srv.cfg.FAST.Mechanisms(cb) {
			ok = ok || m == a.tokenMech
		}
		if !ok {
			return nil, "request-token names a mechanism that is not offered"
		}
	}
	if f := req.Child(xep.NSFAST, "fast"); f != nil {
		v := f.AttrValue("invalidate")
		a.invalidate = v == "true" || v == "1"
	}
	return a, ""
}

func validTag(tag string) bool {
	return tag != "" && len(tag) <= maxBind2Tag && utf8.ValidString(tag) && resourceOK(tag)
}

// sasl2Start handles <authenticate mechanism=…/>.
func (c *conn) sasl2Start(st *wire.Stanza) error {
	if !c.t.secure() {
		return c.sasl2Failure(auth.CondEncryptionRequired, "use TLS before authenticating")
	}
	req := st.Tree()
	c.mech = req.AttrValue("mechanism")
	cb := c.bindings()
	a, bad := c.parseAuthenticate(req, cb)
	if bad != "" {
		return c.sasl2Failure(auth.CondMalformedRequest, bad)
	}
	if !c.srv.throttle.Allowed(c.t.remoteAddr()) {
		countAuth(c.mech, "throttled")
		return c.sasl2Failure(auth.CondTemporaryAuthFailure, "too many failed attempts, try again later")
	}
	var neg *auth.Negotiation
	var err error
	if auth.IsHTMechanism(c.mech) {
		neg, err = c.srv.cfg.FAST.Start(c.srv.auth, c.mech, c.domain, a.ua.ID, c.t.secure(), cb)
	} else {
		neg, err = c.srv.auth.Start(ctx, c.mech, c.domain, c.t.secure(), cb)
		if err == nil {
			// XEP-0474: sign what this <authentication/> offered.
			neg.ProtectDowngrade(c.srv.auth.Mechanisms(c.t.secure(), cb), cb.Types())
		}
	}
	if err != nil {
		return c.authError(err, c.sasl2Failure)
	}
	neg.SetGate(c.throttleGate)
	c.neg, c.s2 = neg, a
	ir := req.Child(xep.NSSASL2, "initial-response")
	if ir == nil {
		return c.saslWrite("<challenge xmlns='" + xep.NSSASL2 + "'/>")
	}
	in, err := decodeSASL2(ir.Text())
	if err != nil {
		c.neg, c.s2 = nil, nil
		return c.sasl2Failure(auth.CondIncorrectEncoding, "the initial response is not valid base64")
	}
	return c.sasl2Step(in)
}

func (c *conn) sasl2Step(in []byte) error {
	out, done, err := c.neg.Step(ctx, in)
	if err != nil {
		c.s2 = nil
		return c.authError(err, c.sasl2Failure)
	}
	if !done {
		return c.saslWrite("<challenge xmlns='" + xep.NSSASL2 + "'>" + base64.StdEncoding.EncodeToString(out) + "</challenge>")
	}
	if tasks := c.upgradesToRun(); len(tasks) > 0 {
		c.s2.tasks, c.s2.additional = tasks, out
		return c.sasl2Continue()
	}
	return c.sasl2Success(out)
}

// upgradesToRun are the XEP-0480 upgrade tasks the client asked for that
// would improve the account's credentials. They need the password, so a
// token login runs none (XEP-0484 §5: no further steps for tokens).
func (c *conn) upgradesToRun() []string {
	if len(c.s2.upgrades) == 0 || !c.neg.PasswordBased() {
		return nil
	}
	bare := c.neg.Username() + "@" + c.domain
	var run []string
	for _, t := range c.s2.upgrades {
		needed, err := c.srv.auth.UpgradeNeeded(ctx, bare, t)
		if err != nil {
			c.logger().Warn("SASL2 upgrade check", "task", t, "err", err)
			continue
		}
		if needed {
			run = append(run, t)
		}
	}
	return run
}

// sasl2Continue asks the client for the next task (XEP-0388 §4.6); the
// first <continue/> carries the mechanism's additional data.
func (c *conn) sasl2Continue() error {
	a := c.s2
	b := "<continue xmlns='" + xep.NSSASL2 + "'>"
	if len(a.additional) > 0 {
		b += "<additional-data>" + base64.StdEncoding.EncodeToString(a.additional) + "</additional-data>"
		a.additional = nil
	}
	b += "<tasks><task>" + a.tasks[0] + "</task></tasks><text xml:lang='en'>" +
		wire.EscapeText("stronger credentials for "+strings.TrimPrefix(a.tasks[0], "UPGR-")+" can be stored") + "</text></continue>"
	return c.saslWrite(b)
}

// upgradeStart answers <next task='UPGR-SCRAM-…'/> with the salt and
// iteration count to derive the SaltedPassword with (XEP-0480 §6).
func (c *conn) upgradeStart(a *sasl2Auth) error {
	salt, iter, err := c.srv.auth.UpgradeSalt()
	if err != nil {
		c.neg, c.s2 = nil, nil
		return c.sasl2Failure(auth.CondTemporaryAuthFailure, "")
	}
	a.taskStarted, a.taskSalt, a.taskIter = true, salt, iter
	return c.saslWrite("<task-data xmlns='" + xep.NSSASL2 + "'><salt xmlns='" + xep.NSSCRAMUpgrade +
		"' iterations='" + strconv.Itoa(iter) + "'>" + base64.StdEncoding.EncodeToString(salt) + "</salt></task-data>")
}

// upgradeFinish stores the credential from the client's SaltedPassword,
// then goes on with the next task or succeeds.
func (c *conn) upgradeFinish(a *sasl2Auth, data *wire.Element) error {
	h := data.Child(xep.NSSCRAMUpgrade, "hash")
	salted, err := decodeSASL2(h.Text())
	if err != nil || len(salted) == 0 {
		c.neg, c.s2 = nil, nil
		return c.sasl2Failure(auth.CondMalformedRequest, "expected <hash xmlns='"+xep.NSSCRAMUpgrade+"'> with the base64 SaltedPassword")
	}
	bare := c.neg.Username() + "@" + c.domain
	if err := c.srv.auth.Upgrade(ctx, bare, a.tasks[0], a.taskSalt, a.taskIter, salted); err != nil {
		c.neg, c.s2 = nil, nil
		var f *auth.Failure
		if errors.As(err, &f) {
			return c.sasl2Failure(f.Condition, f.Text)
		}
		c.logger().Error("SASL2 upgrade", "task", a.tasks[0], "err", err)
		return c.sasl2Failure(auth.CondTemporaryAuthFailure, "")
	}
	c.logger().Info("credentials upgraded", "task", a.tasks[0])
	a.tasks, a.taskStarted, a.taskSalt = a.tasks[1:], false, nil
	if len(a.tasks) > 0 {
		return c.sasl2Continue()
	}
	return c.sasl2Success(nil)
}

// sasl2Success finishes a successful exchange: the stream is
// authenticated, then tokens, resumption and binding are handled and the
// outcome of all of them goes into one <success/>, followed by the
// features of the stream (XEP-0388 §4.4; none after a resumption).
func (c *conn) sasl2Success(additional []byte) error {
	neg, a := c.neg, c.s2
	c.neg, c.s2 = nil, nil
	user := neg.Username()
	bare := user + "@" + c.domain
	c.authSucceeded(user)

	var inner []string // what <success/> carries besides the identity
	if len(additional) > 0 {
		inner = append(inner, "<additional-data>"+base64.StdEncoding.EncodeToString(additional)+"</additional-data>")
	}
	tok, err := c.srv.cfg.FAST.Complete(ctx, neg, bare, a.ua, a.tokenMech, a.invalidate)
	if err != nil {
		// The login stands; the client keeps using its password.
		c.logger().Warn("FAST token not issued", "err", err)
	}
	tokenXML := ""
	if tok != nil {
		tokenXML = "<token xmlns='" + xep.NSFAST + "' expiry='" + tok.Expiry.UTC().Format(time.RFC3339) +
			"' token='" + wire.EscapeAttr(tok.Token) + "'/>"
	}
	success := func(identity string, parts ...string) string {
		return "<success xmlns='" + xep.NSSASL2 + "'>" + strings.Join(inner, "") +
			"<authorization-identifier>" + wire.EscapeText(identity) + "</authorization-identifier>" +
			strings.Join(parts, "") + tokenXML + "</success>"
	}

	if a.resume != nil {
		c.inline = &inlineResume{success: func(s *session, resumed string) string {
			return success(s.jid.String(), resumed)
		}}
		err := c.resume(wire.FromElement(a.resume))
		failed := c.inline.failed
		c.inline = nil
		if failed == "" {
			return err // resumed: the stream is established, no features (XEP-0198 §7)
		}
		inner = append(inner, failed) // and bind a new session, as if not asked to resume
	}
	if a.bind != nil {
		done, err := c.bind2(a, func(s *session, bound string) error {
			if err := c.t.writeRaw([]byte(success(s.jid.String(), bound))); err != nil {
				return err
			}
			return c.writeFeatures()
		})
		if done || err != nil {
			return err
		}
		// Not bound (too many sessions): the client may still try the
		// RFC 6120 way, which tells it why.
	}
	if err := c.t.writeRaw([]byte(success(bare))); err != nil {
		return err
	}
	return c.writeFeatures()
}

// writeFeatures sends the features of the stream as it is now, without a
// restart (after SASL2). The prefix is declared so that the element also
// stands alone in a WebSocket message.
func (c *conn) writeFeatures() error {
	b := append([]byte("<stream:features xmlns:stream='"+wire.NSStream+"'>"), c.features()...)
	if err := c.t.writeRaw(append(b, "</stream:features>"...)); err != nil {
		return err
	}
	return c.t.flush()
}

func (c *conn) sasl2Failure(cond, text string) error {
	return c.authFailure("<failure xmlns='"+xep.NSSASL2+"'><"+cond+" xmlns='"+xep.NSSASL+"'/>", cond, text)
}
