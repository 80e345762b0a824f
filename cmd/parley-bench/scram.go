package main

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// scramClient is the client side of SCRAM-SHA-256 (RFC 5802, RFC 7677)
// without channel binding. Real clients (Conversations, Dino) keep the
// salted password once they have computed it; the cache does the same, so
// that a login storm measures the server rather than the load tool's
// PBKDF2. With cache nil every login pays the full derivation.
type scramClient struct {
	user, password string
	cache          *saltCache

	nonce, clientFirstBare, authMessage string
	serverSignature                     []byte
}

// saltCache maps salt and iteration count to the salted password.
type saltCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newSaltCache() *saltCache { return &saltCache{m: map[string][]byte{}} }

func (c *saltCache) get(password string, salt []byte, iter int) ([]byte, error) {
	key := ""
	if c != nil {
		key = string(salt) + "\x00" + strconv.Itoa(iter) + "\x00" + password
		c.mu.Lock()
		v, ok := c.m[key]
		c.mu.Unlock()
		if ok {
			return v, nil
		}
	}
	v, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.mu.Lock()
		c.m[key] = v
		c.mu.Unlock()
	}
	return v, nil
}

// first returns the client-first-message.
func (s *scramClient) first() string {
	s.nonce = rand.Text()
	user := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	s.clientFirstBare = "n=" + user + ",r=" + s.nonce
	return "n,," + s.clientFirstBare
}

// final answers the server-first-message with the client-final-message.
func (s *scramClient) final(serverFirst string) (string, error) {
	var nonce, salt64 string
	iter := 0
	for _, f := range strings.Split(serverFirst, ",") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "r":
			nonce = v
		case "s":
			salt64 = v
		case "i":
			iter, _ = strconv.Atoi(v)
		}
	}
	if !strings.HasPrefix(nonce, s.nonce) || nonce == s.nonce || iter <= 0 {
		return "", fmt.Errorf("scram: bad server-first-message %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return "", fmt.Errorf("scram: bad salt: %w", err)
	}
	salted, err := s.cache.get(s.password, salt, iter)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + nonce
	s.authMessage = s.clientFirstBare + "," + serverFirst + "," + withoutProof
	sig := hmacSHA256(storedKey[:], s.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	s.serverSignature = hmacSHA256(hmacSHA256(salted, "Server Key"), s.authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

// verify checks the server-final-message.
func (s *scramClient) verify(serverFinal string) error {
	v, ok := strings.CutPrefix(serverFinal, "v=")
	if !ok {
		return fmt.Errorf("scram: server-final-message %q", serverFinal)
	}
	got, err := base64.StdEncoding.DecodeString(v)
	if err != nil || subtle.ConstantTimeCompare(got, s.serverSignature) != 1 {
		return errors.New("scram: wrong server signature")
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
