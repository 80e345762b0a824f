package storage

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"math/big"
	"sync"
	"time"
)

// ArchivedMessage is one message in a user's archive (XEP-0313).
type ArchivedMessage struct {
	// ID is the archive UID (also the XEP-0359 stanza-id). Assigned by
	// AppendArchive; see NewArchiveID.
	ID string
	// Owner is the bare JID of the archive.
	Owner string
	// With is the bare JID of the other party (the owner's own bare JID
	// for messages to self).
	With string
	// WithResource is the other party's resource, if it had one ("" for a
	// bare address). Lets a 'with' filter on a full JID match.
	WithResource string
	// Timestamp is when the server received the message; the zero time
	// means now. Kept at microsecond precision.
	Timestamp time.Time
	// OriginID is the XEP-0359 origin-id given by the sending client, or "".
	OriginID string
	// FromFull is the full JID of the sender as the server saw it.
	FromFull string
	// Raw is the message stanza as received.
	Raw []byte
}

// ArchiveQuery selects and pages messages of one archive. Results are
// always in archive order: ascending (Timestamp, ID).
//
// The filter (With, WithResource, Start, End, AfterID, BeforeID, IDs,
// Fulltext) defines the result set; Count and FirstIndex refer to it. The
// paging fields (PageAfter, PageBefore, Last, Index, Max) pick one page of
// that set.
type ArchiveQuery struct {
	With         string    // bare JID of the other party; "" for any
	WithResource string    // with With: only this resource of it
	Start, End   time.Time // inclusive bounds; zero for none
	AfterID      string    // only messages after this one (exclusive)
	BeforeID     string    // only messages before this one (exclusive)
	IDs          []string  // only these messages (nil: no restriction)
	// Fulltext (XEP-0431), when not blank, keeps the messages whose
	// searchable text contains every whitespace-separated word of it,
	// case-insensitively. Searchable text is the plain <body/> of a
	// message; messages with end-to-end encryption (OMEMO, OpenPGP) are
	// never indexed and never match, nor do messages larger than
	// MaxFulltextBytes. A store whose index is off or not yet complete
	// answers ErrFulltextUnavailable rather than partial results.
	Fulltext string

	// PageAfter returns the page after this message (forward paging).
	PageAfter string
	// PageBefore returns the page before this message (backward paging).
	PageBefore string
	// Last returns the last page of the result set instead of the first
	// (RSM <before/>; implied by PageBefore).
	Last bool
	// Index, when positive, returns the page that starts at this position
	// of the result set (RSM <index/>, XEP-0059 §2.5); an empty page when
	// it is at or beyond Count. It cannot be combined with PageAfter,
	// PageBefore or Last.
	Index int
	// Max is the page size. With Max <= 0 no messages are returned, only
	// Count.
	Max int
}

// Validate reports a query whose paging fields contradict each other.
func (q ArchiveQuery) Validate() error {
	if q.Index < 0 {
		return errors.New("archive query: negative index")
	}
	if q.Index > 0 && (q.PageAfter != "" || q.PageBefore != "" || q.Last) {
		return errors.New("archive query: an index cannot be combined with after, before or last")
	}
	return nil
}

// ArchivePage is one page of an ArchiveQuery.
type ArchivePage struct {
	Messages []ArchivedMessage // in archive order
	// Complete reports that no further message of the result set lies
	// beyond this page in the paging direction (after it for forward
	// paging, before it for backward paging).
	Complete bool
	// Count is the number of messages in the result set.
	Count int
	// FirstIndex is the position of Messages[0] in the result set (0 when
	// the page is empty).
	FirstIndex int
}

// Archive preference defaults (XEP-0441).
const (
	ArchiveAlways = "always"
	ArchiveNever  = "never"
	ArchiveRoster = "roster"
)

// ArchivePrefs are a user's XEP-0441 archiving preferences.
type ArchivePrefs struct {
	Default string   // ArchiveAlways, ArchiveNever or ArchiveRoster
	Always  []string // JIDs always archived, in the order given
	Never   []string // JIDs never archived, in the order given
}

// ArchiveWriter changes message archives.
type ArchiveWriter interface {
	// AppendArchive stores msg in owner's archive (msg.Owner and msg.ID
	// are ignored) and returns the new message's ID.
	AppendArchive(ctx context.Context, owner string, msg ArchivedMessage) (id string, err error)
	// DeleteArchive removes owner's messages and preferences (account
	// deletion).
	DeleteArchive(ctx context.Context, owner string) error
	// DeleteArchiveBefore removes up to limit of the oldest messages of all
	// archives whose timestamp is before t, and returns how many it
	// removed (retention). limit <= 0 means no limit.
	DeleteArchiveBefore(ctx context.Context, t time.Time, limit int) (int, error)
	// SetArchivePrefs replaces owner's preferences.
	SetArchivePrefs(ctx context.Context, owner string, p ArchivePrefs) error
}

// Completion is a write in progress: Done is closed once its outcome is
// known, then Err is nil when it is committed.
type Completion interface {
	Done() <-chan struct{}
	Err() error
}

