package storage

import (
	"context"
	"time"
)

// Invite is an invitation (XEP-0401/XEP-0445): a secret token that lets
// someone register an account without open registration, and optionally
// become a contact of the inviter (XEP-0379). Only a hash of the token is
// stored: a leaked database does not hand out accounts.
type Invite struct {
	// ID is the public name of the invitation (in lists, to revoke it); it
	// is derived from the token hash and reveals nothing about the token.
	ID        string
	TokenHash []byte // SHA-256 of the token
	Domain    string // where the account is created
	// Username reserves a localpart ("" lets the invitee choose).
	Username string
	// Owner is the bare JID of the inviter: the invitee and the inviter get
	// each other in their rosters with a mutual subscription. "" for
	// invitations created by an operator (CLI, HTTP API) without a contact.
	Owner string
	// Admin: the new account gets the admin role.
	Admin   bool
	Created time.Time
	// Expires: the token is refused from then on (zero: never).
	Expires time.Time
	// UsesLeft: registrations still allowed with the token.
	UsesLeft int
}

// Invites stores invitations. Rows with an Owner are removed with that
// account.
type Invites interface {
	// CreateInvite fails with ErrExists when the ID is taken.
	CreateInvite(ctx context.Context, inv Invite) error
	// InviteByHash returns ErrNotFound for an unknown token.
	InviteByHash(ctx context.Context, hash []byte) (Invite, error)
	// ListInvites lists the invitations of a domain ("" all), newest first.
	ListInvites(ctx context.Context, domain string) ([]Invite, error)
	// DeleteInvite revokes an invitation by ID; ErrNotFound when none.
	DeleteInvite(ctx context.Context, id string) error
	// UseInvite takes one use of the token atomically: ErrNotFound when the
	// token is unknown, expired at now or used up. The returned Invite is
	// the state before the use. A token whose last use is taken is deleted.
	UseInvite(ctx context.Context, hash []byte, now time.Time) (Invite, error)
	// ReturnInvite gives back a use taken by UseInvite when the account
	// could not be created after all (it recreates a deleted row).
	ReturnInvite(ctx context.Context, inv Invite) error
	// DeleteExpiredInvites removes invitations expired before now.
	DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error)
}

// RoleAdmin may run the XEP-0133 administration commands, like the
// accounts listed in the configuration's admins.
const RoleAdmin = "admin"

// KnownRoles lists every role (db copy copies these).
var KnownRoles = []string{RoleAdmin}

// Roles are per-account roles granted at run time (e.g. "admin" through an
// admin invitation), in addition to the configuration's admins list. They
// go with the account.
type Roles interface {
	GrantRole(ctx context.Context, bare, role string) error
	RevokeRole(ctx context.Context, bare, role string) error
	HasRole(ctx context.Context, bare, role string) (bool, error)
	// RoleMembers lists the accounts holding role, sorted.
	RoleMembers(ctx context.Context, role string) ([]string, error)
}

// Settings are server-wide values an administrator changes at run time
// (e.g. the welcome message), shared by every node of a cluster.
type Settings interface {
	// Setting returns ErrNotFound when the key was never set.
	Setting(ctx context.Context, key string) (string, error)
	// SetSetting stores value; "" deletes the key.
	SetSetting(ctx context.Context, key, value string) error
	// SettingOrSet returns the value of key, storing value first when the
	// key is unset: of several callers racing, all get the first value
	// stored (the nodes of a cluster agreeing on a shared secret).
	SettingOrSet(ctx context.Context, key, value string) (string, error)
	// AllSettings returns every key and value (for db copy).
	AllSettings(ctx context.Context) (map[string]string, error)
}

// APIToken is a bearer token of the HTTP admin API. Only its hash is kept.
type APIToken struct {
	ID        string // public name, derived from the hash
	TokenHash []byte // SHA-256 of the token
	Name      string // what the operator called it
	Created   time.Time
}

// APITokens stores HTTP admin API tokens.
type APITokens interface {
	// CreateAPIToken fails with ErrExists when the ID is taken.
	CreateAPIToken(ctx context.Context, t APIToken) error
	// APITokenByHash returns ErrNotFound for an unknown token.
	APITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	// ListAPITokens lists tokens, oldest first.
	ListAPITokens(ctx context.Context) ([]APIToken, error)
	// DeleteAPIToken revokes a token by ID; ErrNotFound when none.
	DeleteAPIToken(ctx context.Context, id string) error
}
