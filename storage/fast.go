package storage

import (
	"context"
	"time"
)

// FASTToken is one XEP-0484 token as stored: never the token itself, only
// the digest that verifies it (package auth computes it).
type FASTToken struct {
	Digest    []byte
	Mechanism string // the HT-* mechanism the token is bound to
	Issued    time.Time
	Expiry    time.Time
}

// FASTClient is what an account keeps for one of its clients, named by
// the XEP-0388 user-agent id: what the client said it is, and the two
// token slots of XEP-0484 §6.1 — Current, the token last used, and New,
// the token last issued and not used yet. Either may be nil.
type FASTClient struct {
	ClientID string
	Software string
	Device   string
	Current  *FASTToken
	New      *FASTToken
}

// MaxFASTClients bounds the clients one account keeps tokens for; issuing
// a token to one more client forgets the one whose newest token is oldest.
const MaxFASTClients = 64

// FASTTokens stores XEP-0484 tokens per account and client. Changing the
// account's credentials (SetCredentials) and DeleteAccount remove them.
type FASTTokens interface {
	// FASTClient returns the client's record, ErrNotFound when it has none.
	FASTClient(ctx context.Context, owner, clientID string) (FASTClient, error)
	// IssueFASTToken puts tok in the client's New slot (an unused token
	// there is forgotten, XEP-0484 §3.4) and records the client's software
	// and device. Expired tokens of the account are dropped, and so is the
	// client issued to least recently when the account would exceed
	// MaxFASTClients. ErrNotFound when the account does not exist.
	IssueFASTToken(ctx context.Context, owner string, client FASTClient, tok FASTToken) error
	// UseFASTToken records that the client authenticated with the token
	// whose digest is digest: when it is the New token it becomes Current
	// (replacing the older one); otherwise nothing changes. Unknown
	// clients and digests are not errors.
	UseFASTToken(ctx context.Context, owner, clientID string, digest []byte) error
	// RevokeFASTTokens forgets the client's tokens, or all the account's
	// when clientID is "". Revoking what does not exist is not an error.
	RevokeFASTTokens(ctx context.Context, owner, clientID string) error
	// FASTClients lists the account's clients sorted by id.
	FASTClients(ctx context.Context, owner string) ([]FASTClient, error)
}

// CredentialUpgrades replaces one SCRAM credential of an account with one
// derived from the same password (XEP-0480 upgrade tasks: a new hash, or
// more iterations). Unlike SetCredentials it keeps the others and the
// account's FAST tokens, since the password did not change.
type CredentialUpgrades interface {
	// UpgradeCredential stores c in place of the account's credential for
	// c.Hash (or in addition, when it had none); ErrNotFound without
	// account.
	UpgradeCredential(ctx context.Context, bare string, c SCRAMCredential) error
}
