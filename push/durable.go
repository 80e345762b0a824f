package push

import (
	"context"
	"time"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// outcome of one delivery attempt.
type outcome int

const (
	delivered outcome = iota
	transient         // no answer or a transient error: retry later
	permanent         // an error saying the registration is gone
	aborted           // shutting down: the job stays as it is
)

// sendDurable stores a notification as a job, then makes its first
// attempt. While it is in flight the job is leased: its due time lies
// past the request timeout, so a crash mid-request leaves it to the next
// start, and the retry loop leaves it alone meanwhile.
func (m *Module) sendDurable(owner string, r storage.PushRegistration, iq *wire.Stanza) {
	now := m.now().UTC()
	j := storage.PushJob{
		Owner: owner, JID: r.JID, Node: r.Node, RegCreated: r.Created,
		Payload: iq.Raw, Due: now.Add(m.lease()), Created: now,
	}
	ctx, cancel := context.WithTimeout(m.ctx, storeTimeout)
	id, err := m.queue.EnqueuePushJob(ctx, j)
	cancel()
	if err != nil {
		if m.ctx.Err() != nil {
			return
		}
		// Storage is down: still try once, without durability.
		m.log.Error("push: storing notification job; sending without retries", "user", owner, "service", r.JID, "node", r.Node, "err", err)
		m.attemptOnce(owner, r, iq)
		return
	}
	j.ID = id
	if !m.claim(id) {
		return
	}
	m.attempt(j)
}

// lease is how long a job in flight is hidden from the retry loop.
func (m *Module) lease() time.Duration { return m.cfg.Timeout + m.cfg.PollInterval + storeTimeout }

// claim marks a job in flight in this process; false when it already is
// or the module stopped.
func (m *Module) claim(id int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped || m.inflight[id] {
		return false
	}
	m.inflight[id] = true
	return true
}

func (m *Module) release(id int64) {
	m.mu.Lock()
	delete(m.inflight, id)
	m.mu.Unlock()
}

// attemptOnce sends without a job (storage failed).
func (m *Module) attemptOnce(owner string, r storage.PushRegistration, iq *wire.Stanza) {
	if o := m.request(owner, r, iq); o == permanent {
		dctx, dcancel := context.WithTimeout(m.ctx, storeTimeout)
		defer dcancel()
		m.disable(dctx, keyOf(owner, r), &r, "app server error")
	}
}

// request sends iq and classifies the answer, counting and logging it.
func (m *Module) request(owner string, r storage.PushRegistration, iq *wire.Stanza) outcome {
	ctx, cancel := context.WithTimeout(m.ctx, m.cfg.Timeout)
	defer cancel()
	res, err := m.reg.Sender().Request(ctx, iq)
	if err != nil {
		if m.ctx.Err() != nil {
			return aborted
		}
		notificationFailures.WithLabelValues("timeout").Inc()
		m.log.Warn("push: no answer from the app server", "user", owner, "service", r.JID, "node", r.Node, "err", err)
		return transient
	}
	if res.Type != "error" {
		notificationsSent.Inc()
		return delivered
	}
	notificationFailures.WithLabelValues("error").Inc()
	cond, typ := stanzaError(res)
	if typ == "wait" || cond == wire.ErrRemoteServerNotFound || cond == wire.ErrRemoteServerTimeout {
		m.log.Warn("push: transient app server error, registration kept", "user", owner, "service", r.JID, "node", r.Node, "condition", cond)
		return transient
	}
	m.log.Info("push: app server error", "user", owner, "service", r.JID, "node", r.Node, "condition", cond)
	return permanent
}

// attempt makes one delivery attempt for a claimed job and records the
// result: deleted when delivered, given up or the registration is gone;
// rescheduled with backoff otherwise.
func (m *Module) attempt(j storage.PushJob) {
	defer m.release(j.ID)
	r := storage.PushRegistration{JID: j.JID, Node: j.Node, Created: j.RegCreated}
	iq, err := wire.Parse(j.Payload, wire.Limits{})
	o := permanent
	if err != nil {
		m.log.Error("push: stored notification is not well-formed; dropped", "user", j.Owner, "service", j.JID, "job", j.ID, "err", err)
	} else {
		// A fresh id per attempt: a late answer to an earlier attempt
		// must not count for this one.
		o = m.request(j.Owner, r, iq.WithAttr("id", ""))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), storeTimeout)
	defer cancel()
	switch o {
	case aborted:
		// Due again at once, so that the next start sends it.
		if err := m.queue.RescheduleJob(ctx, j.ID, m.now().UTC(), j.Attempts); err != nil {
			m.log.Warn("push: releasing notification at shutdown", "job", j.ID, "err", err)
		}
	case delivered:
		m.deleteJob(ctx, j)
	case permanent:
		m.deleteJob(ctx, j)
		if err == nil {
			m.disable(ctx, keyOf(j.Owner, r), &r, "app server error")
		}
	case transient:
		attempts := j.Attempts + 1
		if attempts >= m.cfg.MaxAttempts {
			m.deleteJob(ctx, j)
			droppedRetries.Inc()
			m.log.Warn("push: notification dropped after retries", "user", j.Owner, "service", j.JID, "node", j.Node,
				"attempts", attempts, "queued_since", j.Created)
			return
		}
		next := m.now().UTC().Add(m.backoff(attempts))
		if err := m.queue.RescheduleJob(ctx, j.ID, next, attempts); err != nil {
			m.log.Error("push: rescheduling notification", "user", j.Owner, "service", j.JID, "job", j.ID, "err", err)
		}
	}
}

