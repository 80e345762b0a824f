package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/storage"
)

// RFC 6120 §6.5 failure conditions.
const (
	CondAborted              = "aborted"
	CondAccountDisabled      = "account-disabled"
	CondCredentialsExpired   = "credentials-expired"
	CondEncryptionRequired   = "encryption-required"
	CondIncorrectEncoding    = "incorrect-encoding"
	CondInvalidAuthzid       = "invalid-authzid"
	CondInvalidMechanism     = "invalid-mechanism"
	CondMalformedRequest     = "malformed-request"
	CondMechanismTooWeak     = "mechanism-too-weak"
	CondNotAuthorized        = "not-authorized"
	CondTemporaryAuthFailure = "temporary-auth-failure"
)

// Failure is the error every negotiation failure is reported with; the
// caller turns it into <failure><Condition/><text>Text</text></failure>.
type Failure struct {
	Condition string
	Text      string
	// Err is an internal cause (a storage error) for logs, never for the client.
	Err error
}

func (f *Failure) Error() string {
	s := "sasl: " + f.Condition
	if f.Text != "" {
		s += ": " + f.Text
	}
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

func (f *Failure) Unwrap() error { return f.Err }

func fail(cond, text string) *Failure { return &Failure{Condition: cond, Text: text} }

// CredentialSource looks up the SCRAM credentials of a bare JID;
// storage.Accounts satisfies it. It returns storage.ErrNotFound for an
// unknown account.
type CredentialSource interface {
	Credentials(ctx context.Context, bare string) ([]storage.SCRAMCredential, error)
}

// Config controls which mechanisms are offered.
type Config struct {
	AllowPlain bool
	RequireTLS bool
	// Secret keys the fake salts shown for unknown users. It should be
	// stable across restarts and shared by all nodes: a salt that changes
	// tells an observer the account does not exist. Empty: random per process.
	Secret []byte
	// Iterations is the count shown for unknown users; it should equal the
	// one new credentials are derived with. Zero: the count of the last real
	// credential looked up (MinIterations until there was one).
	Iterations int
	// Suspensions, when set, refuses accounts an administrator suspended
	// with account-disabled (after a correct proof only).
	Suspensions interface {
		AccountSuspension(ctx context.Context, bare string) (storage.Suspension, error)
	}
}

// Server negotiates SASL for any number of connections concurrently.
type Server struct {
	cfg      Config
	src      CredentialSource
	secret   []byte
	lastIter atomic.Int64
	nonce    func() string // replaced by tests that replay RFC vectors
}

// NewServer creates a Server that authenticates against src.
func NewServer(cfg Config, src CredentialSource) *Server {
	s := &Server{cfg: cfg, src: src, secret: cfg.Secret, nonce: serverNonce}
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		rand.Read(s.secret)
	}
	return s
}

func serverNonce() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Mechanisms lists the mechanisms to offer on a connection, strongest first.
func (s *Server) Mechanisms(secure bool, cb ChannelBindings) []string {
	if !secure && s.cfg.RequireTLS {
		return nil
	}
	var m []string
	if secure && cb.any() {
		for _, h := range hashes {
			m = append(m, h.mech+"-PLUS")
		}
	}
	for _, h := range hashes {
		m = append(m, h.mech)
	}
	if secure && s.cfg.AllowPlain {
		m = append(m, "PLAIN")
	}
	return m
}

// Start begins a negotiation on a stream to domain. secure and cb must
// describe the same connection they described to Mechanisms, since
// downgrade detection compares against what was offered.
func (s *Server) Start(ctx context.Context, mech, domain string, secure bool, cb ChannelBindings) (*Negotiation, error) {
	if !secure && s.cfg.RequireTLS {
		return nil, fail(CondEncryptionRequired, "")
	}
	n := &Negotiation{s: s, mech: mech, domain: domain, offeredPlus: secure && cb.any()}
	if mech == "PLAIN" {
		if !s.cfg.AllowPlain {
			return nil, fail(CondInvalidMechanism, "")
		}
		if !secure {
			return nil, fail(CondEncryptionRequired, "PLAIN needs TLS")
		}
		return n, nil
	}
	base, plus := strings.CutSuffix(mech, "-PLUS")
	for _, h := range hashes {
		if h.mech == base && (!plus || n.offeredPlus) {
			n.hash, n.plus, n.cb = h, plus, cb
			return n, nil
		}
	}
	return nil, fail(CondInvalidMechanism, "")
}

