package muc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// Roles (XEP-0045 §5.1).
const (
	roleModerator   = "moderator"
	roleParticipant = "participant"
	roleVisitor     = "visitor"
	roleNone        = "none"
)

// Affiliations, "none" included.
const (
	affOwner   = storage.AffOwner
	affAdmin   = storage.AffAdmin
	affMember  = storage.AffMember
	affOutcast = storage.AffOutcast
	affNone    = "none"
)

// affRank orders affiliations by privilege.
func affRank(a string) int {
	switch a {
	case affOwner:
		return 4
	case affAdmin:
		return 3
	case affMember:
		return 2
	case affNone:
		return 1
	}
	return 0 // outcast
}

// listing is what the service's room list needs to know about a loaded
// room, published by the room goroutine.
type listing struct {
	public bool
	name   string
}

// room is one chat room. Fields below "owned" are read and written only by
// the room's goroutine (run); other goroutines reach it through inbox.
type room struct {
	m     *Module
	jid   jid.JID // bare
	key   string
	inbox chan func(*room)

	posters int // requests on their way to inbox, guarded by m.mu
	listing atomic.Pointer[listing]

	// owned
	loadErr   error
	exists    bool // created here or loaded from storage
	stored    bool // persisted in storage
	locked    bool // created and not yet configured (§10.1)
	created   time.Time
	cfg       RoomConfig
	subject   string
	subjectBy string
	subjectAt time.Time
	affs      map[string]storage.MUCAffiliation // by bare JID or domain
	occupants map[string]*occupant              // by nick
	byFull    map[string]*occupant              // by real full JID
	history   []histEntry
	iqs       map[string]pendingIQ
	avatar    []string // SHA-1 hashes of the room vCard's photos
	emptyAt   time.Time
	gone      bool // destroyed or unloaded: leave the loop
	evicted   bool // another node of the cluster runs the room now
	// creator is counted in Module.temporary while the room lives here
	// without being stored.
	creator string
	admins  map[string]adminEntry
}

// adminEntry caches whether a JID is a service admin (asking may cost a
// database query; presence broadcasts ask for every occupant).
type adminEntry struct {
	ok bool
	at time.Time
}

// adminTTL is how long an admin check is trusted: a change to the admins
// (a reload, a granted role) applies to rooms within it.
const adminTTL = time.Minute

// isAdmin is Module.isAdmin through the room's cache.
func (r *room) isAdmin(bare string) bool {
	now := r.m.now()
	if e, ok := r.admins[bare]; ok && now.Sub(e.at) < adminTTL {
		return e.ok
	}
	if len(r.admins) > 1000 {
		clear(r.admins)
	}
	ok := r.m.isAdmin(r.ctx(), bare)
	r.admins[bare] = adminEntry{ok, now}
	return ok
}

// occupant is one nick in the room, with every session joined under it.
type occupant struct {
	nick     string
	bare     jid.JID
	sessions []*presenceSession // in join order; the last one speaks for the occupant
	role     string
	id       string // XEP-0421
	tokens   float64
	last     time.Time
}

// presenceSession is one real full JID joined under a nick.
type presenceSession struct {
	full jid.JID
	pres *wire.Stanza // its last presence, without MUC elements
}

// pendingIQ remembers an IQ forwarded to an occupant, to route its answer.
type pendingIQ struct {
	from   jid.JID // requester (real full JID)
	id     string  // requester's id
	target string  // full JID the IQ was forwarded to
	at     time.Time
}

// maxPendingIQ bounds the IQs a room forwards and waits for.
const maxPendingIQ = 1000

func newRoom(m *Module, j jid.JID) *room {
	return &room{m: m, jid: j, key: j.String(), inbox: make(chan func(*room), m.cfg.InboxSize),
		affs: map[string]storage.MUCAffiliation{}, occupants: map[string]*occupant{}, byFull: map[string]*occupant{},
		iqs: map[string]pendingIQ{}, admins: map[string]adminEntry{}}
}

// ctx is the context of the room's work: the module's lifetime.
func (r *room) ctx() context.Context { return r.m.ctx }

// run is the room's goroutine.
func (r *room) run() {
	defer r.m.wg.Done()
	roomsLoaded.Inc()
	defer roomsLoaded.Dec()
	r.load()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case f := <-r.inbox:
			r.safely(f)
		case <-tick.C:
			r.tick()
		case <-r.m.ctx.Done():
			return
		}
		if r.done() {
			return
		}
	}
}

