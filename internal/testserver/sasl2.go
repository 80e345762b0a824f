package testserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"mellium.im/sasl"

	"github.com/parley-xmpp/parley/auth"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// Namespaces of the SASL2 family (XEP-0388, XEP-0386, XEP-0484).
const (
	NSSASL2 = xep.NSSASL2
	NSBind2 = xep.NSBind2
	NSFAST  = xep.NSFAST
)

// SASL2 describes one XEP-0388 <authenticate/>.
type SASL2 struct {
	Mech     string // SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-256-PLUS, PLAIN or an HT-SHA-256-* mechanism
	User     string // localpart
	Password string // for SCRAM and PLAIN
	Token    string // for HT mechanisms
	// UserAgent is the user-agent id ("" sends no <user-agent/>).
	UserAgent string
	// Extra is raw XML added inside <authenticate/> (<bind/>, <resume/>,
	// <request-token/>, <fast/>, …).
	Extra string
	// OnChallenge, when set, sees every decoded challenge (e.g. to check the
	// XEP-0474 hash in a SCRAM server-first-message).
	OnChallenge func(data []byte)
	// Task answers the server's XEP-0388 <task-data/> for the task under
	// way with the inner XML of the client's <task-data/> (XEP-0480 upgrade
	// tasks). Without it a <continue/> is an error.
	Task func(task string, data *wire.Element) (string, error)
	// Continued, when set, is told each <continue/> the server sent.
	Continued func(st *wire.Stanza)
}

// SASL2Mechanisms lists the mechanisms of the <authentication/> feature.
func SASL2Mechanisms(features *wire.Stanza) []string {
	var out []string
	for _, m := range features.Child(NSSASL2, "authentication").ChildrenNamed(NSSASL2, "mechanism") {
		out = append(out, m.Text())
	}
	return out
}

