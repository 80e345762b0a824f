// Package abuse holds what an administrator of a public server needs
// against abuse: account suspension (this file, callable from the CLI, the
// XEP-0133 admin commands and the HTTP admin API), and the Module that
// enforces suspensions on live sessions, blocks unsolicited messages from
// strangers and records XEP-0377 spam reports.
package abuse

import (
	"context"
	"errors"
	"fmt"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// ErrNotSuspended is returned by Unsuspend for an account without a
// suspension.
var ErrNotSuspended = errors.New("the account is not suspended")

// ErrNoSuchAccount is returned by Suspend for an account that does not
// exist.
var ErrNoSuchAccount = errors.New("no such account")

// Suspend disables login for s.Account without deleting anything (its
// roster, archive, offline messages, PEP data stay; contacts see it
// offline) and ends its live sessions, hibernated ones included. s.Since
// defaults to now; a zero s.Until suspends until Unsuspend. sessions may
// be nil (no server in this process: the CLI); a running server then ends
// them within its check interval. Logging in is refused with
// account-disabled and the reason, after a correct password only.
func Suspend(ctx context.Context, st storage.Suspensions, sessions module.Sessions, s storage.Suspension) error {
	if s.Since.IsZero() {
		s.Since = time.Now()
	}
	if !s.Until.IsZero() && !s.Until.After(s.Since) {
		return fmt.Errorf("the suspension of %s would end before it starts", s.Account)
	}
	switch err := st.SuspendAccount(ctx, s); {
	case errors.Is(err, storage.ErrNotFound):
		return ErrNoSuchAccount
	case err != nil:
		return fmt.Errorf("suspending %s: %w", s.Account, err)
	}
	EndSessions(sessions, s)
	return nil
}

// Unsuspend lifts a suspension: the account can log in again.
func Unsuspend(ctx context.Context, st storage.Suspensions, bare string) error {
	switch err := st.UnsuspendAccount(ctx, bare); {
	case errors.Is(err, storage.ErrNotFound):
		return ErrNotSuspended
	case err != nil:
		return fmt.Errorf("lifting the suspension of %s: %w", bare, err)
	}
	return nil
}

// EndSessions closes every session of a suspended account with a stream
// error that says why; it returns how many there were.
func EndSessions(sessions module.Sessions, s storage.Suspension) int {
	if sessions == nil {
		return 0
	}
	j, err := jid.Parse(s.Account)
	if err != nil {
		return 0
	}
	list := sessions.Resources(j.Bare())
	for _, sess := range list {
		sess.Close(&wire.StreamError{Condition: wire.CondNotAuthorized, Text: s.Describe()})
	}
	return len(list)
}
