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
	TypeTLSUnique         = "tls-unique"
)

// ChannelBindings holds the channel binding data of one TLS connection as
// the server sees it. An empty field means that type is not available.
type ChannelBindings struct {
	TLSExporter       []byte
	TLSServerEndPoint []byte
	// TLSUnique exists on TLS 1.2 only (RFC 5929 §3; TLS 1.3 has no
	// equivalent). Clients such as slixmpp know no other type.
	TLSUnique []byte
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
	if len(cb.TLSUnique) > 0 {
		t = append(t, TypeTLSUnique)
	}
	return t
}

func (cb ChannelBindings) any() bool {
	return len(cb.TLSExporter) > 0 || len(cb.TLSServerEndPoint) > 0 || len(cb.TLSUnique) > 0
}

func (cb ChannelBindings) data(typ string) []byte {
	switch typ {
	case TypeTLSExporter:
		return cb.TLSExporter
	case TypeTLSServerEndPoint:
		return cb.TLSServerEndPoint
	case TypeTLSUnique:
		return cb.TLSUnique
	}
	return nil
}

// BindingsFromTLS returns the channel bindings of a completed TLS
// connection that the TLS state itself provides: tls-exporter (RFC 9266)
// on TLS 1.3, and on TLS 1.2 tls-exporter and tls-unique (RFC 5929) when
// the extended master secret (RFC 7627) was negotiated. Without it both are
// open to the triple-handshake attack (RFC 9266 §2, RFC 7627 §1), so a
// TLS 1.2 connection without it gets neither. crypto/tls tells by refusing
// ExportKeyingMaterial on such connections.
//
// TLSServerEndPoint is left empty: the ConnectionState only holds the peer's
// certificate, so the server fills it in with ServerEndPoint of its own.
func BindingsFromTLS(cs *tls.ConnectionState) ChannelBindings {
	var cb ChannelBindings
	if cs == nil || !cs.HandshakeComplete || cs.Version < tls.VersionTLS12 {
		return cb
	}
	ekm, err := cs.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
	if err != nil {
		return cb
	}
	cb.TLSExporter = ekm
	if cs.Version == tls.VersionTLS12 && len(cs.TLSUnique) > 0 {
		cb.TLSUnique = cs.TLSUnique
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
