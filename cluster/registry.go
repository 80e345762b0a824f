package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// entry is the registry value of one bound full JID. It carries what the
// router and modules read from sessions of other nodes: presence,
// priority, flags.
type entry struct {
	Node   string `json:"n"`
	Boot   string `json:"b"`
	Conn   string `json:"c"`
	Prio   int    `json:"p,omitempty"`
	Pres   string `json:"s,omitempty"` // the current available presence, "" when unavailable
	Flags  uint32 `json:"f,omitempty"`
	Resume string `json:"r,omitempty"` // digest of the XEP-0198 resumption id
	// Values are the modules' per-session state (module.SessionValues).
	Values map[string][]byte `json:"v,omitempty"`
}

// resumeDigest hides resumption ids in the registry: a node holding a
// client's <resume/> finds the session by the digest of its previd.
func resumeDigest(id string) string {
	if id == "" {
		return ""
	}
	h := sha256.Sum256([]byte("parley resume\x00" + id))
	return hex.EncodeToString(h[:16])
}

// key is the bucket key of a full JID. Keys allow only [-/_=.a-zA-Z0-9]:
// both parts are base64url.
func key(bare, resource string) string {
	return "s." + base64.RawURLEncoding.EncodeToString([]byte(bare)) + "." + base64.RawURLEncoding.EncodeToString([]byte(resource))
}

func parseKey(k string) (bare, resource string, ok bool) {
	rest, found := strings.CutPrefix(k, "s.")
	if !found {
		return "", "", false
	}
	b, r, found := strings.Cut(rest, ".")
	if !found {
		return "", "", false
	}
	bb, err1 := base64.RawURLEncoding.DecodeString(b)
	rb, err2 := base64.RawURLEncoding.DecodeString(r)
	if err1 != nil || err2 != nil {
		return "", "", false
	}
	return string(bb), string(rb), true
}

func keyOf(j jid.JID) string { return key(j.Bare().String(), j.Resourcepart()) }

// mine is a session bound here as the registry knows it: the revision of
// our last write of its entry.
type mine struct {
	s   module.Session
	rev uint64
}

// registry is the local copy of the bucket, plus what this node wrote.
type registry struct {
	mu      sync.RWMutex
	byKey   map[string]*remote
	byBare  map[string]map[string]*remote // bare → resource → session
	dead    map[string]uint64             // keys this node deleted, until the watch has passed the delete
	applied uint64                        // the watch has delivered every revision up to this
	top     uint64                        // newest revision known (own writes included)
	wake    chan struct{}                 // closed when applied grows
	mine    map[string]mine               // key → local session
	slots   map[string]slotsState         // slots key → the account's session slots
}

func (g *registry) init() {
	g.byKey, g.byBare, g.dead, g.mine = map[string]*remote{}, map[string]map[string]*remote{}, map[string]uint64{}, map[string]mine{}
	g.slots = map[string]slotsState{}
	g.wake = make(chan struct{})
}

func (g *registry) size() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.byKey)
}

// apply records revision rev of key (e nil: deleted). Older revisions
// than one already applied are ignored: a node applies its own writes at
// once and sees them again from the watch.
func (n *Node) apply(k string, e *entry, rev uint64, fromWatch bool) {
	g := &n.registry
	g.mu.Lock()
	defer g.mu.Unlock()
	g.top = max(g.top, rev)
	if fromWatch && rev > g.applied {
		g.applied = rev
		close(g.wake)
		g.wake = make(chan struct{})
		for dk, r := range g.dead {
			if r <= g.applied {
				delete(g.dead, dk)
			}
		}
	}
	last := g.dead[k]
	old := g.byKey[k]
	if old != nil {
		last = old.state().rev
	}
	if rev <= last {
		return
	}
	bare, res, ok := parseKey(k)
	if !ok {
		return
	}
	if e == nil {
		if old != nil {
			delete(g.byKey, k)
			if m := g.byBare[bare]; m != nil {
				delete(m, res)
				if len(m) == 0 {
					delete(g.byBare, bare)
				}
			}
		}
		if rev > g.applied {
			g.dead[k] = rev
		}
		return
	}
	delete(g.dead, k)
	st := &rstate{e: *e, rev: rev}
	if e.Pres != "" {
		if p, err := wire.Parse([]byte(e.Pres), busLimits); err == nil {
			st.pres = p
		}
	}
	if old != nil && old.state().e.Node == e.Node && old.state().e.Conn == e.Conn {
		old.st.Store(st)
		return
	}
	full, err := jid.New(localOf(bare), domainOf(bare), res)
	if err != nil {
		return
	}
	r := &remote{n: n, full: full, key: k, shard: shardOf(k)}
	r.st.Store(st)
	g.byKey[k] = r
	m := g.byBare[bare]
	if m == nil {
		m = map[string]*remote{}
		g.byBare[bare] = m
	}
	m[res] = r
}

