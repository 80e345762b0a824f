package s2s

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

const (
	backoffMin = 2 * time.Second
	backoffMax = 2 * time.Minute
	// maxBatch bounds the stanzas written between flushes.
	maxBatch = 64
)

// outConn owns the outbound stream for one (local, remote) pair. Its
// goroutine connects, authenticates and then drains the queue; stanzas
// wait in the queue while it connects, and while their senders' archive
// rows commit.
type outConn struct {
	svc *Service
	p   pair
	log *slog.Logger
	// via, when set, is a bidirectional stream the peer opened (XEP-0288)
	// that carries the queue until it ends; then we dial as usual.
	via *link

	// The queue is a slice rather than a channel so that its bound
	// (Config.QueueStanzas, QueueBytes) costs memory only while stanzas
	// are queued: a channel of that capacity would be allocated for every
	// domain pair, busy or not.
	mu     sync.Mutex
	items  []outItem
	head   int // items[head:] are queued
	qbytes int // bytes of the queued stanzas
	ready  chan struct{}
}

// outItem is a queued stanza, written once the writes it waits for (the
// sender's archive row) are committed.
type outItem struct {
	st    *wire.Stanza
	after module.Barrier
}

// stanzaOverhead is what a queued or pending stanza costs beyond its
// bytes (the Stanza, its attributes, the queue entry), so that many tiny
// stanzas count for what they hold against QueueBytes (as c2s counts its
// send queue).
const stanzaOverhead = 256

func queuedSize(st *wire.Stanza) int { return len(st.Raw) + stanzaOverhead }

// enqueue queues st unless the queue is full in stanzas or bytes.
func (o *outConn) enqueue(st *wire.Stanza, after module.Barrier) bool {
	n := queuedSize(st)
	o.mu.Lock()
	if len(o.items)-o.head >= o.svc.cfg.QueueStanzas || o.qbytes+n > o.svc.cfg.QueueBytes {
		o.mu.Unlock()
		limitHits.WithLabelValues(limitQueue).Inc()
		return false
	}
	o.items = append(o.items, outItem{st: st, after: after})
	o.qbytes += n
	o.mu.Unlock()
	o.wake()
	return true
}

// next takes the oldest queued stanza.
func (o *outConn) next() (outItem, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.head == len(o.items) {
		return outItem{}, false
	}
	it := o.items[o.head]
	o.items[o.head] = outItem{}
	o.head++
	o.qbytes -= queuedSize(it.st)
	if o.head == len(o.items) {
		// Empty: start over at the front, and give a large array back.
		o.head = 0
		if cap(o.items) > 64 {
			o.items = nil
		} else {
			o.items = o.items[:0]
		}
	} else if o.head >= 1024 && o.head*2 >= len(o.items) {
		// Mostly consumed: move the rest to the front.
		n := copy(o.items, o.items[o.head:])
		clear(o.items[n:])
		o.items = o.items[:n]
		o.head = 0
	}
	return it, true
}

// queued reports how many stanzas are queued.
func (o *outConn) queued() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items) - o.head
}

func newOutConn(s *Service, p pair) *outConn {
	return &outConn{svc: s, p: p, ready: make(chan struct{}, 1),
		log: s.log.With("dir", "out", "local", p.local, "remote", p.remote)}
}

func (o *outConn) run() {
	defer o.svc.wg.Done()
	if l := o.via; l != nil {
		o.via = nil
		o.log.Debug("using the peer's bidirectional stream")
		if !o.serve(l.s, l.done, nil, false) {
			return
		}
	}
	for {
		ost, err := o.connect()
		if err != nil {
			o.fail(err)
			return
		}
		o.svc.mu.Lock()
		delete(o.svc.backoff, o.p)
		o.svc.mu.Unlock()
		if !o.serveOwn(ost) {
			return
		}
	}
}

