package e2e

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsSASL1 = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsSASL2 = testserver.NSSASL2
	nsBind2 = testserver.NSBind2
	nsFAST  = testserver.NSFAST
	ua1     = "d4565fa7-4d72-4749-b3d3-740edbf87770"
	ua2     = "4a0f9c3e-0d6f-4b43-9c4e-1c2a2f4f8f11"
)

// sasl2Failure returns the condition of a SASL2 <failure/> (in the RFC
// 6120 namespace, as XEP-0388 §4.5 says).
func sasl2Failure(t *testing.T, st *wire.Stanza, err error) string {
	t.Helper()
	if err == nil {
		t.Fatalf("authentication succeeded: %s", st.Raw)
	}
	if st == nil || st.NS != nsSASL2 || st.Name != "failure" {
		t.Fatalf("not a SASL2 failure (%v): %v", err, st)
	}
	for _, e := range st.Tree().Elements() {
		if e.Name.Space == nsSASL1 {
			return e.Name.Local
		}
	}
	t.Fatalf("failure without an RFC 6120 condition: %s", st.Raw)
	return ""
}

func TestSASL2Features(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	// Before TLS: no SASL2 (XEP-0388 §8).
	raw := ts.Dial()
	raw.Write([]byte(streamOpen))
	rd := wire.NewReader(raw, wire.Limits{})
	if _, err := rd.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	if f, err := rd.Next(); err != nil || f.Child(nsSASL2, "authentication") != nil {
		t.Fatalf("SASL2 offered before TLS: %v %v", err, f)
	}

	c := ts.Connect()
	f := c.Features()
	a := f.Child(nsSASL2, "authentication")
	if a == nil {
		t.Fatalf("no SASL2 feature after TLS: %s", f.Raw)
	}
	var sasl1 []string
	for _, m := range f.Child(nsSASL1, "mechanisms").Elements() {
		sasl1 = append(sasl1, m.Text())
	}
	if got := testserver.SASL2Mechanisms(f); !slices.Equal(got, sasl1) || !slices.Contains(got, "SCRAM-SHA-256-PLUS") {
		t.Fatalf("SASL2 mechanisms %v, SASL mechanisms %v", got, sasl1)
	}
	inline := a.Child(nsSASL2, "inline")
	var bindFeatures []string
	for _, fe := range inline.Child(nsBind2, "bind").Child(nsBind2, "inline").Elements() {
		bindFeatures = append(bindFeatures, fe.AttrValue("var"))
	}
	for _, want := range []string{"urn:xmpp:carbons:2", "urn:xmpp:csi:0", "urn:xmpp:sm:3"} {
		if !slices.Contains(bindFeatures, want) {
			t.Errorf("Bind2 inline features %v lack %s", bindFeatures, want)
		}
	}
	if inline.Child("urn:xmpp:sm:3", "sm") == nil {
		t.Errorf("no inline resumption: %s", a)
	}
	var fast []string
	for _, m := range inline.Child(nsFAST, "fast").Elements() {
		fast = append(fast, m.Text())
	}
	if !slices.Equal(fast, []string{"HT-SHA-256-EXPR", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"}) {
		t.Errorf("FAST mechanisms on TLS 1.3: %v", fast)
	}

	// Without resumption and FAST neither is offered.
	ts2 := testserver.Start(t, func(c *server.Config) { c.C2S.ResumeTimeout = 0; c.Auth.FASTTokenLifetime = 0 })
	c2 := ts2.Connect()
	inline = c2.Features().Child(nsSASL2, "authentication").Child(nsSASL2, "inline")
	if inline.Child("urn:xmpp:sm:3", "sm") != nil || inline.Child(nsFAST, "fast") != nil {
		t.Fatalf("resumption or FAST offered while off: %s", inline)
	}
}

// TestSASL2SCRAM: SCRAM-SHA-256 and -PLUS over SASL2, with the XEP-0474
// hash of what was offered, no stream restart, then RFC 6120 binding.
func TestSASL2SCRAM(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	alice := ts.AddUser("alice", "pw1")
	for _, mech := range []string{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1"} {
		c := ts.Connect()
		f := c.Features()
		var cbTypes []string
		for _, e := range f.Child("urn:xmpp:sasl-cb:0", "sasl-channel-binding").Elements() {
			cbTypes = append(cbTypes, e.AttrValue("type"))
		}
		mechs := slices.Sorted(slices.Values(testserver.SASL2Mechanisms(f)))
		slices.Sort(cbTypes)
		var serverFirst string
		st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: mech, User: "alice", Password: "pw1", UserAgent: ua1,
			OnChallenge: func(d []byte) {
				if serverFirst == "" {
					serverFirst = string(d)
				}
			}})
		if err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
		if id := st.Tree().ChildText(nsSASL2, "authorization-identifier"); id != alice {
			t.Fatalf("%s: authorization-identifier %q", mech, id)
		}
		// XEP-0474: h is the hash of the sorted mechanisms and binding types.
		list := strings.Join(mechs, "\x1e") + "\x1f" + strings.Join(cbTypes, "\x1e")
		if mech == "SCRAM-SHA-256" || mech == "SCRAM-SHA-256-PLUS" {
			d := sha256.Sum256([]byte(list))
			if !strings.HasSuffix(serverFirst, ",h="+base64.StdEncoding.EncodeToString(d[:])) {
				t.Fatalf("%s: server-first %q lacks the SSDP hash of %q", mech, serverFirst, list)
			}
		}
		// No restart: features follow at once, with RFC 6120 binding.
		f = c.Features()
		if f.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind") == nil || f.Child(nsSASL2, "authentication") != nil {
			t.Fatalf("%s: features after SASL2 success: %s", mech, f.Raw)
		}
		c.Bind("desk")
		c.StartReader()
		if r := c.IQ("p1", "<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>"); r.Type != "result" {
			t.Fatalf("%s: ping after SASL2 login: %s", mech, r.Raw)
		}
		c.Close()
	}
}

