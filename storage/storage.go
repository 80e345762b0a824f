// Package storage defines the repository interfaces Parley's modules use and
// the plain model structs they exchange. Implementations live in
// storage/sqlite (embedded default) and storage/pg (production); both must
// pass the contract suite in storage/storagetest (storagetest.RunAll, which
// covers every repository of Store; see docs/adr/0007-crossings-checked.md).
//
// Users are always identified by their normalized bare JID string
// ("user@domain"); callers normalize before calling.
package storage

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrNotFound is returned when the requested record does not exist.
	ErrNotFound = errors.New("storage: not found")
	// ErrExists is returned when creating a record that already exists.
	ErrExists = errors.New("storage: already exists")
	// ErrQuotaExceeded is returned when a per-user limit would be exceeded.
	ErrQuotaExceeded = errors.New("storage: quota exceeded")
)

// SCRAMCredential is what the server keeps for one SCRAM hash. It never
// holds the password or a password equivalent (RFC 5802 §9: StoredKey and
// ServerKey only).
type SCRAMCredential struct {
	Hash       string // "SHA-1", "SHA-256" or "SHA-512"
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Accounts manages user accounts and their SCRAM credentials.
type Accounts interface {
	// CreateAccount fails with ErrExists when the account exists.
	CreateAccount(ctx context.Context, bare string, creds []SCRAMCredential) error
	// SetCredentials replaces all credentials; ErrNotFound without account.
	SetCredentials(ctx context.Context, bare string, creds []SCRAMCredential) error
	// Credentials returns ErrNotFound when the account does not exist.
	Credentials(ctx context.Context, bare string) ([]SCRAMCredential, error)
	AccountExists(ctx context.Context, bare string) (bool, error)
	// DeleteAccount removes the account and every record it owns (roster,
	// pending subscriptions, offline messages, vCard, block list, ...).
	// ErrNotFound when it does not exist.
	DeleteAccount(ctx context.Context, bare string) error
	// ListAccounts lists bare JIDs of a domain, sorted; all domains when "".
	ListAccounts(ctx context.Context, domain string) ([]string, error)
}

// Subscription states of a roster item (RFC 6121 §2.1.2.5).
const (
	SubNone = "none"
	SubTo   = "to"
	SubFrom = "from"
	SubBoth = "both"
)

// RosterItem is one contact in a user's roster.
type RosterItem struct {
	JID          string // bare JID of the contact
	Name         string
	Subscription string // SubNone, SubTo, SubFrom, SubBoth
	Ask          bool   // pending outbound subscription request ("ask='subscribe'")
	Approved     bool   // subscription pre-approved (RFC 6121 §3.4)
	Groups       []string
}

// PendingSubscription is an inbound subscription request not yet answered
// (RFC 6121 §3.1.3: stored and redelivered until the user decides).
type PendingSubscription struct {
	From  string // bare JID of the requester
	Raw   []byte // the original presence stanza, to redeliver
	Stamp time.Time
}

// Roster stores rosters with a per-user version (XEP-0237). Every change
// increments the version; the returned version is the new one.
type Roster interface {
	RosterItems(ctx context.Context, owner string) (items []RosterItem, ver string, err error)
	RosterItem(ctx context.Context, owner, contact string) (RosterItem, error)
	UpsertRosterItem(ctx context.Context, owner string, item RosterItem) (ver string, err error)
	DeleteRosterItem(ctx context.Context, owner, contact string) (ver string, err error)
	RosterVersion(ctx context.Context, owner string) (string, error)

	AddPendingIn(ctx context.Context, owner string, p PendingSubscription) error
	RemovePendingIn(ctx context.Context, owner, contact string) error
	PendingIn(ctx context.Context, owner string) ([]PendingSubscription, error)
}

// OfflineMessage is a message stored for a user with no available resource
// (XEP-0160).
type OfflineMessage struct {
	ID    int64
	Raw   []byte
	Stamp time.Time
}

// Offline is the offline message queue.
type Offline interface {
	// StoreOffline appends a message; ErrQuotaExceeded when the user already
	// has max messages stored (max <= 0 means no limit).
	StoreOffline(ctx context.Context, owner string, raw []byte, stamp time.Time, max int) (int64, error)
	// OfflineMessages returns the queue, oldest first.
	OfflineMessages(ctx context.Context, owner string) ([]OfflineMessage, error)
	// DeleteOffline removes messages with ID <= upTo.
	DeleteOffline(ctx context.Context, owner string, upTo int64) error
	CountOffline(ctx context.Context, owner string) (int, error)
}

// VCards stores vcard-temp (XEP-0054) documents as raw XML.
type VCards interface {
	// VCard returns ErrNotFound when none was stored.
	VCard(ctx context.Context, owner string) ([]byte, error)
	SetVCard(ctx context.Context, owner string, raw []byte) error
}

// Blocklist stores XEP-0191 block lists (JIDs as given, normalized).
type Blocklist interface {
	BlockList(ctx context.Context, owner string) ([]string, error)
	Block(ctx context.Context, owner string, jids []string) error
	// Unblock removes the given JIDs, or every JID when jids is empty.
	Unblock(ctx context.Context, owner string, jids []string) error
}

// Store is the union of all repositories. Only the wiring code uses it;
// modules ask for the narrow interfaces they need.
type Store interface {
	Accounts
	Roster
	Offline
	VCards
	Blocklist
	Archive
	PushRegistrations
	PEP
	Uploads
	PrivateXML
	PushJobs
	Invites
	Roles
	Settings
	APITokens
	MUCRooms
	ArchiveEditor
	FASTTokens
	CredentialUpgrades
	LastActivity
	Suspensions
	SpamReports
	AccountSettings
	UsageReader
	// Ping checks that the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}