func localOf(bare string) string {
	if l, _, ok := strings.Cut(bare, "@"); ok {
		return l
	}
	return ""
}

func domainOf(bare string) string {
	if _, d, ok := strings.Cut(bare, "@"); ok {
		return d
	}
	return bare
}

// waitApplied waits until the watch has delivered revision rev (a write
// that a stanza from another node depends on), at most d.
func (n *Node) waitApplied(rev uint64, d time.Duration) {
	g := &n.registry
	var timer *time.Timer
	for {
		g.mu.RLock()
		done, wake := g.applied >= rev, g.wake
		g.mu.RUnlock()
		if done {
			return
		}
		if timer == nil {
			timer = time.NewTimer(d)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			registryWaitTimeouts.Inc()
			return
		}
	}
}

// horizon is the newest registry revision this node depends on: its own
// writes and what it has seen. Stanzas it sends carry it.
func (n *Node) horizon() uint64 {
	g := &n.registry
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.top
}

func (n *Node) startWatch(ctx context.Context) error {
	return n.watchBucket(ctx, n.kv, n.onEntry, &n.watchOK)
}

// watchBucket feeds every entry of kv, then every change, to handle; ok
// is true while the watch runs after its initial load.
func (n *Node) watchBucket(ctx context.Context, kv jetstream.KeyValue, handle func(jetstream.KeyValueEntry), ok *atomic.Bool) error {
	w, err := kv.WatchAll(n.ctx)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer func() { _ = w.Stop() }()
		initial := true
		for {
			select {
			case <-n.ctx.Done():
				return
			case e, open := <-w.Updates():
				if !open {
					ok.Store(false)
					return
				}
				if e == nil {
					if initial {
						initial = false
						ok.Store(true)
						close(ready)
					}
					continue
				}
				handle(e)
			}
		}
	}()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: bucket %s did not load in time", kv.Bucket())
	}
}

func (n *Node) onEntry(kve jetstream.KeyValueEntry) {
	k := kve.Key()
	if strings.HasPrefix(k, "a.") {
		n.onSlots(k, kve.Operation(), kve.Value(), kve.Revision())
		n.apply(k, nil, kve.Revision(), true) // the revision is applied
		return
	}
	if kve.Operation() != jetstream.KeyValuePut {
		n.apply(k, nil, kve.Revision(), true)
		n.lostOwn(k, kve.Revision())
		return
	}
	var e entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		n.log.Warn("cluster: unreadable registry entry", "key", k, "err", err)
		n.apply(k, nil, kve.Revision(), true)
		return
	}
	n.apply(k, &e, kve.Revision(), true)
	if e.Node != n.cfg.Node || e.Boot != n.boot {
		n.lostOwn(k, kve.Revision())
	}
}

// lostOwn handles a change of key by someone else while a session bound
// here holds it: another node reaped it because this node looked dead (a
// network cut). The client must start over: its contacts were told it is
// offline.
func (n *Node) lostOwn(k string, rev uint64) {
	g := &n.registry
	g.mu.Lock()
	m, ok := g.mine[k]
	if !ok || rev <= m.rev {
		g.mu.Unlock()
		return
	}
	delete(g.mine, k)
	g.mu.Unlock()
	if e := n.entryOf(k); e != nil {
		return // taken by a newer session (conflict): its node closes ours
	}
	n.log.Warn("cluster: a session bound here was removed by another node; closing it", "jid", m.s.JID().String())
	go m.s.Close(&wire.StreamError{Condition: wire.CondReset, Text: "this server lost contact with its cluster; please reconnect"})
}

func (n *Node) entryOf(k string) *entry {
	n.registry.mu.RLock()
	defer n.registry.mu.RUnlock()
	if r := n.registry.byKey[k]; r != nil {
		e := r.state().e
		return &e
	}
	return nil
}

