package upload

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
)

// FuzzSlotRequest: any XEP-0363 slot request (and anything else sent to
// the upload service) is answered exactly once, with a defined condition
// when refused, and never makes the server write malformed XML.
func FuzzSlotRequest(f *testing.F) {
	for _, s := range []string{
		"<request xmlns='urn:xmpp:http:upload:0' filename='photo &amp; co.jpg' size='23456' content-type='image/jpeg'/>",
		"<request xmlns='urn:xmpp:http:upload:0' filename='../../etc/passwd' size='-1'/>",
		"<request xmlns='urn:xmpp:http:upload:0' filename='a' size='99999999999999999999999' content-type='text/html; charset=\"x\"'/>",
		"<request xmlns='urn:xmpp:http:upload:0' filename='&#x202e;gpj.exe' size='1'/>",
		"<query xmlns='http://jabber.org/protocol/disco#info'/>",
	} {
		f.Add([]byte(s))
	}
	e := modtest.New(f)
	blobs, err := NewDiskBlobs(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	m := New(Config{Domains: []string{modtest.Domain}, Secret: []byte("fuzz"), Settings: Settings{MaxFileSize: 1 << 20, Quota: 4 << 20},
		BaseURLFunc: func(string) string { return "https://example.org/upload" }}, e.Store, blobs)
	e.Register(m)
	a := e.Login("alice@example.org/fuzz")
	f.Fuzz(func(t *testing.T, payload []byte) {
		e.CheckIQ(t, a, "get", "upload."+modtest.Domain, payload)
	})
}
