package s2s

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
	"time"
)

var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXMPPAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidDNSSRV   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// verifyChain checks that chain[0] chains to roots (RFC 6120 §13.7.2) and is
// valid for domain. Names come only from the subjectAltName extension:
// dNSName (with a single left-most wildcard label), xmppAddr and SRVName
// (_xmpp-server.<domain>), never from the subject DN.
func verifyChain(chain []*x509.Certificate, roots *x509.CertPool, domain string, now time.Time) error {
	if len(chain) == 0 {
		return errors.New("no certificate")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	if _, err := leaf.Verify(opts); err != nil {
		return err
	}
	if !certNames(leaf).match(domain) {
		return errors.New("certificate is not valid for " + domain)
	}
	return nil
}

type names struct {
	dns  []string
	xmpp []string
	srv  []string
}

func certNames(c *x509.Certificate) names {
	n := names{dns: c.DNSNames}
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) != 0 {
			continue
		}
		data := seq.Bytes
		for len(data) > 0 {
			var gn asn1.RawValue
			var err error
			data, err = asn1.Unmarshal(data, &gn)
			if err != nil {
				break
			}
			// otherName [0] { type-id OID, value [0] EXPLICIT ANY }
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue
			}
			var oid asn1.ObjectIdentifier
			rest, err := asn1.Unmarshal(gn.Bytes, &oid)
			if err != nil {
				continue
			}
			var wrapped asn1.RawValue
			if _, err := asn1.Unmarshal(rest, &wrapped); err != nil || wrapped.Tag != 0 {
				continue
			}
			var val asn1.RawValue
			if _, err := asn1.Unmarshal(wrapped.Bytes, &val); err != nil {
				continue
			}
			s := string(val.Bytes)
			switch {
			case oid.Equal(oidXMPPAddr) && val.Tag == asn1.TagUTF8String:
				n.xmpp = append(n.xmpp, s)
			case oid.Equal(oidDNSSRV) && val.Tag == asn1.TagIA5String:
				n.srv = append(n.srv, s)
			}
		}
	}
	return n
}

// match applies RFC 6125 rules for the XMPP server service: SRV-ID,
// DNS-ID (wildcard only as the complete left-most label) and the
// XMPP-specific xmppAddr (a bare domain).
func (n names) match(domain string) bool {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return false
	}
	for _, x := range n.xmpp {
		if strings.EqualFold(x, domain) {
			return true
		}
	}
	for _, s := range n.srv {
		if strings.EqualFold(s, "_xmpp-server."+domain) {
			return true
		}
	}
	for _, d := range n.dns {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == domain {
			return true
		}
		if rest, ok := strings.CutPrefix(d, "*."); ok && strings.Count(rest, ".") >= 1 {
			if _, parent, ok := strings.Cut(domain, "."); ok && parent == rest {
				return true
			}
		}
	}
	return false
}
