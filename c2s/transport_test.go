package c2s

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/wire"
)

// selfSigned returns a throwaway certificate for localhost.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestTLSStateReadWhileUpgrading: what other goroutines ask a TCP stream
// (secure, kind, the TLS state; closeStream at shutdown) is safe while its
// reader upgrades it to TLS (-race found shutdown reading the TLS flag
// STARTTLS was setting).
func TestTLSStateReadWhileUpgrading(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() == nil {
			var buf [64]byte
			_, _ = tc.Read(buf[:]) // until the server ends the stream
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTCPTransport(c, wire.Limits{}, 5*time.Second)
	defer tr.close()
	upgraded := make(chan error, 1)
	go func() { upgraded <- tr.startTLS(&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}) }()
	deadline := time.Now().Add(10 * time.Second)
	for !tr.secure() {
		if tr.kind() != "tcp" || tr.tlsState() != nil {
			t.Fatal("TLS state before the upgrade")
		}
		if time.Now().After(deadline) {
			t.Fatal("no TLS after 10s")
		}
		time.Sleep(time.Millisecond)
	}
	if err := <-upgraded; err != nil {
		t.Fatal(err)
	}
	if tr.kind() != "tls" || tr.tlsState() == nil {
		t.Fatalf("after the upgrade: kind %s, state %v", tr.kind(), tr.tlsState())
	}
	tr.closeStream(nil)
}
