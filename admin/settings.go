package admin

import (
	"fmt"
	"strings"
	"time"
)

// InviteSettings is the invites section of the configuration file
// (XEP-0401/0445/0379; the YAML keys are the mapstructure tags);
// server.Config composes it, so its defaults and checks are these and
// nowhere else.
type InviteSettings struct {
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

// DefaultInviteSettings are the defaults of the invites section.
func DefaultInviteSettings() InviteSettings {
	return InviteSettings{TTL: 7 * 24 * time.Hour}
}

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the invites section.
func (s InviteSettings) Problems() []string {
	var p []string
	if s.TTL < time.Minute || s.TTL > 365*24*time.Hour {
		p = append(p, fmt.Sprintf("ttl: expected a duration from 1m to 8760h, got %s", s.TTL))
	}
	if u := s.BaseURL; u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
		p = append(p, fmt.Sprintf("base_url: %q is not an http(s) URL", u))
	}
	return p
}
