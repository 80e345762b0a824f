package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/storage"
)

// XEP-0484 FAST: tokens a client gets after a full authentication and
// logs in with later through the Hashed Token mechanisms
// (draft-schmaus-kitten-sasl-ht): one round trip, one HMAC, no PBKDF2.
//
// The client proves it holds the token T by sending
// HMAC-SHA-256(T, "Initiator" || channel binding data). Tokens are 88
// characters, longer than SHA-256's 64-byte block, and HMAC (RFC 2104 §2)
// replaces such keys by their hash: HMAC(T, m) = HMAC(SHA-256(T), m). So
// the server keeps only SHA-256(T), never the token, and still verifies
// proofs for channel-binding data that differs on every connection
// (-EXPR). The digest is as good as the token for this mechanism, though:
// that is why tokens expire, are bound to one client and mechanism, and
// go when the password changes.

// HT mechanism names: the hash, then the channel binding type.
const (
	MechHTNone = "HT-SHA-256-NONE"
	MechHTEndP = "HT-SHA-256-ENDP" // tls-server-end-point
	MechHTExpr = "HT-SHA-256-EXPR" // tls-exporter
	MechHTUniq = "HT-SHA-256-UNIQ" // tls-unique
)

// tokenBytes of randomness make an 88-character base64url token.
const tokenBytes = 66

// htBinding maps an HT mechanism to its channel binding type ("" for none).
var htBinding = map[string]string{
	MechHTExpr: TypeTLSExporter,
	MechHTEndP: TypeTLSServerEndPoint,
	MechHTUniq: TypeTLSUnique,
	MechHTNone: "",
}

// FASTConfig configures token logins.
type FASTConfig struct {
	// Lifetime of a token; a client that does not log in within it must
	// use its password again. Zero disables FAST.
	Lifetime time.Duration
	// RotateAfter: a token older than this is replaced at its next use
	// (XEP-0484 §3.4). Zero: a day, or half the lifetime if shorter.
	RotateAfter time.Duration
}

// FAST issues and checks XEP-0484 tokens. It is safe for concurrent use.
type FAST struct {
	cfg   FASTConfig
	store storage.FASTTokens
	now   func() time.Time
}

// NewFAST returns the token service, or nil when cfg.Lifetime is zero.
func NewFAST(cfg FASTConfig, store storage.FASTTokens) *FAST {
	if cfg.Lifetime <= 0 || store == nil {
		return nil
	}
	if cfg.RotateAfter <= 0 {
		cfg.RotateAfter = min(24*time.Hour, cfg.Lifetime/2)
	}
	return &FAST{cfg: cfg, store: store, now: time.Now}
}

// Mechanisms lists the HT mechanisms usable on a connection with these
// channel bindings, channel-bound ones first; nil on a nil service.
func (f *FAST) Mechanisms(cb ChannelBindings) []string {
	if f == nil {
		return nil
	}
	var m []string
	for _, name := range []string{MechHTExpr, MechHTUniq, MechHTEndP} {
		if len(cb.data(htBinding[name])) > 0 {
			m = append(m, name)
		}
	}
	return append(m, MechHTNone)
}

// IsHTMechanism reports whether name is an HT mechanism.
func IsHTMechanism(name string) bool {
	_, ok := htBinding[name]
	return ok
}

// Token is a token handed to a client.
type Token struct {
	Token  string
	Expiry time.Time
}

// UserAgent is the XEP-0388 <user-agent/> a client sent.
type UserAgent struct {
	ID       string
	Software string
	Device   string
}

// Start begins a token login with mech for the client named by clientID
// (its user-agent id, required by XEP-0484 §4.1). secure and cb describe
// the connection as for Server.Start.
func (f *FAST) Start(s *Server, mech, domain, clientID string, secure bool, cb ChannelBindings) (*Negotiation, error) {
	if f == nil {
		return nil, fail(CondInvalidMechanism, "")
	}
	if !secure {
		return nil, fail(CondEncryptionRequired, "")
	}
	typ, ok := htBinding[mech]
	if !ok {
		return nil, fail(CondInvalidMechanism, "")
	}
	if typ != "" && len(cb.data(typ)) == 0 {
		return nil, fail(CondInvalidMechanism, "")
	}
	if clientID == "" {
		return nil, fail(CondMalformedRequest, "FAST needs a <user-agent id='…'/>")
	}
	return &Negotiation{s: s, mech: mech, domain: domain, ht: &htState{f: f, clientID: clientID, cbData: cb.data(typ)}}, nil
}

