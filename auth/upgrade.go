package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"

	"github.com/parley-xmpp/parley/storage"
)

// XEP-0480 SASL upgrade tasks: after a SCRAM or PLAIN login over SASL2 a
// client that knows the password can give the server the SaltedPassword
// for another hash (or for more iterations), so accounts get
// SCRAM-SHA-512 credentials, or the iteration count auth.iterations asks
// for, without a password change. The server sends a fresh salt and the
// count (<salt xmlns='urn:xmpp:scram-upgrade:0'/>), the client answers
// with the SaltedPassword (<hash/>); StoredKey and ServerKey are derived
// from it and kept, the SaltedPassword is not.

const upgradePrefix = "UPGR-"

// UpgradeTasks lists the tasks a server with upgradable storage offers:
// one per SCRAM hash, strongest first; nil when the store cannot upgrade.
func (s *Server) UpgradeTasks() []string {
	if _, ok := s.src.(storage.CredentialUpgrades); !ok {
		return nil
	}
	var t []string
	for _, h := range hashes {
		t = append(t, upgradePrefix+h.mech)
	}
	return t
}

func upgradeHash(task string) *scramHash {
	mech, ok := strings.CutPrefix(task, upgradePrefix)
	if !ok {
		return nil
	}
	for _, h := range hashes {
		if h.mech == mech {
			return h
		}
	}
	return nil
}

// IsUpgradeTask reports whether task is one of UpgradeTasks' names.
func IsUpgradeTask(task string) bool { return upgradeHash(task) != nil }

func (s *Server) upgradeIterations() int { return max(s.cfg.Iterations, MinIterations) }

// UpgradeNeeded reports whether task would improve bare's credentials:
// the hash is missing, or was derived with fewer iterations than new
// credentials get.
func (s *Server) UpgradeNeeded(ctx context.Context, bare, task string) (bool, error) {
	h := upgradeHash(task)
	if h == nil {
		return false, nil
	}
	creds, err := s.src.Credentials(ctx, bare)
	if err != nil {
		return false, err
	}
	c, ok := credFor(creds, h)
	return !ok || c.Iterations < s.upgradeIterations(), nil
}

// UpgradeSalt returns a fresh salt and the iteration count for a task.
func (s *Server) UpgradeSalt() (salt []byte, iterations int, err error) {
	salt = make([]byte, saltLen)
	_, err = rand.Read(salt)
	return salt, s.upgradeIterations(), err
}

// Upgrade stores bare's credential for task, derived from the
// SaltedPassword the client computed with salt and iterations.
func (s *Server) Upgrade(ctx context.Context, bare, task string, salt []byte, iterations int, salted []byte) error {
	h := upgradeHash(task)
	up, ok := s.src.(storage.CredentialUpgrades)
	if h == nil || !ok {
		return errors.New("auth: no such upgrade task")
	}
	if len(salted) != h.size {
		return fail(CondMalformedRequest, "the SaltedPassword has the wrong length for "+h.mech)
	}
	return up.UpgradeCredential(ctx, bare, storage.SCRAMCredential{Hash: h.name, Salt: salt, Iterations: iterations,
		StoredKey: h.sum(h.hmac(salted, "Client Key")), ServerKey: h.hmac(salted, "Server Key")})
}

// PasswordBased reports whether the negotiation proved the password
// (SCRAM, PLAIN), which upgrades need; a token login did not.
func (n *Negotiation) PasswordBased() bool { return n.ht == nil }
