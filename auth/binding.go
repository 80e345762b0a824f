package auth

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
)

// Channel binding type names (RFC 9266, RFC 5929) as used in the SCRAM
// gs2 header and the XEP-0440 advertisement.
const (
	TypeTLSExporter       = "tls-exporter"
	TypeTLSServerEndPoint = "tls-server-end-point"
)

// ChannelBindings holds the channel binding data of one TLS connection as
// the server sees it. An empty field means that type is not available.
type ChannelBindings struct {
	TLSExporter       []byte
	TLSServerEndPoint []byte
}

// Types lists the available binding types, preferred first, for the
// XEP-0440 <sasl-channel-binding/> feature.
func (cb ChannelBindings) Types() []string {
	var t []string
	if len(cb.TLSExporter) > 0 {
		t = append(t, TypeTLSExporter)
	}
	if len(cb.TLSServerEndPoint) > 0 {
		t = append(t, TypeTLSServerEndPoint)
	}
	return t
}

func (cb ChannelBindings) any() bool {
	return len(cb.TLSExporter) > 0 || len(cb.TLSServerEndPoint) > 0
}

func (cb ChannelBindings) data(typ string) []byte {
	switch typ {
	case TypeTLSExporter:
		return cb.TLSExporter
	case TypeTLSServerEndPoint:
		return cb.TLSServerEndPoint
	}
	return nil
}

// BindingsFromTLS returns the tls-exporter binding of a completed TLS 1.3
// connection. RFC 9266 §2 forbids tls-exporter on TLS 1.2 without the
// extended master secret, which crypto/tls does not let us check, so older
// versions get none.
//
// TLSServerEndPoint is left empty: the ConnectionState only holds the peer's
// certificate, so the server fills it in with ServerEndPoint of its own.
func BindingsFromTLS(cs *tls.ConnectionState) ChannelBindings {
	var cb ChannelBindings
	if cs == nil || !cs.HandshakeComplete || cs.Version < tls.VersionTLS13 {
		return cb
	}
	if ekm, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32); err == nil {
		cb.TLSExporter = ekm
	}
	return cb
}

// ServerEndPoint computes the tls-server-end-point binding of the server's
// certificate (RFC 5929 §4.1): the certificate hashed with its signature's
// hash, except that MD5 and SHA-1 are replaced by SHA-256. Signatures
// without a separate hash (Ed25519) are not covered by the RFC; SHA-256 is
// what other implementations use for them.
func ServerEndPoint(cert *x509.Certificate) []byte {
	if cert == nil || len(cert.Raw) == 0 {
		return nil
	}
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		s := sha512.Sum384(cert.Raw)
		return s[:]
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		s := sha512.Sum512(cert.Raw)
		return s[:]
	}
	s := sha256.Sum256(cert.Raw)
	return s[:]
}
