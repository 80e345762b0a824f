// Package extdisco implements XEP-0215 External Service Discovery
// (urn:xmpp:extdisco:2) for STUN and TURN servers: audio and video calls
// (XEP-0167 Jingle, Conversations, Monal, Dino) ask their server where to
// find them, and get short-lived TURN credentials with the answer.
//
// Credentials follow the TURN REST API convention that coturn implements
// with use-auth-secret: the username is "expiry:user" (expiry in Unix
// seconds, user the requester's bare JID) and the password is
// base64(HMAC-SHA1(secret, username)), so the TURN server checks them with
// the shared secret alone and they stop working at expiry. Only local
// users asking their own server get services or credentials; nothing is
// advertised when no service is configured.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// NS is the XEP-0215 namespace.
const NS = xep.NSExtDisco

// Service is one external service as configured.
type Service struct {
	// Type as registered for XEP-0215: stun, stuns, turn or turns.
	Type string `mapstructure:"type"`
	// Host is a domain name or an IP address.
	Host string `mapstructure:"host"`
	Port int    `mapstructure:"port"`
	// Transport is udp or tcp.
	Transport string `mapstructure:"transport"`
	// Restricted services need credentials, which Parley generates.
	Restricted bool `mapstructure:"restricted"`
	// Name is an optional label for users.
	Name string `mapstructure:"name"`
}

// Settings is the external_services section of the configuration file.
type Settings struct {
	// Secret is shared with the TURN server (coturn static-auth-secret).
	Secret string `mapstructure:"secret"`
	// TTL is the lifetime of generated credentials.
	TTL      time.Duration `mapstructure:"ttl"`
	Services []Service     `mapstructure:"services"`
}

// DefaultSettings: no services, credentials valid for a day.
func DefaultSettings() Settings { return Settings{TTL: 24 * time.Hour, Services: []Service{}} }

var serviceTypes = map[string]bool{"stun": true, "stuns": true, "turn": true, "turns": true}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the section.
func (s Settings) Problems() []string {
	var p []string
	bad := func(key, format string, args ...any) { p = append(p, key+": "+fmt.Sprintf(format, args...)) }
	if s.TTL < time.Minute || s.TTL > 30*24*time.Hour {
		bad("ttl", "expected a duration from 1m to 720h such as 24h")
	}
	restricted := false
	for i, svc := range s.Services {
		key := fmt.Sprintf("services[%d]", i)
		if !serviceTypes[svc.Type] {
			bad(key+".type", "%q is not a service type (expected stun, stuns, turn or turns)", svc.Type)
		}
		if !validHost(svc.Host) {
			bad(key+".host", "%q is not a host name or IP address", svc.Host)
		}
		if svc.Port < 1 || svc.Port > 65535 {
			bad(key+".port", "expected a port from 1 to 65535, got %d", svc.Port)
		}
		switch svc.Transport {
		case "udp", "tcp":
		default:
			bad(key+".transport", "%q is not a transport (expected udp or tcp)", svc.Transport)
		}
		restricted = restricted || svc.Restricted
	}
	if restricted && len(s.Secret) < 16 {
		bad("secret", "a restricted service needs the secret shared with the TURN server (at least 16 characters; coturn static-auth-secret)")
	}
	return p
}

func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Config configures the module.
type Config struct {
	Settings
	Logger *slog.Logger
}

// Module implements module.Module.
type Module struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
}

var _ module.Module = (*Module)(nil)

// New returns the module.
func New(cfg Config) *Module {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Module{cfg: cfg, log: cfg.Logger, now: time.Now}
}

// Name implements module.Module.
func (m *Module) Name() string { return "extdisco" }

// Register implements module.Module. Without services it registers
// nothing: the server then neither advertises nor answers the protocol.
func (m *Module) Register(r *module.Registry) error {
	if len(m.cfg.Services) == 0 {
		return nil
	}
	r.Feature(NS)
	r.IQ(NS, "services", module.TargetServer, m.handleServices)
	r.IQ(NS, "credentials", module.TargetServer, m.handleCredentials)
	return nil
}

// requester checks that the IQ comes from a user of the server it is
// addressed to (XEP-0215 §3: forbidden to others) and returns the user's
// bare JID.
func requester(ev *module.Event) (string, error) {
	if ev.Origin.Kind != module.FromClient || ev.From.Localpart() == "" || ev.From.Domainpart() != ev.To.Domainpart() {
		return "", module.Errorf(wire.ErrForbidden, "external services are for this server's users")
	}
	if ev.Stanza.Type != "get" {
		return "", module.Errorf(wire.ErrBadRequest, "external services are requested with an iq of type get")
	}
	return ev.From.Bare().String(), nil
}

// handleServices answers <services/> (§4.1), or only the services of one
// type (§4.2); restricted services carry fresh credentials.
func (m *Module) handleServices(_ context.Context, ev *module.Event) (*wire.Element, error) {
	user, err := requester(ev)
	if err != nil {
		return nil, err
	}
	typ := ev.Stanza.Tree().FirstElement().AttrValue("type")
	out := wire.NewElement(NS, "services")
	if typ != "" {
		out.SetAttr("type", typ)
	}
	for _, svc := range m.cfg.Services {
		if typ == "" || svc.Type == typ {
			out.Add(m.serviceElement(svc, user))
		}
	}
	return out, nil
}

// handleCredentials answers <credentials><service host type [port]/>
// (§4.3) for the services that match; item-not-found when none does.
func (m *Module) handleCredentials(_ context.Context, ev *module.Event) (*wire.Element, error) {
	user, err := requester(ev)
	if err != nil {
		return nil, err
	}
	req := ev.Stanza.Tree().FirstElement()
	out := wire.NewElement(NS, "credentials")
	asked := req.ChildrenNamed(NS, "service")
	if len(asked) == 0 {
		return nil, module.Errorf(wire.ErrBadRequest, "name the service: <service host='…' type='…'/>")
	}
	for _, want := range asked {
		host, typ := want.AttrValue("host"), want.AttrValue("type")
		if host == "" || typ == "" {
			return nil, module.Errorf(wire.ErrBadRequest, "a service is named by its host and type")
		}
		port := want.AttrValue("port")
		for _, svc := range m.cfg.Services {
			if strings.EqualFold(svc.Host, host) && svc.Type == typ && (port == "" || port == strconv.Itoa(svc.Port)) {
				out.Add(m.serviceElement(svc, user))
			}
		}
	}
	if len(out.Children) == 0 {
		return nil, module.Errorf(wire.ErrItemNotFound, "no such service")
	}
	return out, nil
}

func (m *Module) serviceElement(svc Service, user string) *wire.Element {
	e := wire.NewElement(NS, "service", "type", svc.Type, "host", svc.Host, "port", strconv.Itoa(svc.Port),
		"transport", svc.Transport)
	if svc.Name != "" {
		e.SetAttr("name", svc.Name)
	}
	if svc.Restricted {
		username, password, expires := m.credentials(user)
		e.SetAttr("restricted", "1")
		e.SetAttr("username", username)
		e.SetAttr("password", password)
		e.SetAttr("expires", expires.UTC().Format(time.RFC3339))
	}
	return e
}

// credentials makes TURN REST API credentials for user.
func (m *Module) credentials(user string) (username, password string, expires time.Time) {
	expires = m.now().Add(m.cfg.TTL).Truncate(time.Second)
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(m.cfg.Secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil)), expires
}
