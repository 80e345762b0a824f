// Package auth implements server-side SASL for client-to-server streams
// (RFC 6120 §6): SCRAM-SHA-1/256/512 with and without channel binding
// (RFC 5802, RFC 7677, RFC 9266, RFC 5929), PLAIN over TLS (RFC 4616), the
// credential derivation that feeds them, and a failure throttle.
package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"golang.org/x/text/secure/precis"

	"github.com/parley-xmpp/parley/storage"
)

// MinIterations is the lowest PBKDF2 iteration count DeriveCredentials
// accepts (RFC 7677 §4 asks for at least 4096).
const MinIterations = 4096

// saltLen is the length of the random salts DeriveCredentials generates
// and of the fake salts shown for unknown users, so the two look alike.
const saltLen = 16

type scramHash struct {
	name string // as stored in storage.SCRAMCredential.Hash
	mech string // SASL mechanism name without -PLUS
	new  func() hash.Hash
	size int
}

// hashes is ordered strongest first; Mechanisms and VerifyPassword rely on it.
var hashes = []*scramHash{
	{name: "SHA-512", mech: "SCRAM-SHA-512", new: sha512.New, size: sha512.Size},
	{name: "SHA-256", mech: "SCRAM-SHA-256", new: sha256.New, size: sha256.Size},
	{name: "SHA-1", mech: "SCRAM-SHA-1", new: sha1.New, size: sha1.Size},
}

func hashByName(name string) *scramHash {
	for _, h := range hashes {
		if h.name == name {
			return h
		}
	}
	return nil
}

func (h *scramHash) hmac(key []byte, parts ...string) []byte {
	m := hmac.New(h.new, key)
	for _, p := range parts {
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func (h *scramHash) sum(b []byte) []byte {
	d := h.new()
	d.Write(b)
	return d.Sum(nil)
}

// keys derives StoredKey and ServerKey from an already prepared password.
func (h *scramHash) keys(password string, salt []byte, iterations int) (storedKey, serverKey []byte, err error) {
	salted, err := pbkdf2.Key(h.new, password, salt, iterations, h.size)
	if err != nil {
		return nil, nil, err
	}
	return h.sum(h.hmac(salted, "Client Key")), h.hmac(salted, "Server Key"), nil
}

// prepPassword stands in for SASLprep (RFC 4013), which RFC 8265 obsoletes
// in favour of the PRECIS OpaqueString profile; both map non-ASCII spaces,
// normalise to NFC and reject control characters.
func prepPassword(password string) (string, error) {
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return "", fmt.Errorf("auth: password not allowed: %w", err)
	}
	return p, nil
}

// DeriveCredentials computes SCRAM credentials for SHA-512, SHA-256 and
// SHA-1, each with its own random salt. Only the salt, the iteration count,
// StoredKey and ServerKey are kept, never the password or SaltedPassword.
func DeriveCredentials(password string, iterations int) ([]storage.SCRAMCredential, error) {
	if iterations < MinIterations {
		return nil, fmt.Errorf("auth: %d iterations, need at least %d", iterations, MinIterations)
	}
	p, err := prepPassword(password)
	if err != nil {
		return nil, err
	}
	creds := make([]storage.SCRAMCredential, 0, len(hashes))
	for _, h := range hashes {
		salt := make([]byte, saltLen)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		stored, server, err := h.keys(p, salt, iterations)
		if err != nil {
			return nil, err
		}
		creds = append(creds, storage.SCRAMCredential{
			Hash: h.name, Salt: salt, Iterations: iterations,
			StoredKey: stored, ServerKey: server,
		})
	}
	return creds, nil
}

// VerifyPassword checks a password (from PLAIN) against stored SCRAM
// credentials. One hash is enough to decide, so only the strongest usable
// credential is recomputed: PBKDF2 is the cost of a login.
func VerifyPassword(creds []storage.SCRAMCredential, password string) bool {
	c, h := strongest(creds)
	if h == nil {
		return false
	}
	p, err := prepPassword(password)
	if err != nil {
		return false
	}
	stored, _, err := h.keys(p, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return hmac.Equal(stored, c.StoredKey)
}

func strongest(creds []storage.SCRAMCredential) (storage.SCRAMCredential, *scramHash) {
	for _, h := range hashes {
		if c, ok := credFor(creds, h); ok {
			return c, h
		}
	}
	return storage.SCRAMCredential{}, nil
}

// credFor finds the credential for h, skipping records too damaged to use.
func credFor(creds []storage.SCRAMCredential, h *scramHash) (storage.SCRAMCredential, bool) {
	for _, c := range creds {
		if c.Hash == h.name && c.Iterations > 0 && len(c.Salt) > 0 &&
			len(c.StoredKey) == h.size && len(c.ServerKey) == h.size {
			return c, true
		}
	}
	return storage.SCRAMCredential{}, false
}