func (m *Module) deleteJob(ctx context.Context, j storage.PushJob) {
	if err := m.queue.DeleteJob(ctx, j.ID); err != nil {
		m.log.Error("push: deleting notification job", "user", j.Owner, "service", j.JID, "job", j.ID, "err", err)
	}
}

// backoff is the wait after the n-th failed attempt (n >= 1).
func (m *Module) backoff(n int) time.Duration {
	b := m.cfg.Backoff
	return b[min(n, len(b))-1]
}

// retryLoop sends due jobs: retries, and jobs left by an earlier run.
func (m *Module) retryLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.PollInterval)
	defer t.Stop()
	for {
		m.sendDue()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Module) sendDue() {
	m.mu.Lock()
	room := m.cfg.BatchSize - len(m.inflight)
	m.mu.Unlock()
	if room <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, storeTimeout)
	defer cancel()
	// Claiming leases the jobs in storage in one step, so that nodes
	// sharing the database never send the same job twice.
	now := m.now().UTC()
	due, err := m.queue.ClaimPushJobs(ctx, now, now.Add(m.lease()), room)
	if err != nil {
		if m.ctx.Err() == nil {
			m.log.Error("push: claiming due notifications", "err", err)
		}
		return
	}
	for i, j := range due {
		if !m.claim(j.ID) {
			if m.isStopped() {
				m.unlease(due[i:])
				return
			}
			// Still in flight here (its lease ran out meanwhile): the
			// attempt under way reschedules or deletes it.
			continue
		}
		if !m.stillEnabled(ctx, j) {
			m.deleteJob(ctx, j)
			m.release(j.ID)
			continue
		}
		m.mu.Lock()
		if m.stopped {
			delete(m.inflight, j.ID)
			m.mu.Unlock()
			m.unlease(due[i:])
			return
		}
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.attempt(j)
		}()
	}
}

func (m *Module) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// unlease makes claimed jobs that will not be sent now due at once again,
// so that the next start (or another node) sends them without waiting
// for the lease to run out.
func (m *Module) unlease(js []storage.PushJob) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(m.ctx), storeTimeout)
	defer cancel()
	for _, j := range js {
		if err := m.queue.RescheduleJob(ctx, j.ID, m.now().UTC(), j.Attempts); err != nil {
			m.log.Warn("push: releasing notification at shutdown", "job", j.ID, "err", err)
		}
	}
}

// stillEnabled reports whether the job's registration still exists (any
// creation time: a re-enabled registration still wants the notification).
// On a storage error it answers true and the attempt decides.
func (m *Module) stillEnabled(ctx context.Context, j storage.PushJob) bool {
	regs, err := m.regs.Pushes(ctx, j.Owner)
	if err != nil {
		return true
	}
	for _, r := range regs {
		if r.JID == j.JID && r.Node == j.Node {
			return true
		}
	}
	return false
}