// ArchiveSubmitter is implemented by archives that can queue a write and
// let the caller go on until it needs the commit, so that one connection
// can have several messages waiting for the same group commit.
type ArchiveSubmitter interface {
	// SubmitArchive queues msg for owner's archive and returns its ID at
	// once; c says when it is committed. It blocks only while the write
	// queue is full (honouring ctx). An error means nothing was queued.
	// Once queued, the write happens whatever becomes of ctx. then, when
	// not nil, is called with the outcome as soon as it is known, before c
	// is done (whoever waits for c sees what then did); it must not block.
	// Writes submitted one after the other commit in that
	// order.
	SubmitArchive(ctx context.Context, owner string, msg ArchivedMessage, then func(error)) (id string, c Completion, err error)
}

// ArchiveReader queries message archives.
type ArchiveReader interface {
	// QueryArchive returns one page of owner's archive. Any message ID
	// named in q (AfterID, BeforeID, IDs, PageAfter, PageBefore) that is
	// not in the archive makes it fail with ErrNotFound.
	QueryArchive(ctx context.Context, owner string, q ArchiveQuery) (ArchivePage, error)
	// ArchiveMetadata returns the first and last message of owner's
	// archive; both nil when it is empty.
	ArchiveMetadata(ctx context.Context, owner string) (first, last *ArchivedMessage, err error)
	// FindArchivedByOrigin returns the newest message in owner's archive
	// with the origin-id, sent by fromFull, at or after since (duplicate
	// detection for resent messages); ErrNotFound when there is none.
	FindArchivedByOrigin(ctx context.Context, owner, originID, fromFull string, since time.Time) (ArchivedMessage, error)
	// NewestArchived returns the timestamp of the newest message in any
	// archive, zero when every archive is empty (so a process knows for
	// how long what an earlier run archived can matter to the resend
	// check).
	NewestArchived(ctx context.Context) (time.Time, error)
	// ArchivePrefs returns owner's preferences; ErrNotFound when never set.
	ArchivePrefs(ctx context.Context, owner string) (ArchivePrefs, error)
}

// Archive is a complete archive repository.
type Archive interface {
	ArchiveWriter
	ArchiveReader
}

// archiveIDEncoding keeps byte order in string order: '0'-'9' < 'a'-'v'.
var archiveIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

var archiveIDs struct {
	sync.Mutex
	ms   uint64
	rand [10]byte
}

// NewArchiveID returns a new archive message ID for a message stored at t:
// 26 characters encoding a 48-bit millisecond timestamp followed by 80
// random bits. IDs sort like their timestamps, and IDs made by one process
// are strictly increasing even when the clock stalls or steps back (the
// random part is then advanced by a random amount, so it stays
// unguessable).
func NewArchiveID(t time.Time) string {
	ms := uint64(t.UnixMilli())
	if t.UnixMilli() < 0 {
		ms = 0
	}
	var r [10]byte
	_, _ = rand.Read(r[:])

	archiveIDs.Lock()
	if ms <= archiveIDs.ms {
		ms = archiveIDs.ms
		// r = last + 1 + (random 32 bits); on overflow move to the next ms.
		last := new(big.Int).SetBytes(archiveIDs.rand[:])
		step := new(big.Int).SetUint64(uint64(binary.BigEndian.Uint32(r[:4])) + 1)
		next := last.Add(last, step)
		if next.BitLen() > 80 {
			ms++
		} else {
			r = [10]byte{}
			next.FillBytes(r[:])
		}
	}
	archiveIDs.ms, archiveIDs.rand = ms, r
	archiveIDs.Unlock()

	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16) // 48 bits in b[0:6]
	copy(b[6:], r[:])
	return archiveIDEncoding.EncodeToString(b[:])
}

// ErrFulltextUnavailable is QueryArchive's answer to a Fulltext query when
// the store does not keep its full-text index (it was opened with
// FulltextOff, or the index is being rebuilt): searching then would miss
// messages.
var ErrFulltextUnavailable = errors.New("storage: full-text search is not available")

// MaxFulltextBytes bounds the archived messages (raw) that are indexed
// for full-text search: indexing costs the insert time in proportion to
// the text (a 3 MiB body kept PostgreSQL busy for seconds, beyond the
// query timeout on a loaded machine, which failed the insert). It is the
// default limits.max_stanza_bytes, so only servers that raised that limit
// have messages too large to be found by a search.
const MaxFulltextBytes = 256 << 10

// FulltextIndex says what opening a store does about its full-text index
// (XEP-0431). Keeping the index costs every archive insert, so a store
// keeps it only when told to.
type FulltextIndex int

const (
	// FulltextKeep leaves the database as it was last opened with (a new
	// database keeps its index): for tools that do not serve searches.
	FulltextKeep FulltextIndex = iota
	// FulltextOff stops indexing. The index is then incomplete: turning
	// it on again rebuilds it.
	FulltextOff
	// FulltextOn keeps the index, rebuilding it first when it is
	// incomplete.
	FulltextOn
)