type negState int

const (
	awaitFirst negState = iota
	awaitFinal
	finished
)

// maxMessage bounds what a client may send in one step; real messages are
// well under 2 KiB even with a 1023-byte escaped localpart.
const maxMessage = 8 << 10

// Negotiation is one authentication exchange. It is not safe for concurrent
// use; a connection runs one at a time.
type Negotiation struct {
	s           *Server
	mech        string
	domain      string
	hash        *scramHash // nil for PLAIN and HT
	ht          *htState   // set for the HT mechanisms (FAST)
	plus        bool
	offeredPlus bool
	cb          ChannelBindings
	state       negState
	user        string

	// SCRAM state between the two client messages.
	known           bool // the account exists and has a credential for hash
	cred            storage.SCRAMCredential
	cbInput         []byte // gs2 header + binding data the client must echo in c=
	clientFirstBare string
	serverFirst     string
	nonce           string
	ssdp            string // XEP-0474 list to sign, "" when not asked for

	gate func(ctx context.Context, bare string) error
}

// SetGate installs a check that runs once the client has named its
// account and before its proof is verified (failed-login throttling). An
// error from it ends the negotiation before anything depends on the proof,
// so the answer is the same for a right and a wrong password. bare is ""
// when the name is not a possible account.
func (n *Negotiation) SetGate(g func(ctx context.Context, bare string) error) { n.gate = g }

func (n *Negotiation) beforeVerify(ctx context.Context) error {
	if n.gate == nil {
		return nil
	}
	bare := ""
	if n.user != "" {
		bare = n.user + "@" + n.domain
	}
	return n.gate(ctx, bare)
}

// checkSuspended refuses an authentication that succeeded for an account
// an administrator suspended (RFC 6120 §6.5.1 account-disabled). It runs
// only after a correct proof, so it tells nothing to whoever lacks the
// password.
func (n *Negotiation) checkSuspended(ctx context.Context) error {
	src := n.s.cfg.Suspensions
	if src == nil || n.user == "" {
		return nil
	}
	sp, err := src.AccountSuspension(ctx, n.user+"@"+n.domain)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return &Failure{Condition: CondTemporaryAuthFailure, Err: err}
	}
	if !sp.Active(time.Now()) {
		return nil
	}
	return fail(CondAccountDisabled, sp.Describe())
}

// ProtectDowngrade makes a SCRAM negotiation sign what was advertised
// (XEP-0474): the mechanisms and the XEP-0440 channel-binding types of
// the SASL profile the client uses. The server-first-message then carries
// their hash as the optional attribute h, which the client compares with
// what it saw; the client proof covers it. Call before the first Step; it
// does nothing for other mechanisms.
func (n *Negotiation) ProtectDowngrade(mechs, cbTypes []string) {
	if n.hash == nil {
		return
	}
	n.ssdp = ssdpList(mechs, cbTypes)
}

// ssdpList builds the string XEP-0474 §5.1 hashes: sorted mechanisms
// joined by 0x1E, then 0x1F and the sorted channel-binding types when any
// were advertised. Go compares strings bytewise, the i;octet collation.
func ssdpList(mechs, cbTypes []string) string {
	m := slices.Sorted(slices.Values(mechs))
	s := strings.Join(m, "\x1e")
	if len(cbTypes) > 0 {
		s += "\x1f" + strings.Join(slices.Sorted(slices.Values(cbTypes)), "\x1e")
	}
	return s
}

// Username is the normalised localpart the client authenticated as. After
// a not-authorized failure it is the localpart that was tried ("" when none
// could be parsed) so the caller can count failures per account.
func (n *Negotiation) Username() string { return n.user }

// Mechanism is the mechanism this negotiation runs.
func (n *Negotiation) Mechanism() string { return n.mech }

// Step consumes one decoded client message and returns the decoded reply.
// done with a nil error means success; out then carries the additional
// data for <success/>. Every error is a *Failure and ends the negotiation.
func (n *Negotiation) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	out, done, err = n.step(ctx, in)
	if done && err == nil {
		if err = n.checkSuspended(ctx); err != nil {
			return nil, false, err
		}
	}
	return out, done, err
}

