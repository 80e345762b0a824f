package sm

import (
	"errors"
	"time"
)

// Handover is the state of a resumable session moving to another node of a
// cluster: a client resumes there (XEP-0198 §5) while the session lives on
// the node it left. It holds everything the new node needs to continue
// exactly where the old one stopped.
type Handover struct {
	JID     string         `json:"jid"`
	ID      string         `json:"id"`  // resumption id (the client's previd)
	Max     time.Duration  `json:"max"` // how long it stays resumable
	HIn     uint32         `json:"h_in"`
	Acked   uint32         `json:"acked"` // last h the client acknowledged
	Unacked []HandoverItem `json:"unacked,omitempty"`
	// Presence is the session's available presence (nil: unavailable).
	Presence []byte   `json:"presence,omitempty"`
	Flags    uint32   `json:"flags,omitempty"`
	Inactive bool     `json:"inactive,omitempty"` // XEP-0352
	Held     [][]byte `json:"held,omitempty"`     // held while inactive
	// Values are the modules' per-session state (module.SessionValues).
	Values map[string][]byte `json:"values,omitempty"`
}

// HandoverItem is one stanza the client has not acknowledged.
type HandoverItem struct {
	Raw   []byte    `json:"raw"`
	Stamp time.Time `json:"stamp"`
}

// NewQueueAt returns an empty queue whose client has acknowledged acked
// stanzas, for a session continued from a Handover (limits as NewQueue).
func NewQueueAt(max, maxBytes int, acked uint32) *Queue {
	return &Queue{max: max, maxBytes: maxBytes, sent: acked, acked: acked}
}

// Acked is the last h the client acknowledged.
func (q *Queue) Acked() uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.acked
}

// ErrUnknownID: no resumable session has this id (for this account).
var ErrUnknownID = errors.New("sm: no resumable session with this id")