// TestSASL2TLS12: on TLS 1.2 with the extended master secret, tls-unique
// is offered and a tls-unique-only client (mellium, like slixmpp) binds.
func TestSASL2TLS12(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	c := ts.ConnectTLS(&tls.Config{MaxVersion: tls.VersionTLS12})
	f := c.Features()
	if !strings.Contains(string(f.Raw), "type='tls-unique'") {
		t.Fatalf("tls-unique not offered on TLS 1.2: %s", f.Raw)
	}
	if err := c.Auth(f, "SCRAM-SHA-256-PLUS", "alice", "pw1"); err != nil {
		t.Fatalf("SCRAM-SHA-256-PLUS with tls-unique: %v", err)
	}
	c = ts.ConnectTLS(&tls.Config{MaxVersion: tls.VersionTLS12})
	f = c.Features()
	var fast []string
	for _, m := range f.Child(nsSASL2, "authentication").Child(nsSASL2, "inline").Child(nsFAST, "fast").Elements() {
		fast = append(fast, m.Text())
	}
	if !slices.Equal(fast, []string{"HT-SHA-256-EXPR", "HT-SHA-256-UNIQ", "HT-SHA-256-ENDP", "HT-SHA-256-NONE"}) {
		t.Fatalf("FAST mechanisms on TLS 1.2: %v", fast)
	}
	if _, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256-PLUS", User: "alice", Password: "pw1"}); err != nil {
		t.Fatalf("SASL2 SCRAM-SHA-256-PLUS with tls-unique: %v", err)
	}
}

