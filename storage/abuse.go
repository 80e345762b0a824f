package storage

import (
	"context"
	"time"
)

// Suspension disables an account without deleting anything: it cannot log
// in (SASL answers account-disabled after a correct password) and its live
// sessions are closed; its data, contacts' rosters and archive stay.
type Suspension struct {
	Account string // bare JID
	Reason  string // shown to the user when the login is refused; may be ""
	By      string // who suspended it (an admin JID, "cli", "api")
	Since   time.Time
	Until   time.Time // zero: until lifted
}

// Active reports whether the suspension is in force at now.
func (s Suspension) Active(now time.Time) bool { return s.Until.IsZero() || now.Before(s.Until) }

// Describe is what the user is told: why and until when the account is
// suspended.
func (s Suspension) Describe() string {
	text := "this account is suspended"
	if s.Reason != "" {
		text += ": " + s.Reason
	}
	if !s.Until.IsZero() {
		text += " (until " + s.Until.UTC().Format(time.RFC3339) + ")"
	}
	return text
}

// Suspensions stores account suspensions. A suspension goes with the
// account (DeleteAccount).
type Suspensions interface {
	// SuspendAccount records s (replacing an earlier suspension of the
	// account); ErrNotFound when the account does not exist.
	SuspendAccount(ctx context.Context, s Suspension) error
	// UnsuspendAccount lifts a suspension; ErrNotFound when there is none.
	UnsuspendAccount(ctx context.Context, bare string) error
	// AccountSuspension returns the suspension recorded for the account,
	// expired or not, or ErrNotFound.
	AccountSuspension(ctx context.Context, bare string) (Suspension, error)
	// ListSuspensions returns every recorded suspension, sorted by account.
	ListSuspensions(ctx context.Context) ([]Suspension, error)
}

// XEP-0377 report reasons.
const (
	ReportSpam  = "spam"
	ReportAbuse = "abuse"
)

// SpamReport is one XEP-0377 report a local user made about a JID.
type SpamReport struct {
	ID        int64
	Reporter  string // bare JID of the local user who reported
	Reported  string // the reported JID (bare, or a domain)
	Reason    string // ReportSpam or ReportAbuse
	Text      string // the user's explanation, may be ""
	StanzaIDs []string
	Created   time.Time
}

// SpamReportCount sums up the reports about one JID.
type SpamReportCount struct {
	Reported  string
	Reports   int
	Reporters int // distinct reporters
	Last      time.Time
}

// SpamReports stores XEP-0377 reports. Reports made by an account go
// with it (DeleteAccount); reports about it stay, they belong to the
// reporters.
type SpamReports interface {
	// AddSpamReport stores r and returns its ID; ErrQuotaExceeded when the
	// reporter already has max reports stored (max <= 0: no limit).
	AddSpamReport(ctx context.Context, r SpamReport, max int) (int64, error)
	// SpamReports lists the reports about reported ("" for every JID),
	// newest first, at most limit (<= 0: all).
	SpamReports(ctx context.Context, reported string, limit int) ([]SpamReport, error)
	// SpamReportCounts lists reported JIDs, most distinct reporters first,
	// at most limit (<= 0: all).
	SpamReportCounts(ctx context.Context, limit int) ([]SpamReportCount, error)
	// DeleteSpamReports removes the reports about reported and returns how
	// many there were.
	DeleteSpamReports(ctx context.Context, reported string) (int, error)
}

// AccountSettings are per-account preferences the server enforces (e.g.
// blocking messages from strangers). They go with the account.
type AccountSettings interface {
	// AccountSetting returns ErrNotFound when the key was never set.
	AccountSetting(ctx context.Context, bare, key string) (string, error)
	// SetAccountSetting stores value; "" deletes the key.
	SetAccountSetting(ctx context.Context, bare, key, value string) error
	// AccountSettingsOf returns every key and value of the account.
	AccountSettingsOf(ctx context.Context, bare string) (map[string]string, error)
}

// Usage is what one account stores, in bytes of raw XML, per kind. The
// backends keep it current in the same transaction as every write
// (triggers), so reading it costs one lookup.
type Usage struct {
	Offline int64 // offline messages
	Private int64 // XEP-0049 private XML
	PEP     int64 // PEP item payloads
	Archive int64 // archived messages
}

// Set records n bytes for a kind as the backends name it (offline,
// private, pep, archive); other kinds are ignored.
func (u *Usage) Set(kind string, n int64) {
	switch kind {
	case "offline":
		u.Offline = n
	case "private":
		u.Private = n
	case "pep":
		u.PEP = n
	case "archive":
		u.Archive = n
	}
}

// UsageReader reads per-account usage for quotas.
type UsageReader interface {
	// AccountUsage returns the account's usage (zero for one without data).
	AccountUsage(ctx context.Context, bare string) (Usage, error)
	// TrimArchive deletes owner's oldest archived messages until the
	// archive holds at most maxBytes, and returns how many it deleted.
	TrimArchive(ctx context.Context, owner string, maxBytes int64) (int, error)
}