// fail removes the pair from the pool, starts the backoff and bounces
// everything queued.
func (o *outConn) fail(err error) {
	cond := classify(err)
	text := "cannot reach " + o.p.remote
	o.log.Info("outbound connection failed", "err", err, "condition", cond)
	o.svc.stats.failure(o.p.remote, cond)
	s := o.svc
	s.mu.Lock()
	if s.out[o.p] == o {
		delete(s.out, o.p)
	}
	b := s.backoff[o.p]
	b.failures++
	d := backoffMin << min(b.failures-1, 10)
	if d > backoffMax || d <= 0 {
		d = backoffMax
	}
	b.until, b.cond, b.text = time.Now().Add(d), cond, text
	if !s.closed {
		s.backoff[o.p] = b
	}
	s.mu.Unlock()
	o.bounceAll(cond, text)
}

// bounceAll bounces every queued stanza.
func (o *outConn) bounceAll(cond, text string) {
	for {
		it, ok := o.next()
		if !ok {
			return
		}
		o.svc.bounce(it.st, cond, text)
	}
}

// connect establishes an authenticated stream within ConnectTimeout.
func (o *outConn) connect() (*outStream, error) {
	ctx, cancel := context.WithTimeout(o.svc.ctx, o.svc.cfg.ConnectTimeout)
	defer cancel()
	ost, err := o.svc.dial(ctx, o.p.local, o.p.remote)
	if err != nil {
		return nil, err
	}
	if err := o.authenticate(ctx, ost); err != nil {
		ost.closeStream(nil)
		if ctx.Err() != nil {
			return nil, &connectError{cond: wire.ErrRemoteServerTimeout, err: err}
		}
		return nil, err
	}
	_ = ost.conn.SetDeadline(time.Time{})
	return ost, nil
}

func offersExternal(feats *wire.Stanza) bool {
	m := feats.Child(nsSASL, "mechanisms")
	if m == nil {
		return false
	}
	for _, e := range m.ChildrenNamed(nsSASL, "mechanism") {
		if e.Text() == "EXTERNAL" {
			return true
		}
	}
	return false
}

func (o *outConn) authenticate(ctx context.Context, ost *outStream) error {
	s := o.svc
	if ost.certErr != nil {
		if s.cfg.RequireValidCerts {
			ost.closeStream(&wire.StreamError{Condition: wire.CondPolicyViolation, Text: "certificate not valid"})
			return &connectError{cond: wire.ErrRemoteServerNotFound,
				err: fmt.Errorf("certificate of %s: %w", o.p.remote, ost.certErr)}
		}
		o.log.Debug("peer certificate not valid, using dialback", "err", ost.certErr)
	}
	// XEP-0288 §2.2: ask for a bidirectional stream before authenticating.
	if s.bidiEnabled() && ost.features.Child(nsBidiFeat, "bidi") != nil {
		if err := ost.send([]byte("<bidi xmlns='" + nsBidi + "'/>")); err != nil {
			return err
		}
		ost.bidi = true
		o.log.Debug("requested bidirectional stream")
	}
	if ost.certErr == nil && s.ourCertOK[o.p.local] && offersExternal(ost.features) {
		ok, err := o.saslExternal(ost)
		if err != nil {
			return err
		}
		if ok {
			o.log.Debug("authenticated with SASL EXTERNAL")
			return nil
		}
	}
	if ost.features.Child(nsDialbackFeat, "dialback") == nil {
		o.log.Debug("peer does not advertise dialback; trying anyway")
	}
	return o.dialback(ost)
}

