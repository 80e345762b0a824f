package storage

import (
	"context"
	"time"
)

// PushRegistration is one XEP-0357 push service a user enabled: the App
// Server's JID and node, and the publish-options data form sent with every
// notification.
type PushRegistration struct {
	JID  string // the XMPP Push Service (App Server)
	Node string
	// Form is the raw <x xmlns='jabber:x:data'/> publish-options element
	// given at enable time, passed through unchanged; nil when none (an
	// empty form is stored as none).
	Form    []byte
	Created time.Time
}

// PushRegistrations stores users' enabled push services (XEP-0357).
// DeleteAccount removes them with the account.
type PushRegistrations interface {
	// AddPush enables a service; an existing registration with the same
	// JID and node is replaced (new form and creation time).
	AddPush(ctx context.Context, owner string, r PushRegistration) error
	// RemovePush disables the registration for jid and node, or every
	// registration for jid when node is "". Removing what does not exist
	// is not an error.
	RemovePush(ctx context.Context, owner, jid, node string) error
	// Pushes returns the owner's registrations, in no particular order.
	Pushes(ctx context.Context, owner string) ([]PushRegistration, error)
}
