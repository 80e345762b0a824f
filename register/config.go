// Package register implements XEP-0077 In-Band Registration: account
// creation on streams that are not yet authenticated (called by c2s through
// PreAuth), and, for authenticated users, reading the registration,
// changing the password and removing the account.
//
// Security choices (XEP-0077 §11 says the protocol is insecure unless the
// channel is protected):
//   - Registration (get and set) is refused with not-authorized on a stream
//     without TLS, whatever c2s's require_tls says: the password travels in
//     clear text inside the IQ.
//   - Successful registrations are limited per remote address and hour; IPv6
//     addresses count per /64, since one host usually holds a whole /64.
//     Requests over the limit get resource-constraint (type wait) with text.
//   - Errors never echo the request (it holds the password).
//   - With an invitation token (XEP-0445: <preauth xmlns='urn:xmpp:pars:0'/>
//     on the stream, or inside the registration query) registration works
//     while it is closed; the token is used only when the account is made.
//     A username an invitation reserves cannot be registered without it.
//   - Password change and removal work whether or not registration is open:
//     they only concern the authenticated user's own account.
package register

import (
	"context"
	"log/slog"

	"github.com/parley-xmpp/parley/storage"
)

// Settings is the registration section of the configuration file (the
// YAML keys are the mapstructure tags); server.Config composes it.
type Settings struct {
	// Open enables registration of new accounts.
	Open bool `mapstructure:"open"`
	// PerAddressPerHour limits successful registrations from one address
	// (an IPv4 address or an IPv6 /64) in any hour; 0 means no limit.
	PerAddressPerHour int `mapstructure:"per_address_per_hour"`
}

// DefaultSettings are the defaults of the registration section.
func DefaultSettings() Settings { return Settings{PerAddressPerHour: 5} }

// Problems returns what is wrong with s, each as "key: problem" with the
// key relative to the registration section.
func (s Settings) Problems() []string {
	if s.PerAddressPerHour < 0 {
		return []string{"per_address_per_hour: expected zero (no limit) or a positive number"}
	}
	return nil
}

// Config configures the module: the file's settings and what the
// server wires in.
type Config struct {
	Settings
	// Derive computes the credentials to store for a password (typically
	// auth.DeriveCredentials with the configured iterations). It rejects
	// passwords that PRECIS OpaqueString refuses. Required.
	Derive func(password string) ([]storage.SCRAMCredential, error)
	// Domains where accounts may be registered (the registry's domains
	// when empty).
	Domains []string
	// MaxTrackedAddresses bounds the rate limiter's memory
	// (DefaultMaxTrackedAddresses when <= 0).
	MaxTrackedAddresses int
	// Invites enables registration with invitation tokens (XEP-0445), also
	// while registration is closed; nil: no invitations.
	Invites Invites
	// OnRegistered runs after an account was registered without an
	// invitation (e.g. to send the welcome message).
	OnRegistered func(ctx context.Context, bare string)
	Logger       *slog.Logger
}

// Invites checks and redeems invitation tokens. Its errors are
// *module.StanzaError where the client should see them.
type Invites interface {
	// ValidInvite checks a token for domain and returns the username it
	// reserves ("" when the invitee chooses).
	ValidInvite(ctx context.Context, token, domain string) (username string, err error)
	// RegisterWithInvite creates the account with the token.
	RegisterWithInvite(ctx context.Context, token, domain, username, password string) (bare string, err error)
	// UsernameReserved reports whether an invitation reserves bare.
	UsernameReserved(ctx context.Context, bare string) (bool, error)
}

// DefaultMaxTrackedAddresses is the default bound on addresses the rate
// limiter remembers.
const DefaultMaxTrackedAddresses = 10000
