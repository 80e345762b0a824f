package s2s

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// dialbackKey computes the XEP-0185 key:
// HMAC-SHA256(hex(SHA256(secret)), receiving ' ' originating ' ' streamID),
// hex encoded, as in the XEP-0185/XEP-0220 examples.
// The spaces separate the fields unambiguously: domains and stream ids we
// accept never contain spaces (CVE-2016-0756).
func (s *Service) dialbackKey(receiving, originating, streamID string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(receiving))
	m.Write([]byte{' '})
	m.Write([]byte(originating))
	m.Write([]byte{' '})
	m.Write([]byte(streamID))
	return hex.EncodeToString(m.Sum(nil))
}

// checkKey compares a received key in constant time.
func (s *Service) checkKey(receiving, originating, streamID, key string) bool {
	if strings.ContainsAny(streamID, " \t\r\n") || streamID == "" {
		return false
	}
	want := s.dialbackKey(receiving, originating, streamID)
	return hmac.Equal([]byte(want), []byte(strings.ToLower(strings.TrimSpace(key))))
}

func pendingKey(local, remote, id string) string { return local + "\x00" + remote + "\x00" + id }

// addPending records an outbound dialback request, so that the
// authoritative side only confirms keys for streams we really opened.
func (s *Service) addPending(local, remote, id string) func() {
	k := pendingKey(local, remote, id)
	s.dbMu.Lock()
	s.dbPending[k]++
	s.dbMu.Unlock()
	return func() {
		s.dbMu.Lock()
		if s.dbPending[k]--; s.dbPending[k] <= 0 {
			delete(s.dbPending, k)
		}
		s.dbMu.Unlock()
	}
}

func (s *Service) isPending(local, remote, id string) bool {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	return s.dbPending[pendingKey(local, remote, id)] > 0
}

// DialbackPending reports whether this server is waiting on the result of
// a dialback request it sent on its outbound stream id from local to
// remote (for the other nodes of a cluster, see SetDialbackElsewhere).
func (s *Service) DialbackPending(local, remote, id string) bool {
	return s.isPending(local, remote, id)
}

// SetDialbackElsewhere makes this server one node of a cluster for
// dialback: a remote server may verify a key one node sent by asking
// another (whichever its DNS names). The nodes share the secret the keys
// are made with; f asks the others whether one of them is waiting on that
// stream, so that a key is confirmed only while its stream is. Call it
// before serving.
func (s *Service) SetDialbackElsewhere(f func(ctx context.Context, local, remote, id string) bool) {
	s.dbElsewhere = f
}

// pendingAnywhere is isPending on this node or, in a cluster, another.
func (s *Service) pendingAnywhere(local, remote, id string) bool {
	if s.isPending(local, remote, id) {
		return true
	}
	if s.dbElsewhere == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, dialbackElsewhereTimeout)
	defer cancel()
	return s.dbElsewhere(ctx, local, remote, id)
}

// dialbackElsewhereTimeout bounds the question to the other nodes (asked
// only for a key that matches the shared secret).
const dialbackElsewhereTimeout = 2 * time.Second

// errDialbackInvalid: the authoritative server said the key is wrong.
var errDialbackInvalid = errors.New("dialback key invalid")

// verifyKey acts as the Receiving Server (XEP-0220 §2.1.2): it connects to
// the authoritative server of originating on a separate stream and asks
// whether key is valid for (receiving, originating, streamID).
func (s *Service) verifyKey(ctx context.Context, receiving, originating, streamID, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ConnectTimeout)
	defer cancel()
	ost, err := s.dial(ctx, receiving, originating)
	if err != nil {
		return err
	}
	defer ost.closeStream(nil)
	if ost.certErr != nil && s.cfg.RequireValidCerts {
		return fmt.Errorf("certificate of %s: %w", originating, ost.certErr)
	}
	req := "<db:verify from='" + wire.EscapeAttr(receiving) + "' to='" + wire.EscapeAttr(originating) +
		"' id='" + wire.EscapeAttr(streamID) + "'>" + wire.EscapeText(key) + "</db:verify>"
	if err := ost.send([]byte(req)); err != nil {
		return err
	}
	for {
		st, err := ost.rd.Next()
		if err != nil {
			return err
		}
		if isStreamError(st) {
			return fmt.Errorf("stream error from %s: %s", originating, streamErrorCondition(st))
		}
		if st.NS != nsDialback || st.Name != "verify" {
			continue
		}
		if st.ID != streamID || !sameDomain(st.From, originating) || !sameDomain(st.To, receiving) {
			continue // not the answer to our request
		}
		switch st.Type {
		case "valid":
			return nil
		case "invalid":
			return errDialbackInvalid
		default:
			return fmt.Errorf("dialback verify error from %s", originating)
		}
	}
}

func sameDomain(a, b string) bool {
	d, ok := domainOnly(a)
	return ok && d == b
}

func isStreamError(st *wire.Stanza) bool {
	return st.NS == wire.NSStream && st.Name == "error"
}

func streamErrorCondition(st *wire.Stanza) string {
	for _, e := range st.Tree().Elements() {
		if e.Name.Space == wire.NSStreams && e.Name.Local != "text" {
			return e.Name.Local
		}
	}
	return "undefined-condition"
}
