package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/parley-xmpp/parley/storage"
)

// APITokenPrefix starts every admin API token, so that secret scanners
// and people recognize one.
const APITokenPrefix = "parley_"

// CreateAPIToken creates a bearer token for the HTTP admin API and returns
// it (shown once: only its hash is stored) with its ID.
func (s *Service) CreateAPIToken(ctx context.Context, name string) (token, id string, err error) {
	if len(name) > 200 {
		return "", "", badInput("the name is longer than 200 characters")
	}
	token = APITokenPrefix + randText() + randText()
	hash := tokenHash(token)
	id = publicID(hash)
	if err := s.store.CreateAPIToken(ctx, storage.APIToken{ID: id, TokenHash: hash, Name: name,
		Created: s.now().UTC()}); err != nil {
		return "", "", fmt.Errorf("storing the token: %w", err)
	}
	s.log.Info("admin API token created", "id", id, "name", name)
	return token, id, nil
}

// ListAPITokens lists the tokens (without their secret).
func (s *Service) ListAPITokens(ctx context.Context) ([]storage.APIToken, error) {
	return s.store.ListAPITokens(ctx)
}

// RevokeAPIToken deletes a token by ID.
func (s *Service) RevokeAPIToken(ctx context.Context, id string) error {
	err := s.store.DeleteAPIToken(ctx, strings.TrimSpace(id))
	if errors.Is(err, storage.ErrNotFound) {
		return badInput("no such token")
	}
	if err == nil {
		s.log.Info("admin API token revoked", "id", id)
	}
	return err
}

// CheckAPIToken returns the token's ID when token is valid.
func (s *Service) CheckAPIToken(ctx context.Context, token string) (string, bool) {
	if !strings.HasPrefix(token, APITokenPrefix) || len(token) > MaxTokenBytes {
		return "", false
	}
	t, err := s.store.APITokenByHash(ctx, tokenHash(token))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("admin API token lookup failed", "err", err)
		}
		return "", false
	}
	return t.ID, true
}
