package admin

import (
	"context"
	"errors"
	"time"

	"github.com/parley-xmpp/parley/abuse"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
)

// DisableUser suspends an account (abuse.Suspend: login refused with
// account-disabled, sessions ended, nothing deleted) for d (0: until
// enabled again); by names who did it for the record.
func (s *Service) DisableUser(ctx context.Context, user, reason, by string, d time.Duration) (string, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return "", err
	}
	if d < 0 {
		return "", badInput("the duration must be positive")
	}
	if len(reason) > 1000 {
		return "", badInput("the reason is longer than 1000 characters")
	}
	sp := storage.Suspension{Account: bare, Reason: reason, By: by, Since: s.now()}
	if d > 0 {
		sp.Until = sp.Since.Add(d)
	}
	var sessions module.Sessions
	if o := s.online.Load(); o != nil {
		sessions = o.Online
	}
	switch err := abuse.Suspend(ctx, s.store, sessions, sp); {
	case errors.Is(err, abuse.ErrNoSuchAccount):
		return "", ErrNoSuchUser
	case err != nil:
		return "", err
	}
	s.log.Info("account disabled", "jid", bare, "by", by, "until", sp.Until)
	return bare, nil
}

// EnableUser lifts a suspension.
func (s *Service) EnableUser(ctx context.Context, user string) (string, error) {
	bare, err := s.UserJID(user)
	if err != nil {
		return "", err
	}
	switch err := abuse.Unsuspend(ctx, s.store, bare); {
	case errors.Is(err, abuse.ErrNotSuspended):
		return "", badInput("%s is not disabled", bare)
	case err != nil:
		return "", err
	}
	s.log.Info("account enabled again", "jid", bare)
	return bare, nil
}

// DisabledUsers lists the suspensions in force.
func (s *Service) DisabledUsers(ctx context.Context) ([]storage.Suspension, error) {
	all, err := s.store.ListSuspensions(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := all[:0]
	for _, sp := range all {
		if sp.Active(now) {
			out = append(out, sp)
		}
	}
	return out, nil
}