func (n *Node) lockKey(k string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(k))
	return &n.writeMu[h.Sum32()%uint32(len(n.writeMu))]
}

func (n *Node) entryFor(s module.Session) entry {
	e := entry{Node: n.cfg.Node, Boot: n.boot, Conn: s.ConnID(), Flags: uint32(s.Flags())}
	if p := s.Presence(); p != nil {
		e.Pres = string(p.Raw)
		e.Prio = s.Priority()
	}
	if rs, ok := s.(router.Resumable); ok {
		e.Resume = resumeDigest(rs.ResumeID())
	}
	if vs, ok := s.(router.Valued); ok {
		e.Values = vs.Values()
	}
	return e
}

var errRegistry = errors.New("cluster: the session registry is not reachable")

// Claim implements router.Cluster.
func (n *Node) Claim(ctx context.Context, s module.Session, max int) (module.Session, error) {
	k := keyOf(s.JID())
	e := n.entryFor(s)
	val, _ := json.Marshal(e)
	mu := n.lockKey(k)
	mu.Lock()
	defer mu.Unlock()
	bare, res := s.JID().Bare().String(), s.JID().Resourcepart()
	if err := n.reserve(ctx, bare, res, e.Conn, max); err != nil {
		return nil, err
	}
	replaced, err := n.claim(ctx, s, k, e, val)
	if err != nil {
		n.unreserve(bare, res, e.Conn)
	}
	return replaced, err
}

func (n *Node) claim(ctx context.Context, s module.Session, k string, e entry, val []byte) (module.Session, error) {
	var prev *remote
	n.registry.mu.RLock()
	if r := n.registry.byKey[k]; r != nil {
		prev = r
	}
	n.registry.mu.RUnlock()
	rev := uint64(0)
	if prev != nil {
		rev = prev.state().rev
	}
	for range 8 {
		nrev, err := casPut(ctx, n.kv, k, val, rev)
		if err == nil {
			n.apply(k, &e, nrev, false)
			n.registry.mu.Lock()
			n.registry.mine[k] = mine{s: s, rev: nrev}
			n.registry.mu.Unlock()
			registryWrites.WithLabelValues("claim").Inc()
			if prev != nil {
				pe := prev.state().e
				if pe.Node != n.cfg.Node && pe.Conn != e.Conn {
					return prev, nil
				}
			}
			return nil, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			registryErrors.Inc()
			n.log.Warn("cluster: cannot record a session", "jid", s.JID().String(), "err", err)
			return nil, errRegistry
		}
		// Someone wrote the key meanwhile: read it and try again.
		cur, gerr := n.kv.Get(ctx, k)
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted):
			rev = 0
			prev = nil
		case gerr != nil:
			registryErrors.Inc()
			return nil, errRegistry
		default:
			rev = cur.Revision()
			var ce entry
			if json.Unmarshal(cur.Value(), &ce) == nil {
				n.apply(k, &ce, cur.Revision(), false)
				n.registry.mu.RLock()
				prev = n.registry.byKey[k]
				n.registry.mu.RUnlock()
			}
		}
	}
	registryErrors.Inc()
	return nil, errRegistry
}

// Changed implements router.Cluster.
func (n *Node) Changed(s module.Session) {
	k := keyOf(s.JID())
	mu := n.lockKey(k)
	mu.Lock()
	defer mu.Unlock()
	n.registry.mu.RLock()
	m, ok := n.registry.mine[k]
	n.registry.mu.RUnlock()
	if !ok || m.s != s {
		return
	}
	e := n.entryFor(s)
	val, _ := json.Marshal(e)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rev, err := n.kv.Update(ctx, k, val, m.rev)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			registryErrors.Inc()
			n.log.Warn("cluster: cannot publish a session change", "jid", s.JID().String(), "err", err)
		}
		return
	}
	registryWrites.WithLabelValues("change").Inc()
	n.apply(k, &e, rev, false)
	n.registry.mu.Lock()
	if cur, ok := n.registry.mine[k]; ok && cur.s == s {
		n.registry.mine[k] = mine{s: s, rev: rev}
	}
	n.registry.mu.Unlock()
}

