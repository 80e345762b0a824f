package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
)

// clientFirst handles gs2-header client-first-message-bare (RFC 5802 §7)
// and answers with server-first-message.
func (n *Negotiation) clientFirst(ctx context.Context, in string) ([]byte, error) {
	flag, rest, ok1 := strings.Cut(in, ",")
	authzField, bareMsg, ok2 := strings.Cut(rest, ",")
	if !ok1 || !ok2 {
		return nil, fail(CondMalformedRequest, "bad GS2 header")
	}
	gs2 := in[:len(in)-len(bareMsg)]

	var cbType string
	switch {
	case flag == "n" || flag == "y":
	case strings.HasPrefix(flag, "p=") && validCBName(flag[2:]):
		cbType = flag[2:]
	default:
		return nil, fail(CondMalformedRequest, "bad GS2 header")
	}
	var authzid string
	if authzField != "" {
		v, ok := strings.CutPrefix(authzField, "a=")
		authzid, ok2 = decodeSaslname(v)
		if !ok || !ok2 || authzid == "" {
			return nil, fail(CondMalformedRequest, "bad authzid")
		}
	}

	// Channel binding is settled before the account is looked at, so its
	// outcome cannot depend on whether the account exists.
	var cbData []byte
	switch {
	case n.plus && cbType == "":
		return nil, fail(CondMalformedRequest, n.mech+" needs channel binding")
	case !n.plus && cbType != "":
		return nil, fail(CondMalformedRequest, "channel binding needs a -PLUS mechanism")
	// A 'y' flag while we offered -PLUS would be a downgrade sign (RFC 5802
	// §6) if both sides knew the same binding types. They often do not:
	// slixmpp and other clients implement only tls-unique, which TLS 1.3
	// does not have, so they try -PLUS, fail, and fall back with 'y'.
	// Refusing them locks real users out; clients that share a binding type
	// with us use -PLUS and keep its protection, and XEP-0440 tells them
	// which types we have.
	case cbType != "":
		if cbData = n.cb.data(cbType); len(cbData) == 0 {
			return nil, fail(CondMalformedRequest, "unsupported channel binding type")
		}
	}
	n.cbInput = append([]byte(gs2), cbData...)

	attrs := strings.Split(bareMsg, ",")
	if len(attrs) < 2 {
		return nil, fail(CondMalformedRequest, "missing attributes")
	}
	if strings.HasPrefix(attrs[0], "m=") {
		// RFC 5802 §5.1: an unknown mandatory extension must fail.
		return nil, fail(CondMalformedRequest, "unsupported mandatory extension")
	}
	v, ok := strings.CutPrefix(attrs[0], "n=")
	username, ok2 := decodeSaslname(v)
	if !ok || !ok2 || username == "" {
		return nil, fail(CondMalformedRequest, "bad username")
	}
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(cnonce) {
		return nil, fail(CondMalformedRequest, "bad nonce")
	}
	if !validExtensions(attrs[2:]) {
		return nil, fail(CondMalformedRequest, "bad extension")
	}

	bare, valid, err := n.identify(username, authzid)
	if err != nil {
		return nil, err
	}
	if valid {
		creds, _, err := n.lookup(ctx, bare)
		if err != nil {
			return nil, err
		}
		n.cred, n.known = credFor(creds, n.hash)
	}
	if n.known {
		n.s.lastIter.Store(int64(n.cred.Iterations))
	} else {
		// Unknown accounts (and ones without this hash) get the same
		// conversation and fail only at the proof.
		n.cred = n.s.fakeCredential(n.hash, n.fakeKey(username))
	}

	n.nonce = cnonce + n.s.nonce()
	n.clientFirstBare = bareMsg
	n.serverFirst = "r=" + n.nonce +
		",s=" + base64.StdEncoding.EncodeToString(n.cred.Salt) +
		",i=" + strconv.Itoa(n.cred.Iterations)
	if n.ssdp != "" {
		n.serverFirst += ",h=" + base64.StdEncoding.EncodeToString(n.hash.sum([]byte(n.ssdp)))
	}
	return []byte(n.serverFirst), nil
}

// clientFinal checks client-final-message and answers with the server
// signature.
func (n *Negotiation) clientFinal(ctx context.Context, in string) ([]byte, error) {
	attrs := strings.Split(in, ",")
	if len(attrs) < 3 {
		return nil, fail(CondMalformedRequest, "missing attributes")
	}
	last := attrs[len(attrs)-1]
	c64, ok1 := strings.CutPrefix(attrs[0], "c=")
	nonce, ok2 := strings.CutPrefix(attrs[1], "r=")
	p64, ok3 := strings.CutPrefix(last, "p=")
	if !ok1 || !ok2 || !ok3 || !validExtensions(attrs[2:len(attrs)-1]) {
		return nil, fail(CondMalformedRequest, "bad client-final-message")
	}
	cbInput, err1 := base64.StdEncoding.DecodeString(c64)
	proof, err2 := base64.StdEncoding.DecodeString(p64)
	if err1 != nil || err2 != nil || len(proof) != n.hash.size {
		return nil, fail(CondMalformedRequest, "bad client-final-message")
	}
	if subtle.ConstantTimeCompare(cbInput, n.cbInput) != 1 {
		return nil, fail(CondNotAuthorized, "channel binding mismatch")
	}
	if nonce != n.nonce {
		return nil, fail(CondNotAuthorized, "nonce mismatch")
	}
	if err := n.beforeVerify(ctx); err != nil {
		return nil, err
	}

	withoutProof := in[:len(in)-len(last)-1]
	authMessage := n.clientFirstBare + "," + n.serverFirst + "," + withoutProof
	h := n.hash
	clientKey := h.hmac(n.cred.StoredKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, proof)
	match := subtle.ConstantTimeCompare(h.sum(clientKey), n.cred.StoredKey) == 1
	if !match || !n.known {
		return nil, fail(CondNotAuthorized, "")
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(h.hmac(n.cred.ServerKey, authMessage))), nil
}

// decodeSaslname undoes the =2C and =3D escaping of RFC 5802 §5.1; any other
// '=' or a NUL makes the name invalid.
func decodeSaslname(s string) (string, bool) {
	if !strings.ContainsAny(s, "=\x00") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
			return "", false
		case c != '=':
			b.WriteByte(c)
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
			i += 2
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// validNonce: printable ASCII except ',' (RFC 5802 §7).
func validNonce(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e || s[i] == ',' {
			return false
		}
	}
	return s != ""
}

func validCBName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && (c < '0' || c > '9') && c != '.' && c != '-' {
			return false
		}
	}
	return s != ""
}

// validExtensions accepts optional attr-val extensions, which we ignore.
func validExtensions(exts []string) bool {
	for _, e := range exts {
		if len(e) < 2 || !isAlpha(e[0]) || e[1] != '=' {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