// AuthenticateSASL2 runs an XEP-0388 exchange synchronously and returns the
// <success/> element; a <failure/> (or anything else) is an error with the
// element. It checks the server's SCRAM signature or HT answer. After
// success the server sends features without a stream restart (read them
// with Features) unless it resumed a session.
func (c *Client) AuthenticateSASL2(o SASL2) (*wire.Stanza, error) {
	c.t.Helper()
	ua := ""
	if o.UserAgent != "" {
		ua = "<user-agent id='" + o.UserAgent + "'><software>parley testserver</software><device>loopback</device></user-agent>"
	}
	var cbData []byte
	if auth.IsHTMechanism(o.Mech) {
		tc, _ := c.conn.(*tls.Conn)
		cbData = htBinding(o.Mech, tc)
		m := hmac.New(sha256.New, []byte(o.Token))
		m.Write([]byte("Initiator"))
		m.Write(cbData)
		ir := append([]byte(o.User+"\x00"), m.Sum(nil)...)
		c.write("<authenticate xmlns='" + NSSASL2 + "' mechanism='" + o.Mech + "'><initial-response>" +
			base64.StdEncoding.EncodeToString(ir) + "</initial-response>" + ua + o.Extra + "</authenticate>")
		st := c.next()
		if st.Name != "success" {
			return st, errors.New("failure: " + string(st.Raw))
		}
		add, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Tree().ChildText(NSSASL2, "additional-data")))
		r := hmac.New(sha256.New, []byte(o.Token))
		r.Write([]byte("Responder"))
		r.Write(cbData)
		if !hmac.Equal(add, r.Sum(nil)) {
			return st, fmt.Errorf("the server's HT answer does not prove the token: %s", st.Raw)
		}
		return st, nil
	}
	m, err := melliumMechanism(o.Mech)
	if err != nil {
		return nil, err
	}
	opts := []sasl.Option{sasl.Credentials(func() ([]byte, []byte, []byte) { return []byte(o.User), []byte(o.Password), nil }),
		sasl.RemoteMechanisms(o.Mech)}
	if tc, ok := c.conn.(*tls.Conn); ok {
		opts = append(opts, sasl.TLSState(tc.ConnectionState()))
	}
	n := sasl.NewClient(m, opts...)
	_, resp, err := n.Step(nil)
	if err != nil {
		return nil, err
	}
	c.write("<authenticate xmlns='" + NSSASL2 + "' mechanism='" + o.Mech + "'><initial-response>" +
		base64.StdEncoding.EncodeToString(resp) + "</initial-response>" + ua + o.Extra + "</authenticate>")
	verified, task := false, ""
	for {
		st := c.next()
		if st.NS != NSSASL2 {
			return st, errors.New("unexpected: " + string(st.Raw))
		}
		switch st.Name {
		case "continue":
			if o.Task == nil {
				return st, errors.New("unexpected continue: " + string(st.Raw))
			}
			if o.Continued != nil {
				o.Continued(st)
			}
			if add := strings.TrimSpace(st.Tree().ChildText(NSSASL2, "additional-data")); add != "" && !verified {
				data, _ := base64.StdEncoding.DecodeString(add)
				if _, _, err := n.Step(data); err != nil {
					return st, fmt.Errorf("server signature: %w", err)
				}
				verified = true
			}
			task = st.Tree().Child(NSSASL2, "tasks").ChildText(NSSASL2, "task")
			c.write("<next xmlns='" + NSSASL2 + "' task='" + wire.EscapeAttr(task) + "'/>")
		case "task-data":
			reply, err := o.Task(task, st.Tree())
			if err != nil {
				return st, err
			}
			c.write("<task-data xmlns='" + NSSASL2 + "'>" + reply + "</task-data>")
		case "challenge":
			data, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(st.Tree().Text()))
			if o.OnChallenge != nil {
				o.OnChallenge(data)
			}
			_, resp, err := n.Step(data)
			if err != nil {
				return st, err
			}
			c.write("<response xmlns='" + NSSASL2 + "'>" + base64.StdEncoding.EncodeToString(resp) + "</response>")
		case "success":
			add := strings.TrimSpace(st.Tree().ChildText(NSSASL2, "additional-data"))
			if m.Name != "PLAIN" && !verified {
				data, _ := base64.StdEncoding.DecodeString(add)
				if _, _, err := n.Step(data); err != nil {
					return st, fmt.Errorf("server signature: %w", err)
				}
			}
			return st, nil
		default:
			return st, errors.New("failure: " + string(st.Raw))
		}
	}
}

// htBinding is the channel binding data an HT mechanism signs.
func htBinding(mech string, tc *tls.Conn) []byte {
	if tc == nil {
		return nil
	}
	cs := tc.ConnectionState()
	switch mech {
	case auth.MechHTExpr:
		b, _ := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
		return b
	case auth.MechHTUniq:
		return cs.TLSUnique
	case auth.MechHTEndP:
		return auth.ServerEndPoint(cs.PeerCertificates[0])
	}
	return nil
}

// LoginSASL2 connects, authenticates with SCRAM-SHA-256 over SASL2 with a
// Bind2 request (extra goes inside <bind/>, e.g. inline enables), and
// starts background reading. It returns the client (JID set to the bound
// full JID) and the <success/>.
func (s *Server) LoginSASL2(user, password, ua, tag, extra string) (*Client, *wire.Stanza) {
	s.t.Helper()
	c := s.Connect()
	c.Features()
	t := ""
	if tag != "" {
		t = "<tag>" + tag + "</tag>"
	}
	st, err := c.AuthenticateSASL2(SASL2{Mech: "SCRAM-SHA-256", User: user, Password: password, UserAgent: ua,
		Extra: "<bind xmlns='" + NSBind2 + "'>" + t + extra + "</bind>"})
	if err != nil {
		s.t.Fatalf("SASL2 login %s: %v", user, err)
	}
	c.JID = st.Tree().ChildText(NSSASL2, "authorization-identifier")
	c.Features()
	c.startReader()
	return c, st
}

// Bind2Resource is the resource a Bind2 login of user with the tag and
// user-agent id gets.
func (s *Server) Bind2Resource(user, tag, uaID string) string {
	return s.C2S().Bind2Resource(user+"@"+s.Domain, tag, uaID)
}