// safely runs f, turning a panic into a log line so one bad stanza cannot
// take the server down.
func (r *room) safely(f func(*room)) {
	defer func() {
		if p := recover(); p != nil {
			r.m.log.Error("muc: room handler panicked", "room", r.key, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	f(r)
}

// load reads a stored room.
func (r *room) load() {
	ctx, cancel := context.WithTimeout(r.ctx(), 10*time.Second)
	defer cancel()
	sr, err := r.m.store.Room(ctx, r.key)
	if errors.Is(err, storage.ErrNotFound) {
		r.cfg = r.m.cfg.defaults
		return
	}
	if err != nil {
		r.loadErr = err
		r.m.log.Error("muc: loading room", "room", r.key, "err", err)
		return
	}
	cfg, err := decodeConfig(sr.Config, r.m.cfg.defaults)
	if err != nil {
		r.m.log.Error("muc: stored room configuration unreadable; defaults used", "room", r.key, "err", err)
	}
	affs, err := r.m.store.RoomAffiliations(ctx, r.key)
	if err != nil {
		r.loadErr = err
		r.m.log.Error("muc: loading room affiliations", "room", r.key, "err", err)
		return
	}
	r.exists, r.stored, r.cfg, r.created = true, true, cfg, sr.Created
	r.subject, r.subjectBy, r.subjectAt = sr.Subject, sr.SubjectBy, sr.SubjectAt
	for _, a := range affs {
		r.affs[a.JID] = a
	}
	r.loadHistory(ctx)
	r.loadAvatar(ctx)
	r.publishListing()
}

// tick runs once a second: expired forwarded IQs, the lock timeout.
func (r *room) tick() {
	now := r.m.now()
	for id, p := range r.iqs {
		if now.Sub(p.at) > time.Minute {
			delete(r.iqs, id)
		}
	}
	if r.exists && r.locked && now.Sub(r.created) > r.m.cfg.LockTimeout {
		r.m.log.Info("muc: room never configured; destroyed", "room", r.key)
		r.destroy(nil, "", "the room was not configured in time")
	}
}

// done decides whether the goroutine may end: a room with occupants never
// does; an empty room that is not stored is destroyed; a stored one is
// unloaded after IdleTimeout. It ends only when nothing is on its way to
// the inbox (posters counts requests between lookup and send).
func (r *room) done() bool {
	if r.evicted {
		return true
	}
	if len(r.occupants) > 0 {
		r.emptyAt = time.Time{}
		return false
	}
	now := r.m.now()
	if r.emptyAt.IsZero() {
		r.emptyAt = now
	}
	switch {
	case r.gone, r.loadErr != nil, !r.exists:
	case !r.stored:
		// A temporary room ends with its last occupant (§10.1.3).
		r.destroyStorage()
	case now.Sub(r.emptyAt) < r.m.cfg.IdleTimeout:
		return false
	}
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	if r.posters > 0 || len(r.inbox) > 0 {
		return false
	}
	r.m.unloadLocked(r)
	r.gone = true
	return true
}

// postStop asks the room to tell its occupants that the service is going
// away and to end.
func (r *room) postStop() {
	f := func(r *room) {
		for _, o := range r.sortedOccupants() {
			r.removeOccupant(o, removal{codes: []int{332}})
		}
		r.m.mu.Lock()
		r.m.unloadLocked(r)
		r.m.mu.Unlock()
		r.gone = true
	}
	select {
	case r.inbox <- f:
	case <-time.After(postWait):
	}
}

// publishListing updates what the service's room list shows.
func (r *room) publishListing() {
	if !r.exists || r.locked {
		r.listing.Store(nil)
		return
	}
	r.listing.Store(&listing{public: r.cfg.Public, name: r.cfg.Name})
}

// save writes the room (name, configuration, subject) when it is
// persistent, creating it in storage the first time.
func (r *room) save() error {
	if !r.exists || r.locked || !r.cfg.Persistent {
		if r.stored && !r.cfg.Persistent {
			// No longer persistent: it lives on in memory until empty.
			if err := r.m.store.DeleteRoom(r.ctx(), r.key); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			r.stored = false
		}
		return nil
	}
	sr := storage.MUCRoom{JID: r.key, Name: r.cfg.Name, Public: r.cfg.Public, Config: encodeConfig(r.cfg),
		Subject: r.subject, SubjectBy: r.subjectBy, SubjectAt: r.subjectAt, Created: r.created}
	if r.stored {
		return r.m.store.UpdateRoom(r.ctx(), sr)
	}
	var affs []storage.MUCAffiliation
	for _, a := range r.affs {
		affs = append(affs, a)
	}
	if err := r.m.store.CreateRoom(r.ctx(), sr, affs); err != nil {
		return err
	}
	r.stored = true
	r.uncount() // counted with the stored rooms its owners own now
	return nil
}

// saveAffiliation writes one affiliation change of a stored room.
func (r *room) saveAffiliation(a storage.MUCAffiliation) error {
	if !r.stored {
		return nil
	}
	return r.m.store.SetRoomAffiliation(r.ctx(), r.key, a)
}

// destroyStorage removes what a room left in storage: its record, archive
// and vCard.
func (r *room) destroyStorage() {
	ctx := r.ctx()
	// Also removes a temporary room's vCard.
	if err := r.m.store.DeleteRoom(ctx, r.key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		r.m.log.Error("muc: deleting room", "room", r.key, "err", err)
	}
	r.stored = false
	if err := r.m.store.DeleteArchive(ctx, r.key); err != nil {
		r.m.log.Error("muc: deleting room archive", "room", r.key, "err", err)
	}
	r.exists = false
	r.listing.Store(nil)
	r.uncount()
	roomsDestroyed.Inc()
}

// uncount takes a temporary room out of its creator's count.
func (r *room) uncount() {
	if r.creator == "" {
		return
	}
	r.m.mu.Lock()
	if r.m.temporary[r.creator]--; r.m.temporary[r.creator] <= 0 {
		delete(r.m.temporary, r.creator)
	}
	r.m.mu.Unlock()
	r.creator = ""
}

// affiliation returns the stored affiliation of a real JID (its bare JID,
// else its domain); service admins are owners of every room.
func (r *room) affiliation(j jid.JID) string {
	if a, ok := r.affs[j.Bare().String()]; ok {
		return a.Affiliation
	}
	if j.Localpart() != "" {
		if a, ok := r.affs[j.Domainpart()]; ok && a.Affiliation == affOutcast {
			return affOutcast
		}
	}
	if r.isAdmin(j.Bare().String()) {
		return affOwner
	}
	return affNone
}

// defaultRole is the role an occupant with affiliation aff gets (§5.1.2).
func (r *room) defaultRole(aff string) string {
	switch aff {
	case affOwner, affAdmin:
		return roleModerator
	case affMember:
		return roleParticipant
	case affOutcast:
		return roleNone
	}
	if r.cfg.Moderated {
		return roleVisitor
	}
	return roleParticipant
}

// affiliated lists the bare JIDs with an affiliation.
func (r *room) affiliated(aff string) []string {
	var out []string
	for j, a := range r.affs {
		if a.Affiliation == aff {
			out = append(out, j)
		}
	}
	slices.Sort(out)
	return out
}

// occupantID derives the XEP-0421 id of a real bare JID in this room.
func (r *room) occupantID(bare jid.JID) string {
	mac := hmac.New(sha256.New, r.m.cfg.Secret)
	mac.Write([]byte("occupant-id\x00" + r.key + "\x00" + bare.String()))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// occupantOf returns the occupant a real full JID is joined as.
func (r *room) occupantOf(full jid.JID) *occupant { return r.byFull[full.String()] }

// isModerator reports whether o may moderate.
func (o *occupant) isModerator() bool { return o != nil && o.role == roleModerator }

// speaker is the session whose presence represents the occupant.
func (o *occupant) speaker() *presenceSession { return o.sessions[len(o.sessions)-1] }

// allow takes a token from the occupant's message budget.
func (r *room) allow(o *occupant) bool {
	now := r.m.now()
	rate := float64(r.m.cfg.MessagesPerSecond)
	if o.last.IsZero() {
		o.tokens = 2 * rate
	} else {
		o.tokens = min(2*rate, o.tokens+now.Sub(o.last).Seconds()*rate)
	}
	o.last = now
	if o.tokens < 1 {
		return false
	}
	o.tokens--
	return true
}

// reply sends an error or result answering st.
func (r *room) replyError(st *wire.Stanza, cond, text string) {
	r.m.send(wire.ErrorReply(st, cond, text))
}

func (r *room) replyStanzaError(st *wire.Stanza, err error) {
	var se *module.StanzaError
	if !errors.As(err, &se) {
		r.m.log.Error("muc: request failed", "room", r.key, "err", err)
		se = module.Err(wire.ErrInternalServerError)
	}
	r.m.send(wire.ErrorReplyApp(st, se.Condition, se.Text, se.App))
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// handle dispatches a stanza addressed to the room or an occupant.
func (r *room) handle(ev *module.Event) {
	st := ev.Stanza
	if r.loadErr != nil {
		if st.Type != "error" && st.Type != "result" && st.Type != "unavailable" {
			r.replyError(st, wire.ErrResourceConstraint, "the room cannot be loaded right now; try again later")
		}
		r.gone = true // the next request tries again
		r.m.mu.Lock()
		r.m.unloadLocked(r)
		r.m.mu.Unlock()
		return
	}
	switch st.Name {
	case "presence":
		r.handlePresence(ev)
	case "message":
		r.handleMessage(ev)
	case "iq":
		r.handleOccupantIQ(ev)
	}
}
