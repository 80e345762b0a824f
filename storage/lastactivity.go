package storage

import (
	"context"
	"time"
)

// LastActivity keeps, per account, when the user last went offline and
// the status text of that unavailable presence (XEP-0012). It goes with
// the account (DeleteAccount).
type LastActivity interface {
	// SetLastActivity records that owner went offline at with status;
	// ErrNotFound when the account does not exist.
	SetLastActivity(ctx context.Context, owner string, at time.Time, status string) error
	// LastActivity returns what was recorded, ErrNotFound when nothing was.
	LastActivity(ctx context.Context, owner string) (at time.Time, status string, err error)
}
