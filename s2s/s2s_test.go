package s2s

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

func TestDialbackKeyVector(t *testing.T) {
	// XEP-0220 §2.1.1 example.
	s := New(Config{DialbackSecret: []byte("s3cr3tf0rd14lb4ck")}, nil)
	got := s.dialbackKey("montague.example", "capulet.example", "D60000229F")
	const want = "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
	if got != want {
		t.Fatalf("key = %s, want %s", got, want)
	}
	if !s.checkKey("montague.example", "capulet.example", "D60000229F", " "+want+"\n") {
		t.Error("checkKey rejects the right key")
	}
	for _, c := range [][3]string{
		{"montague.example", "capulet.example", "D60000229X"},
		{"capulet.example", "montague.example", "D60000229F"},
		{"montague.example capulet.example", "", "D60000229F"},
		{"montague.example", "capulet.example", ""},
	} {
		if s.checkKey(c[0], c[1], c[2], want) {
			t.Errorf("checkKey accepts %q", c)
		}
	}
}

func TestNameMatch(t *testing.T) {
	n := names{dns: []string{"example.com", "*.chat.example.org"}, xmpp: []string{"im.example.net"}, srv: []string{"_xmpp-server.srv.example"}}
	for domain, want := range map[string]bool{
		"example.com":          true,
		"EXAMPLE.com.":         true,
		"a.example.com":        false,
		"x.chat.example.org":   true,
		"chat.example.org":     false,
		"a.b.chat.example.org": false,
		"im.example.net":       true,
		"srv.example":          true,
		"":                     false,
	} {
		if got := n.match(domain); got != want {
			t.Errorf("match(%q) = %v, want %v", domain, got, want)
		}
	}
	if (names{dns: []string{"*.com"}}).match("example.com") {
		t.Error("*.com matched example.com")
	}
}

func otherName(t *testing.T, oid asn1.ObjectIdentifier, val []byte) asn1.RawValue {
	t.Helper()
	o, err := asn1.Marshal(oid)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val})
	if err != nil {
		t.Fatal(err)
	}
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(o, inner...)}
}

// TestXMPPAddrCertificate: a certificate whose only name is an xmppAddr
// validates for that domain; the subject CN never counts.
func TestXMPPAddrCertificate(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)

	utf8, _ := asn1.MarshalWithParams("xmpp.example", "utf8")
	ia5, _ := asn1.MarshalWithParams("_xmpp-server.srv.example", "ia5")
	san, err := asn1.Marshal([]asn1.RawValue{otherName(t, oidXMPPAddr, utf8), otherName(t, oidDNSSRV, ia5)})
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "cn.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: oidSAN, Value: san}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &leafKey.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{leaf}
	if err := verifyChain(chain, pool, "xmpp.example", time.Now()); err != nil {
		t.Errorf("xmppAddr: %v", err)
	}
	if err := verifyChain(chain, pool, "srv.example", time.Now()); err != nil {
		t.Errorf("SRVName: %v", err)
	}
	if err := verifyChain(chain, pool, "cn.example", time.Now()); err == nil {
		t.Error("the subject CN was accepted as a name")
	}
	if err := verifyChain(chain, x509.NewCertPool(), "xmpp.example", time.Now()); err == nil {
		t.Error("untrusted chain accepted")
	}
	if err := verifyChain(chain, pool, "xmpp.example", time.Now().Add(2*time.Hour)); err == nil {
		t.Error("expired certificate accepted")
	}
}
