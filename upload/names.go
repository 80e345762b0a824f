package upload

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"mime"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-xmpp/parley/storage"
)

// Slot ids: 128 random bits in lower-case base32 (26 characters).
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const idLen = 26

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}

func validID(s string) bool {
	if len(s) != idLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// sanitizeFilename returns the name to store and serve, or an error for
// names that cannot be a plain file name: empty, not UTF-8, with a path
// separator, "." or "..", control characters or too long. Surrounding
// white space is trimmed and Unicode format characters (such as the
// right-to-left override, used to disguise extensions) are removed.
func sanitizeFilename(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", errors.New("the file name is not valid UTF-8")
	}
	if strings.ContainsAny(name, `/\`) {
		return "", errors.New("the file name must not contain a path")
	}
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsControl(r):
			return "", errors.New("the file name must not contain control characters")
		case unicode.Is(unicode.Cf, r):
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimSpace(b.String())
	switch {
	case name == "":
		return "", errors.New("the file name must not be empty")
	case name == "." || name == "..":
		return "", errors.New("the file name must not be . or ..")
	case len(name) > maxFilenameLen:
		return "", errors.New("the file name is longer than " + strconv.Itoa(maxFilenameLen) + " bytes")
	}
	return name, nil
}

// normalizeContentType returns the canonical form of a declared media
// type ("" stays ""), or an error when it does not parse.
func normalizeContentType(ct string) (string, error) {
	if strings.TrimSpace(ct) == "" {
		return "", nil
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "", errors.New("the content type is not a valid media type")
	}
	out := mime.FormatMediaType(mt, params)
	if out == "" || len(out) > 255 {
		return "", errors.New("the content type is not a valid media type")
	}
	return out, nil
}

// sameMediaType compares the media types (not the parameters) of a
// declared and a received Content-Type.
func sameMediaType(declared, got string) bool {
	a, _, err1 := mime.ParseMediaType(declared)
	b, _, err2 := mime.ParseMediaType(got)
	return err1 == nil && err2 == nil && a == b
}

// inlineTypes are shown by browsers without running anything; every other
// type is served as an attachment.
var inlineTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true, "image/avif": true,
	"image/heic": true, "image/heif": true, "image/bmp": true, "image/apng": true, "image/jxl": true,
	"text/plain": true, "application/pdf": false, // PDF viewers run scripts
}

// serveType returns the Content-Type to serve and whether the file may be
// shown inline.
func serveType(ct string) (string, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil {
		return "application/octet-stream", false
	}
	if inlineTypes[mt] || strings.HasPrefix(mt, "audio/") || strings.HasPrefix(mt, "video/") {
		return ct, true
	}
	return ct, false
}

// signer makes and checks the PUT authorization of a slot.
type signer struct{ key []byte }

func newSigner(secret []byte) signer {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
	}
	// Derive a key of our own so that a shared server secret is not used
	// for two purposes.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("parley xep-0363 slot signature v1"))
	return signer{key: mac.Sum(nil)}
}

func (s signer) mac(u storage.Upload) []byte {
	m := hmac.New(sha256.New, s.key)
	for _, f := range []string{u.ID, u.Owner, u.Filename, strconv.FormatInt(u.Size, 10), u.ContentType,
		strconv.FormatInt(u.Expires.Unix(), 10)} {
		m.Write([]byte(strconv.Itoa(len(f))))
		m.Write([]byte{':'})
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// authorization is the Authorization header value for the slot's PUT.
func (s signer) authorization(u storage.Upload) string {
	return "Bearer " + base64.RawURLEncoding.EncodeToString(s.mac(u))
}

// verify checks an Authorization header value against the slot.
func (s signer) verify(u storage.Upload, header string) bool {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return false
	}
	return hmac.Equal(got, s.mac(u))
}