// Release implements router.Cluster.
func (n *Node) Release(s module.Session) {
	k := keyOf(s.JID())
	mu := n.lockKey(k)
	mu.Lock()
	defer mu.Unlock()
	n.registry.mu.Lock()
	m, ok := n.registry.mine[k]
	if !ok || m.s != s {
		n.registry.mu.Unlock()
		return
	}
	delete(n.registry.mine, k)
	n.registry.mu.Unlock()
	rev, err := n.casDelete(k, m.rev)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			registryErrors.Inc()
			n.log.Warn("cluster: cannot remove a session from the registry", "jid", s.JID().String(), "err", err)
		}
		return
	}
	registryWrites.WithLabelValues("release").Inc()
	n.apply(k, nil, rev, false)
	n.unreserve(s.JID().Bare().String(), s.JID().Resourcepart(), s.ConnID())
}

// casDelete deletes k if its revision is still rev and returns the
// revision of the delete marker (kv.Delete does not say it; stanzas sent
// after a delete carry it).
func (n *Node) casDelete(k string, rev uint64) (uint64, error) {
	return n.casDeleteIn(n.bucket(), k, rev)
}

func (n *Node) casDeleteIn(bucket, k string, rev uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m := nats.NewMsg("$KV." + bucket + "." + k)
	m.Header.Set("KV-Operation", "DEL")
	ack, err := n.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(rev))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			return 0, jetstream.ErrKeyRevisionMismatch
		}
		return 0, err
	}
	return ack.Sequence, nil
}

// alive reports whether sessions of e can be reached: its node
// heart-beats with the same incarnation.
func (n *Node) alive(e *entry) bool {
	if e.Node == n.cfg.Node {
		return e.Boot == n.boot
	}
	return n.peers.reachable(e.Node, e.Boot, n.cfg.Heartbeat, n.started)
}

// Remote implements router.Cluster.
func (n *Node) Remote(bare string) []module.Session {
	n.registry.mu.RLock()
	m := n.registry.byBare[bare]
	if len(m) == 0 {
		n.registry.mu.RUnlock()
		return nil
	}
	out := make([]*remote, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	n.registry.mu.RUnlock()
	res := make([]module.Session, 0, len(out))
	for _, r := range out {
		e := r.state().e
		if n.reachableRemote(&e) {
			res = append(res, r)
		}
	}
	return res
}

// RemoteCount implements router.Cluster.
func (n *Node) RemoteCount(bare string) int {
	n.registry.mu.RLock()
	defer n.registry.mu.RUnlock()
	c := 0
	for _, r := range n.registry.byBare[bare] {
		if r.state().e.Node != n.cfg.Node {
			c++
		}
	}
	return c
}

// RemoteSession implements router.Cluster.
func (n *Node) RemoteSession(full string) module.Session {
	j, err := jid.Parse(full)
	if err != nil {
		return nil
	}
	n.registry.mu.RLock()
	r := n.registry.byKey[keyOf(j)]
	n.registry.mu.RUnlock()
	if r == nil {
		return nil
	}
	e := r.state().e
	if !n.reachableRemote(&e) {
		return nil
	}
	return r
}

// reachableRemote reports whether routing should use the entry e as a
// session of another node: the session is there and alive, or it is
// being handed over to this node (stanzas then wait for it here).
func (n *Node) reachableRemote(e *entry) bool {
	if e.Node == n.cfg.Node {
		return e.Boot == n.boot && n.pending.has(e.Conn)
	}
	return n.alive(e)
}

// Superseded implements router.Cluster.
func (n *Node) Superseded(s module.Session) bool {
	k := keyOf(s.JID())
	n.registry.mu.RLock()
	defer n.registry.mu.RUnlock()
	r := n.registry.byKey[k]
	if r == nil {
		return false
	}
	st := r.state()
	if st.e.Node == n.cfg.Node {
		return false
	}
	if m, ok := n.registry.mine[k]; ok && m.s == s && st.rev <= m.rev {
		return false
	}
	return n.peers.reachable(st.e.Node, st.e.Boot, n.cfg.Heartbeat, n.started)
}

// findResumable returns the session of bare on another node that a client
// may resume with previd.
func (n *Node) findResumable(bare, previd string) *remote {
	d := resumeDigest(previd)
	n.registry.mu.RLock()
	defer n.registry.mu.RUnlock()
	for _, r := range n.registry.byBare[bare] {
		if e := r.state().e; e.Resume == d && e.Node != n.cfg.Node {
			return r
		}
	}
	return nil
}