// newToken returns a fresh random token, longer than the HMAC block.
func (f *FAST) newToken() (string, error) {
	raw := make([]byte, tokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// htState is a Negotiation's state for an HT mechanism.
type htState struct {
	f        *FAST
	clientID string
	cbData   []byte
	// Set on success: the client's record and the token that matched.
	client storage.FASTClient
	used   *storage.FASTToken
}

// tokenDigest is what is stored for a token: the key HMAC uses for it.
func tokenDigest(token string) []byte {
	d := sha256.Sum256([]byte(token))
	return d[:]
}

func htMAC(key []byte, label string, cbData []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write(cbData)
	return m.Sum(nil)
}

// fakeDigest stands in for an unknown account's or client's token, so the
// reply takes the same work and time.
var fakeDigest = tokenDigest("parley: no such token")

// htStep checks authcid NUL HMAC(token, "Initiator" || cb) and returns
// HMAC(token, "Responder" || cb) for the client to check.
func (n *Negotiation) htStep(ctx context.Context, in []byte) ([]byte, error) {
	authcid, proof, ok := strings.Cut(string(in), "\x00")
	if !ok || authcid == "" || len(proof) != sha256.Size {
		return nil, fail(CondMalformedRequest, "expected authcid NUL HMAC-SHA-256 proof")
	}
	bare, valid, err := n.identify(authcid, "")
	if err != nil {
		return nil, err
	}
	if err := n.beforeVerify(ctx); err != nil {
		return nil, err
	}
	ht := n.ht
	f := ht.f
	var client storage.FASTClient
	if valid {
		client, err = f.store.FASTClient(ctx, bare, ht.clientID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, &Failure{Condition: CondTemporaryAuthFailure, Err: err}
		}
	}
	// XEP-0484 §6.1: the New slot first, then Current. Both are always
	// compared so that the time taken does not tell which slots exist.
	now := f.now()
	var match *storage.FASTToken
	for _, tok := range []*storage.FASTToken{client.New, client.Current} {
		digest := fakeDigest
		if tok != nil {
			digest = tok.Digest
		}
		eq := subtle.ConstantTimeCompare(htMAC(digest, "Initiator", ht.cbData), []byte(proof)) == 1
		if eq && tok != nil && match == nil && tok.Mechanism == n.mech {
			match = tok
		}
	}
	if match == nil {
		return nil, fail(CondNotAuthorized, "")
	}
	if !now.Before(match.Expiry) {
		// XEP-0484 §5: a token no longer trusted fails with
		// credentials-expired, and the client uses its password.
		return nil, fail(CondCredentialsExpired, "the token has expired")
	}
	ht.client, ht.used = client, match
	return htMAC(match.Digest, "Responder", ht.cbData), nil
}

// Complete runs the token side of a successful authentication n on the
// stream (any mechanism): a token used is promoted, or forgotten when the
// client asked to invalidate it; a new token is issued when the client
// requested one (request: the HT mechanism it wants it for) or when the
// one it used is due for rotation. It returns the token to hand out, or
// nil. request must be one of Mechanisms for the connection; the caller
// checks that.
func (f *FAST) Complete(ctx context.Context, n *Negotiation, bare string, ua UserAgent, request string, invalidate bool) (*Token, error) {
	if f == nil {
		return nil, nil
	}
	mech := request
	if ht := n.ht; ht != nil && ht.used != nil {
		switch {
		case invalidate:
			if err := f.store.RevokeFASTTokens(ctx, bare, ht.clientID); err != nil {
				return nil, err
			}
		default:
			if err := f.store.UseFASTToken(ctx, bare, ht.clientID, ht.used.Digest); err != nil {
				return nil, err
			}
			// Rotate only a token not already superseded by an unused one.
			stale := f.now().Sub(ht.used.Issued) >= f.cfg.RotateAfter
			superseded := ht.client.New != nil && ht.client.New != ht.used
			if mech == "" && stale && !superseded {
				mech = n.mech
			}
		}
	}
	if mech == "" || ua.ID == "" {
		return nil, nil
	}
	tok, err := f.newToken()
	if err != nil {
		return nil, err
	}
	now := f.now()
	st := storage.FASTToken{Digest: tokenDigest(tok), Mechanism: mech, Issued: now, Expiry: now.Add(f.cfg.Lifetime)}
	client := storage.FASTClient{ClientID: ua.ID, Software: ua.Software, Device: ua.Device}
	if err := f.store.IssueFASTToken(ctx, bare, client, st); err != nil {
		return nil, err
	}
	return &Token{Token: tok, Expiry: st.Expiry}, nil
}