func (n *Negotiation) step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	if n.state == finished {
		return nil, false, fail(CondMalformedRequest, "the negotiation is over")
	}
	defer func() {
		if err != nil || done {
			n.state = finished
		}
	}()
	if len(in) > maxMessage {
		return nil, false, fail(CondMalformedRequest, "message too long")
	}
	if n.ht != nil {
		// The proof after the NUL is binary.
		out, err := n.htStep(ctx, in)
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	}
	if !utf8.Valid(in) {
		return nil, false, fail(CondMalformedRequest, "message is not UTF-8")
	}
	switch {
	case n.hash == nil:
		if err := n.plain(ctx, string(in)); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	case n.state == awaitFirst:
		out, err := n.clientFirst(ctx, string(in))
		if err != nil {
			return nil, false, err
		}
		n.state = awaitFinal
		return out, false, nil
	default:
		out, err := n.clientFinal(ctx, string(in))
		if err != nil {
			return nil, false, err
		}
		return out, true, nil
	}
}

// identify normalises the authentication identity and checks the
// authorization identity: a client may only act as itself. It reports
// whether the name is a possible account; one that is not is treated like
// an unknown account, so the two cannot be told apart.
func (n *Negotiation) identify(authcid, authzid string) (bare string, ok bool, err error) {
	j, jerr := jid.New(authcid, n.domain, "")
	if jerr == nil {
		n.user = j.Localpart()
		bare = j.String()
	}
	if authzid != "" {
		a, aerr := jid.Parse(authzid)
		if jerr != nil || aerr != nil || a.String() != bare {
			return "", false, fail(CondInvalidAuthzid, "")
		}
	}
	return bare, jerr == nil, nil
}

// lookup fetches the account's credentials; a missing account is not an
// error, since the caller must carry on as if it existed.
func (n *Negotiation) lookup(ctx context.Context, bare string) ([]storage.SCRAMCredential, bool, error) {
	creds, err := n.s.src.Credentials(ctx, bare)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, &Failure{Condition: CondTemporaryAuthFailure, Err: err}
	}
	return creds, true, nil
}

// fakeCredential is what an unknown account appears to have: a salt that is
// the same on every attempt (a random one would change and give it away)
// and keys no proof can match.
func (s *Server) fakeCredential(h *scramHash, user string) storage.SCRAMCredential {
	seed := sha256Hash.hmac(s.secret, "parley-fake-credential", h.name, user)
	iter := s.cfg.Iterations
	if iter <= 0 {
		iter = int(s.lastIter.Load())
	}
	if iter <= 0 {
		iter = MinIterations
	}
	return storage.SCRAMCredential{
		Hash:       h.name,
		Salt:       seed[:saltLen],
		Iterations: iter,
		StoredKey:  h.hmac(seed, "stored"),
		ServerKey:  h.hmac(seed, "server"),
	}
}

var sha256Hash = hashByName("SHA-256")

func (n *Negotiation) plain(ctx context.Context, in string) error {
	authzid, rest, ok1 := strings.Cut(in, "\x00")
	authcid, password, ok2 := strings.Cut(rest, "\x00")
	if !ok1 || !ok2 || authcid == "" || password == "" || strings.Contains(password, "\x00") {
		return fail(CondMalformedRequest, "")
	}
	bare, valid, err := n.identify(authcid, authzid)
	if err != nil {
		return err
	}
	if err := n.beforeVerify(ctx); err != nil {
		return err
	}
	var creds []storage.SCRAMCredential
	if valid {
		if creds, _, err = n.lookup(ctx, bare); err != nil {
			return err
		}
	}
	c, h := strongest(creds)
	known := h != nil
	if known {
		n.s.lastIter.Store(int64(c.Iterations))
	} else {
		// Spend the same PBKDF2 time as a real check so the reply time does
		// not tell which accounts exist.
		c = n.s.fakeCredential(hashes[0], n.fakeKey(authcid))
	}
	if !VerifyPassword([]storage.SCRAMCredential{c}, password) || !known {
		return fail(CondNotAuthorized, "")
	}
	return nil
}

// fakeKey names an unknown account for fakeCredential by its normalised
// form, as spellings of one real account share one salt.
func (n *Negotiation) fakeKey(authcid string) string {
	if n.user != "" {
		return n.user
	}
	return authcid
}