// TestSASL2Failures: each malformed or refused request gets its RFC 6120
// condition inside a SASL2 <failure/>, and nothing is set up.
func TestSASL2Failures(t *testing.T) {
	t.Parallel()
	ts := testserver.Start(t)
	ts.AddUser("alice", "pw1")
	for _, tc := range []struct {
		name, send, cond string
	}{
		{"unknown mechanism", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='DIGEST-MD5'/>", "invalid-mechanism"},
		{"bad base64", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>%%%</initial-response></authenticate>", "incorrect-encoding"},
		{"user-agent id not a UUID", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" +
			b64("\x00alice\x00pw1") + "</initial-response><user-agent id='phone-1'/></authenticate>", "malformed-request"},
		{"user-agent too long", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" +
			b64("\x00alice\x00pw1") + "</initial-response><user-agent id='" + ua1 + "'><software>" +
			strings.Repeat("x", 300) + "</software></user-agent></authenticate>", "malformed-request"},
		{"bad Bind2 tag", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" +
			b64("\x00alice\x00pw1") + "</initial-response><bind xmlns='urn:xmpp:bind:0'><tag>" +
			strings.Repeat("t", 65) + "</tag></bind></authenticate>", "malformed-request"},
		{"token for a mechanism not offered", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" +
			b64("\x00alice\x00pw1") + "</initial-response><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-MD5-NONE'/></authenticate>", "malformed-request"},
		{"wrong password", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>" +
			b64("\x00alice\x00nope") + "</initial-response><bind xmlns='urn:xmpp:bind:0'/></authenticate>", "not-authorized"},
		{"response without authentication", "<response xmlns='urn:xmpp:sasl:2'>AAAA</response>", "malformed-request"},
		{"task without continue", "<next xmlns='urn:xmpp:sasl:2' task='HOTP-EXAMPLE'/>", "malformed-request"},
		{"abort", "<abort xmlns='urn:xmpp:sasl:2'/>", "aborted"},
		{"HT token without user-agent", "<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>" +
			b64("alice\x00"+strings.Repeat("x", 32)) + "</initial-response></authenticate>", "malformed-request"},
	} {
		c := ts.Connect()
		c.Features()
		c.Send("%s", tc.send)
		st := c.Next()
		if got := sasl2Failure(t, st, errNotSuccess(st)); got != tc.cond {
			t.Errorf("%s: condition %s, want %s: %s", tc.name, got, tc.cond, st.Raw)
		}
		// Nothing was bound: the stream is still unauthenticated.
		c.Send("<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>")
		if se := c.StreamError(); se == nil || se.Condition != "not-authorized" {
			t.Errorf("%s: after the failure a stanza got %v, want not-authorized", tc.name, se)
		}
	}

	// During an exchange only SASL2 elements may come.
	c := ts.Connect()
	c.Features()
	c.Send("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='SCRAM-SHA-256'/>")
	if st := c.Next(); st.Name != "challenge" {
		t.Fatalf("no initial response: %s", st.Raw)
	}
	c.Send("<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>")
	if se := c.StreamError(); se == nil || se.Condition != "policy-violation" {
		t.Fatalf("stanza during SASL2: %v", se)
	}

	// After success another <authenticate/> ends the stream (§7.7).
	c = ts.Connect()
	c.Features()
	if _, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "PLAIN", User: "alice", Password: "pw1"}); err != nil {
		t.Fatal(err)
	}
	c.Features()
	c.Send("<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>%s</initial-response></authenticate>", b64("\x00alice\x00pw1"))
	if se := c.StreamError(); se == nil || se.Condition != "policy-violation" {
		t.Fatalf("second authenticate: %v", se)
	}

	// Three wrong passwords end the stream, as with SASL.
	c = ts.Connect()
	c.Features()
	for i := range 3 {
		st, err := c.AuthenticateSASL2(testserver.SASL2{Mech: "SCRAM-SHA-256", User: "alice", Password: "wrong"})
		if cond := sasl2Failure(t, st, err); cond != "not-authorized" {
			t.Fatalf("attempt %d: %s", i, cond)
		}
	}
	if se := c.StreamError(); se == nil || se.Condition != "policy-violation" {
		t.Fatalf("after three failures: %v", se)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

type notSuccess struct{ raw string }

func (e notSuccess) Error() string { return "not success: " + e.raw }

func errNotSuccess(st *wire.Stanza) error {
	if st.Name == "success" {
		return nil
	}
	return notSuccess{string(st.Raw)}
}