// saslExternal runs XEP-0178. It reports false when the peer refused, so
// that dialback can be tried on the same stream.
func (o *outConn) saslExternal(ost *outStream) (bool, error) {
	authz := base64.StdEncoding.EncodeToString([]byte(o.p.local))
	if err := ost.send([]byte("<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + authz + "</auth>")); err != nil {
		return false, err
	}
	for {
		st, err := ost.rd.Next()
		if err != nil {
			return false, err
		}
		if isStreamError(st) {
			return false, fmt.Errorf("stream error from %s: %s", o.p.remote, streamErrorCondition(st))
		}
		if st.NS != nsSASL {
			continue
		}
		switch st.Name {
		case "success":
			ost.restart()
			if err := ost.header(o.p.local, o.p.remote, "", nil); err != nil {
				return false, err
			}
			h, err := ost.rd.ReadHeader()
			if err != nil {
				return false, err
			}
			if h.NS != wire.NSServer {
				return false, fmt.Errorf("%s: stream namespace %q", o.p.remote, h.NS)
			}
			feats, err := ost.rd.Next()
			if err != nil {
				return false, err
			}
			if feats.NS != wire.NSStream || feats.Name != "features" {
				return false, fmt.Errorf("%s: expected stream features", o.p.remote)
			}
			ost.id, ost.features = h.ID, feats
			return true, nil
		case "failure":
			o.log.Debug("SASL EXTERNAL refused, trying dialback")
			return false, nil
		case "challenge":
			if err := ost.send([]byte("<response xmlns='" + nsSASL + "'>=</response>")); err != nil {
				return false, err
			}
		}
	}
}

// dialback sends our key (XEP-0220 §2.1.1) and waits for the result.
func (o *outConn) dialback(ost *outStream) error {
	if ost.id == "" {
		return &connectError{cond: wire.ErrRemoteServerNotFound, err: fmt.Errorf("%s sent no stream id", o.p.remote)}
	}
	done := o.svc.addPending(o.p.local, o.p.remote, ost.id)
	defer done()
	key := o.svc.dialbackKey(o.p.remote, o.p.local, ost.id)
	req := "<db:result from='" + wire.EscapeAttr(o.p.local) + "' to='" + wire.EscapeAttr(o.p.remote) + "'>" + key + "</db:result>"
	if err := ost.send([]byte(req)); err != nil {
		return err
	}
	for {
		st, err := ost.rd.Next()
		if err != nil {
			return err
		}
		if isStreamError(st) {
			return fmt.Errorf("stream error from %s: %s", o.p.remote, streamErrorCondition(st))
		}
		if st.NS != nsDialback || st.Name != "result" {
			continue
		}
		if !sameDomain(st.From, o.p.remote) || !sameDomain(st.To, o.p.local) {
			continue // a result for a request we did not send on this stream
		}
		switch st.Type {
		case "valid":
			o.log.Debug("authenticated with dialback")
			return nil
		case "invalid":
			return &connectError{cond: wire.ErrRemoteServerNotFound, err: fmt.Errorf("%s rejected our dialback key", o.p.remote)}
		default:
			return &connectError{cond: wire.ErrRemoteServerTimeout, err: fmt.Errorf("%s: dialback error", o.p.remote)}
		}
	}
}

// serveOwn serves the queue on a stream we opened. On a bidirectional
// stream the peer may send us stanzas for the pair we authenticated (and
// for pairs it adds with dialback); otherwise it sends nothing but
// keepalives and the stream end.
func (o *outConn) serveOwn(ost *outStream) bool {
	s := o.svc
	s.stats.conn(o.p.remote, "out", 1)
	defer s.stats.conn(o.p.remote, "out", -1)
	done := make(chan struct{})
	activity := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(s.ctx)
	var auth *authSet
	if ost.bidi {
		auth = newAuthSet(s, "")
		auth.mark(o.p)
		auth.setBidi(&link{s: ost.stream, done: done, log: o.log})
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		defer cancel()
		defer ost.stream.endRouting()
		if auth != nil {
			defer auth.release()
		}
		err := o.read(ctx, ost, auth, activity)
		var se *wire.StreamError
		if errors.As(err, &se) {
			o.log.Info("stream error", "condition", se.Condition, "text", se.Text)
			countStreamError(se.Condition)
			ost.closeStream(se)
			return
		}
		o.log.Debug("outbound stream ended", "err", err)
	}()
	defer cancel()
	return o.serve(ost.stream, done, activity, true)
}

// read reads what the peer sends on our outbound stream.
func (o *outConn) read(ctx context.Context, ost *outStream, auth *authSet, activity chan<- struct{}) error {
	s := o.svc
	for {
		st, err := ost.rd.Next()
		if err != nil {
			return err
		}
		if isStreamError(st) {
			return errors.New("stream error: " + streamErrorCondition(st))
		}
		if auth == nil {
			continue
		}
		select {
		case activity <- struct{}{}:
		default:
		}
		switch {
		case st.IsStanza():
			err = s.acceptStanza(ctx, ost.stream, auth, st)
		case st.NS == nsDialback && st.Name == "result" && st.Type == "":
			// XEP-0288 §2: the receiving server adds a domain it hosts.
			err = s.dialbackRequest(ctx, ost.stream, ost.id, auth, st, o.log)
		case st.NS == nsDialback && st.Name == "result":
			authFailures.WithLabelValues("dialback").Inc()
			err = &wire.StreamError{Condition: wire.CondNotAuthorized, Text: "unsolicited dialback result"}
		case st.NS == nsDialback && st.Name == "verify":
			err = s.dialbackVerify(ost.stream, st)
		default:
			err = &wire.StreamError{Condition: wire.CondUnsupportedStanzaType, Text: "unexpected <" + st.Name + "/> in " + st.NS}
		}
		if err != nil {
			return err
		}
	}
}

// serve writes queued stanzas on w until the stream ends (done) or stays
// idle. It reports whether the caller should reconnect (stanzas still
// queued). owned streams are ours to close; a borrowed one (the peer's
// bidirectional stream) is left to its reader, and writing on it keeps its
// read deadline from expiring.
func (o *outConn) serve(w *stream, done <-chan struct{}, activity <-chan struct{}, owned bool) bool {
	s := o.svc
	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	// Stanzas queued while connecting, or left by a stream that failed.
	o.wake()
	for {
		select {
		case <-o.ready:
			n, err := o.writeQueued(w)
			if err != nil {
				o.log.Info("write failed", "err", err)
				w.close()
				s.stats.failure(o.p.remote, "write")
				return o.retire()
			}
			if n == 0 {
				continue
			}
			if !owned {
				w.setReadDeadline(s.cfg.IdleTimeout)
			}
			idle.Reset(s.cfg.IdleTimeout)
		case <-activity:
			idle.Reset(s.cfg.IdleTimeout)
		case <-idle.C:
			if o.retire() {
				idle.Reset(s.cfg.IdleTimeout)
				continue
			}
			if owned {
				o.log.Debug("closing idle stream")
				w.closeStream(nil)
			}
			return false
		case <-done:
			if owned {
				w.closeStream(nil)
			}
			return o.retire()
		case <-s.ctx.Done():
			w.closeStream(&wire.StreamError{Condition: wire.CondSystemShutdown})
			o.retire()
			o.bounceAll(wire.ErrRemoteServerTimeout, "the server is shutting down")
			return false
		}
	}
}

// writeQueued writes up to maxBatch queued stanzas, each once its
// sender's archive row is committed (store before forward; one whose row
// could not be stored is dropped, its sender has been told), and flushes.
// What is buffered is flushed before waiting for a commit, so that a
// stanza never waits in the buffer for the commits of later ones. It
// reports how many stanzas it wrote; when more may be queued it leaves
// o.ready set for the next round.
func (o *outConn) writeQueued(w *stream) (int, error) {
	wrote, unflushed := 0, 0
	flush := func() error {
		if unflushed == 0 {
			return nil
		}
		o.svc.stats.out(o.p.remote, unflushed)
		unflushed = 0
		return w.flush()
	}
	for range maxBatch {
		it, ok := o.next()
		if !ok {
			return wrote, flush()
		}
		if !it.after.Empty() && !it.after.Passed() {
			if err := flush(); err != nil {
				return wrote, err
			}
			if it.after.Wait(o.svc.ctx) != nil {
				continue
			}
		}
		if err := w.write(it.st.Raw); err != nil {
			return wrote, err
		}
		wrote++
		unflushed++
	}
	o.wake()
	return wrote, flush()
}

// wake makes serve look at the queue.
func (o *outConn) wake() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// retire removes the pair from the pool unless stanzas are queued; it
// reports false when it did, true when the stream is still needed.
func (o *outConn) retire() bool {
	s := o.svc
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.queued() > 0 && !s.closed {
		return true
	}
	if s.out[o.p] == o {
		delete(s.out, o.p)
	}
	return false
}
