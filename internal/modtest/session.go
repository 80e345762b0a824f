package modtest

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// Session is a module.Session standing in for a c2s connection. It records
// every stanza it is sent, and keeps presence, priority and flags the way
// c2s does: SetPresence stores the presence and takes the priority from its
// <priority/> child (nil makes the session unavailable, priority 0).
//
// A new session is unavailable with no flags; Available makes it available
// without routing a presence. Methods are safe for concurrent use.
type Session struct {
	// OnSend, when set, is called with every stanza sent to the session
	// before it is recorded, on the sender's goroutine (e.g. to look at
	// the store at delivery time). Set it before the session can receive.
	OnSend func(st *wire.Stanza)

	j     jid.JID
	mu    sync.Mutex
	got   []*wire.Stanza
	pres  *wire.Stanza
	prio  int
	flags module.Flags
	vals  map[string][]byte
}

var _ module.SessionValues = (*Session)(nil)

// Value implements module.SessionValues.
func (s *Session) Value(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vals[key]
}

// SetValue implements module.SessionValues.
func (s *Session) SetValue(key string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(v) == 0 {
		delete(s.vals, key)
		return
	}
	if s.vals == nil {
		s.vals = map[string][]byte{}
	}
	s.vals[key] = append([]byte(nil), v...)
}

// NewSession returns an unbound, unavailable session for a full JID; it
// panics if full does not parse.
func NewSession(full string) *Session {
	return &Session{j: jid.MustParse(full)}
}

// Available makes s available with the given priority, as if the client
// had sent initial presence (nothing is routed), and returns s.
func (s *Session) Available(priority int) *Session {
	p := "<presence/>"
	if priority != 0 {
		p = "<presence><priority>" + strconv.Itoa(priority) + "</priority></presence>"
	}
	s.SetPresence(wire.MustParse(p))
	return s
}

// JID returns the session's full JID.
func (s *Session) JID() jid.JID { return s.j }

// Send records st (after calling OnSend). It never fails.
func (s *Session) Send(st *wire.Stanza) error {
	if s.OnSend != nil {
		s.OnSend(st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, st)
	return nil
}

// Presence returns the last presence set, nil when unavailable.
func (s *Session) Presence() *wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pres
}

// SetPresence stores st and its priority (0 when absent, invalid or st is
// nil).
func (s *Session) SetPresence(st *wire.Stanza) {
	prio := 0
	if st != nil {
		if v, err := strconv.Atoi(st.Child(wire.NSClient, "priority").Text()); err == nil {
			prio = v
		}
	}
	s.mu.Lock()
	s.pres, s.prio = st, prio
	s.mu.Unlock()
}

// Priority returns the priority of the current presence.
func (s *Session) Priority() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.prio
}

// Flags returns the session's flags.
func (s *Session) Flags() module.Flags {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flags
}

// SetFlags sets the flags in set, then clears those in clear.
func (s *Session) SetFlags(set, clear module.Flags) {
	s.mu.Lock()
	s.flags = (s.flags | set) &^ clear
	s.mu.Unlock()
}

// Close does nothing: the test decides when a session ends (Env.Logout).
func (s *Session) Close(*wire.StreamError) {}

// ConnID returns "test-" and the full JID.
func (s *Session) ConnID() string { return "test-" + s.j.String() }

// Take returns and forgets everything the session received, oldest first.
func (s *Session) Take() []*wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	got := s.got
	s.got = nil
	return got
}

// Received returns what the session received and has not been taken,
// oldest first, without forgetting it.
func (s *Session) Received() []*wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*wire.Stanza(nil), s.got...)
}

// Find removes and returns the first received stanza matching pred, or
// nil; the other stanzas stay in place.
func (s *Session) Find(pred func(*wire.Stanza) bool) *wire.Stanza {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.got {
		if pred(st) {
			s.got = append(s.got[:i:i], s.got[i+1:]...)
			return st
		}
	}
	return nil
}

// Expect removes and returns the first received stanza matching pred; it
// fails the test, listing what was received, when there is none. desc
// names the expected stanza in the failure.
func (s *Session) Expect(t testing.TB, desc string, pred func(*wire.Stanza) bool) *wire.Stanza {
	t.Helper()
	st := s.Find(pred)
	if st == nil {
		t.Fatalf("%s: %s did not receive it; got %s", desc, s.j, Dump(s.Take()))
	}
	return st
}

// Await is Expect for a stanza sent asynchronously (from a module's
// goroutine or timer): it polls until one matches, for at most 10 s.
func (s *Session) Await(t testing.TB, desc string, pred func(*wire.Stanza) bool) *wire.Stanza {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st := s.Find(pred); st != nil {
			return st
		}
	}
	return s.Expect(t, desc, pred)
}

// ExpectNone fails the test if the session received a stanza matching
// pred.
func (s *Session) ExpectNone(t testing.TB, desc string, pred func(*wire.Stanza) bool) {
	t.Helper()
	if st := s.Find(pred); st != nil {
		t.Fatalf("%s: %s unexpectedly received %s", desc, s.j, st.Raw)
	}
}
