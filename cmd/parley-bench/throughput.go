package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// throughputConfig is the throughput scenario: pairs of clients, each
// sender writing chat messages to its receiver's bare JID at a fixed
// aggregate rate (open loop: messages are due on a schedule whether or not
// earlier ones arrived), in steps of increasing rate.
type throughputConfig struct {
	pairs     int
	rates     []int
	step      time.Duration // sending time per rate
	drain     time.Duration // longest wait for in-flight messages after a step
	late      time.Duration // a message slower than this is "late"
	maxP99    time.Duration // sustainable: nothing lost and p99 below this
	sm        bool          // XEP-0198 on every client
	bodyBytes int           // padding added to each body
	keepGoing bool          // run every step even after one was not sustainable
	originID  bool          // each message carries an XEP-0359 origin-id, as modern clients send
	sec       string        // for the output
	fanout    int           // receivers per message (group chat: occupants)
	scenario  string        // for the output: throughput or muc
}

// throughputStep is one JSON line of the throughput scenario.
type throughputStep struct {
	Scenario   string  `json:"scenario"`
	Server     string  `json:"server,omitempty"`
	Archive    string  `json:"archive"`
	Federated  bool    `json:"federated,omitempty"`  // two servers, pairs across them both ways
	CrossNode  bool    `json:"cross_node,omitempty"` // two nodes of a cluster, every pair from n1 to n2
	Sec        string  `json:"sec"`
	SM         bool    `json:"sm"`
	Senders    int     `json:"senders"`
	Fanout     int     `json:"fanout"` // receivers per message
	Step       int     `json:"step"`
	Rate       int     `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Sent       int64   `json:"sent"`
	Deliveries int64   `json:"deliveries"` // expected: sent × receivers per message
	Received   int64   `json:"received"`
	Lost       int64   `json:"lost"`
	Late       int64   `json:"late"`
	OutOfOrder int64   `json:"out_of_order"`
	SentRate   float64 `json:"sent_per_s"`
	RecvRate   float64 `json:"received_per_s"`
	percentiles
	ServerCPU   float64 `json:"server_cpu_pct"`
	CPUPerMsg   float64 `json:"server_cpu_us_per_msg"`
	ToolCPU     float64 `json:"tool_cpu_pct"`
	ServerRSS   float64 `json:"server_rss_mib"`
	BatchRows   float64 `json:"archive_batch_rows_avg,omitempty"`
	Commits     float64 `json:"archive_commits_per_s,omitempty"`
	SMUnacked   int64   `json:"sm_unacked,omitempty"`
	Sustainable bool    `json:"sustainable"`
	LoadAvg     float64 `json:"loadavg_1m"`
}

// throughputSummary closes a throughput run.
type throughputSummary struct {
	Scenario       string `json:"scenario"`
	Server         string `json:"server,omitempty"`
	Summary        bool   `json:"summary"`
	Archive        string `json:"archive"`
	MaxSustainable int    `json:"max_sustainable_rate"`
}

// tpSender is one sending client.
type tpSender struct {
	c     *client
	idx   int
	to    string
	wmu   sync.Mutex // the sending loop and the reader's answers share bw
	seq   uint64
	sent  atomic.Int64
	acked atomic.Int64 // last <a h/> from the server
	err   atomic.Value // first write error
	pad   string
	// originID: messages carry origin-ids originPrefix+seq.
	originID     bool
	originPrefix string
	typ          string // message type: chat, or groupchat to a room
}

// tpReceiver is one receiving client.
type tpReceiver struct {
	c     *client
	sm    bool
	late  time.Duration
	mu    sync.Mutex
	lat   map[int][]time.Duration // per step
	count map[int]int64
	nLate map[int]int64
	ooo   map[int]int64
	last  map[int]uint64 // highest seq seen per sender (per-conversation order)
	err   atomic.Value
}

func runThroughput(ctx context.Context, d *dialer, tg *target, cfg throughputConfig, out *emitter) (throughputSummary, error) {
	sum := throughputSummary{Scenario: "throughput", Server: tg.label, Summary: true, Archive: tg.archive}
	if cfg.pairs < 1 || len(cfg.rates) == 0 {
		return sum, errors.New("throughput: need -pairs >= 1 and at least one rate")
	}
	senders := make([]*tpSender, cfg.pairs)
	receivers := make([]*tpReceiver, cfg.pairs)
	// Federated: half the pairs talk from the first domain to the second,
	// half the other way.
	dialers := map[*target]*dialer{tg: d}
	if tg.peer != nil {
		dialers[tg.peer] = &dialer{tg: tg.peer, sec: d.sec, cache: d.cache, timeout: d.timeout, spreadTo: d.spreadTo}
	}
	sides := func(pair int) (snd, rcv *target) {
		if tg.peer == nil {
			return tg, tg
		}
		if tg.clustered || pair%2 == 0 {
			return tg, tg.peer
		}
		return tg.peer, tg
	}
	err := parallel(ctx, 2*cfg.pairs, 16, func(i int) error {
		if i < cfg.pairs {
			snd, rcv := sides(i)
			c, err := dialers[snd].login(ctx, snd.user(i), loginOpts{resource: "s", sm: cfg.sm})
			if err != nil {
				return err
			}
			senders[i] = newSender(c, i, rcv.bare(cfg.pairs+i), "chat", cfg)
			return nil
		}
		_, rcv := sides(i - cfg.pairs)
		c, err := dialers[rcv].login(ctx, rcv.user(i), loginOpts{resource: "r", sm: cfg.sm, presence: true})
		if err != nil {
			return err
		}
		receivers[i-cfg.pairs] = newReceiver(c, cfg)
		return nil
	})
	defer func() {
		for _, s := range senders {
			if s != nil {
				s.c.close()
			}
		}
		for _, r := range receivers {
			if r != nil {
				r.c.close()
			}
		}
	}()
	if err != nil {
		return sum, err
	}
	for _, r := range receivers {
		go r.read()
	}
	for _, s := range senders {
		go s.read(cfg.sm)
	}
	// Let initial presence settle before the first step.
	time.Sleep(200 * time.Millisecond)

	for stepIdx, rate := range cfg.rates {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		st, err := runStep(ctx, tg, cfg, stepIdx+1, rate, senders, receivers)
		if err != nil {
			return sum, err
		}
		out.emit(st)
		if st.Sustainable {
			sum.MaxSustainable = max(sum.MaxSustainable, rate)
		} else if !cfg.keepGoing {
			break
		}
	}
	return sum, nil
}

// runStep runs one rate. Every message reaches fanout receivers (1 for
// pairs, the occupants of its room for group chat).
func runStep(ctx context.Context, tg *target, cfg throughputConfig, step, rate int, senders []*tpSender, receivers []*tpReceiver) (throughputStep, error) {
	fanout := cfg.fanout
	if fanout < 1 {
		fanout = 1
	}
	res := throughputStep{Scenario: cmp.Or(cfg.scenario, "throughput"), Server: tg.label, Archive: tg.archive, Sec: cfg.sec, SM: cfg.sm,
		Senders: len(senders), Fanout: fanout, Step: step, Rate: rate, Federated: tg.peer != nil && !tg.clustered,
		CrossNode: tg.clustered}
	sent0 := make([]int64, len(senders))
	for i, s := range senders {
		sent0[i] = s.sent.Load()
	}
	tgs := []*target{tg}
	if tg.peer != nil {
		tgs = append(tgs, tg.peer)
	}
	var srvCPU []*cpuMeter
	for _, t := range tgs {
		srvCPU = append(srvCPU, startCPU(t.pid))
	}
	toolCPU := startCPU(os.Getpid())
	b0 := batchStats(tgs)
	start := time.Now().Add(10 * time.Millisecond)
	end := start.Add(cfg.step)
	interval := time.Duration(float64(time.Second) * float64(len(senders)) / float64(rate))
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		// Stagger the senders over one interval so the aggregate is even.
		first := start.Add(interval * time.Duration(i) / time.Duration(len(senders)))
		go func() {
			defer wg.Done()
			s.sendStep(ctx, step, first, end, interval)
		}()
	}
	wg.Wait()
	sendSecs := time.Since(start).Seconds()
	res.ServerCPU, res.ToolCPU = 0, toolCPU.percent()
	for _, m := range srvCPU {
		if p := m.percent(); p >= 0 && res.ServerCPU >= 0 {
			res.ServerCPU += p
		} else {
			res.ServerCPU = -1
		}
	}
	res.ServerCPU = round1(res.ServerCPU)
	if b1 := batchStats(tgs); b1.count > b0.count {
		res.BatchRows = round1((b1.rows - b0.rows) / (b1.count - b0.count))
		res.Commits = round1((b1.count - b0.count) / sendSecs)
	}
	for _, t := range tgs {
		if t.pid > 0 {
			if kib, err := rssKiB(t.pid); err == nil {
				res.ServerRSS = round1(res.ServerRSS + float64(kib)/1024)
			}
		}
	}
	for i, s := range senders {
		res.Sent += s.sent.Load() - sent0[i]
		if e, _ := s.err.Load().(error); e != nil {
			return res, fmt.Errorf("sender %d: %w", i, e)
		}
	}
	// Wait for what is in flight.
	deadline := time.Now().Add(cfg.drain)
	for {
		var got int64
		for _, r := range receivers {
			r.mu.Lock()
			got += r.count[step]
			r.mu.Unlock()
		}
		if got >= res.Sent*int64(fanout) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var all []time.Duration
	for i, r := range receivers {
		if e, _ := r.err.Load().(error); e != nil {
			return res, fmt.Errorf("receiver %d: %w", i, e)
		}
		r.mu.Lock()
		res.Received += r.count[step]
		res.Late += r.nLate[step]
		res.OutOfOrder += r.ooo[step]
		all = append(all, r.lat[step]...)
		delete(r.lat, step)
		r.mu.Unlock()
	}
	if cfg.sm {
		res.SMUnacked = smUnacked(senders)
	}
	res.Seconds = round3(sendSecs)
	res.Deliveries = res.Sent * int64(fanout)
	res.Lost = max(0, res.Deliveries-res.Received)
	res.SentRate = round1(float64(res.Sent) / sendSecs)
	res.RecvRate = round1(float64(res.Received) / sendSecs)
	res.percentiles = pct(all)
	if res.Received > 0 && res.ServerCPU >= 0 {
		res.CPUPerMsg = round1(res.ServerCPU / 100 * sendSecs * 1e6 / float64(res.Received))
	}
	res.LoadAvg = loadAvg()
	res.Sustainable = res.Lost == 0 && res.OutOfOrder == 0 && res.Sent > 0 &&
		res.P99 < ms(cfg.maxP99) && res.SentRate >= 0.95*float64(rate)
	return res, nil
}

func newSender(c *client, idx int, to, typ string, cfg throughputConfig) *tpSender {
	return &tpSender{c: c, idx: idx, to: to, typ: typ, pad: strings.Repeat("x", cfg.bodyBytes), originID: cfg.originID,
		originPrefix: strconv.Itoa(idx) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"}
}

// smUnacked asks every sender's server for its inbound h and returns how
// many sent stanzas it had not acknowledged within a second: with store
// before acknowledge, all of them once the step has drained.
func smUnacked(senders []*tpSender) int64 {
	for _, s := range senders {
		s.wmu.Lock()
		_, _ = s.c.bw.WriteString("<r xmlns='urn:xmpp:sm:3'/>")
		_ = s.c.bw.Flush()
		s.wmu.Unlock()
	}
	deadline := time.Now().Add(time.Second)
	for {
		var missing int64
		for _, s := range senders {
			missing += s.sent.Load() - s.acked.Load()
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendStep writes messages due from first until end, one every interval.
// A sender that falls behind writes the overdue messages at once with
// their due times, so latency counts the delay (no coordinated omission).
func (s *tpSender) sendStep(ctx context.Context, step int, first, end time.Time, interval time.Duration) {
	due := first
	var buf []byte
	for due.Before(end) && ctx.Err() == nil {
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		now := time.Now()
		buf = buf[:0]
		n := 0
		for !due.After(now) && due.Before(end) {
			s.seq++
			buf = append(buf, "<message type='"...)
			buf = append(buf, s.typ...)
			buf = append(buf, "' to='"...)
			buf = append(buf, s.to...)
			buf = append(buf, "' id='"...)
			buf = strconv.AppendUint(buf, s.seq, 36)
			buf = append(buf, "'><body>"...)
			buf = appendMarker(buf, step, s.idx, s.seq, due.UnixNano())
			buf = append(buf, s.pad...)
			buf = append(buf, "</body>"...)
			if s.originID {
				buf = append(buf, "<origin-id xmlns='urn:xmpp:sid:0' id='"...)
				buf = append(buf, s.originPrefix...)
				buf = strconv.AppendUint(buf, s.seq, 36)
				buf = append(buf, "'/>"...)
			}
			buf = append(buf, "</message>"...)
			due = due.Add(interval)
			n++
		}
		if n == 0 {
			continue
		}
		s.wmu.Lock()
		_ = s.c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		_, err := s.c.bw.Write(buf)
		if err == nil {
			err = s.c.bw.Flush()
		}
		s.wmu.Unlock()
		if err != nil {
			s.err.CompareAndSwap(nil, err)
			return
		}
		s.sent.Add(int64(n))
	}
}

// read answers the server on a sender's stream and records SM acks.
func (s *tpSender) read(smOn bool) {
	for {
		el, err := s.c.sc.next()
		if err != nil {
			return
		}
		if s.note(el) {
			continue
		}
		_, reply := s.c.answer(el, smOn)
		if reply != nil {
			s.wmu.Lock()
			_, _ = s.c.bw.Write(reply)
			_ = s.c.bw.Flush()
			s.wmu.Unlock()
		}
	}
}

// note takes what concerns the sender: an SM ack (its h) and a bounced
// message (an error). It reports whether el was consumed.
func (s *tpSender) note(el []byte) bool {
	switch {
	case elemName(el) == "a":
		if h, err := strconv.ParseInt(attrValue(el, "h"), 10, 64); err == nil {
			s.acked.Store(h)
		}
		return true
	case elemName(el) == "message" && attrValue(el, "type") == "error":
		s.err.CompareAndSwap(nil, fmt.Errorf("the server bounced a message: %s", el))
		s.c.hIn++
		return true
	}
	return false
}

func newReceiver(c *client, cfg throughputConfig) *tpReceiver {
	return &tpReceiver{c: c, sm: cfg.sm, late: cfg.late, lat: map[int][]time.Duration{},
		count: map[int]int64{}, nLate: map[int]int64{}, ooo: map[int]int64{}, last: map[int]uint64{}}
}

// read records the latency of every message and answers acks and pings.
func (r *tpReceiver) read() { r.readFor(nil) }

// readFor is read on a stream that also sends (a room occupant that
// talks): replies share the sender's writer, and the sender's acks and
// bounces are noted.
func (r *tpReceiver) readFor(snd *tpSender) {
	for {
		el, err := r.c.sc.next()
		if err != nil {
			if !errors.Is(err, errStreamEnd) && !strings.Contains(err.Error(), "use of closed") {
				r.err.CompareAndSwap(nil, err)
			}
			return
		}
		now := time.Now().UnixNano()
		if snd != nil && snd.note(el) {
			continue
		}
		stanza, reply := r.c.answer(el, r.sm)
		if reply != nil {
			if snd != nil {
				snd.wmu.Lock()
			}
			_, _ = r.c.bw.Write(reply)
			_ = r.c.bw.Flush()
			if snd != nil {
				snd.wmu.Unlock()
			}
		}
		if !stanza || elemName(el) != "message" {
			continue
		}
		step, sender, seq, due, ok := parseMarker(el)
		if !ok {
			continue
		}
		lat := time.Duration(now - due)
		r.mu.Lock()
		r.count[step]++
		r.lat[step] = append(r.lat[step], lat)
		if lat > r.late {
			r.nLate[step]++
		}
		if last, ok := r.last[sender]; ok && seq <= last {
			r.ooo[step]++
		}
		r.last[sender] = max(r.last[sender], seq)
		r.mu.Unlock()
	}
}

// parallel runs f(0..n-1) with at most width at a time and returns the
// first error.
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	var first atomic.Value
	for i := 0; i < n; i++ {
		if first.Load() != nil || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				first.CompareAndSwap(nil, err)
			}
		}()
	}
	wg.Wait()
	if e, _ := first.Load().(error); e != nil {
		return e
	}
	return ctx.Err()
}

// archiveBatches are the group-commit counters of the target's store.
type archiveBatches struct{ rows, count float64 }

// batchStats sums the archive batch histogram over backends and servers.
func batchStats(tgs []*target) archiveBatches {
	var b archiveBatches
	for _, t := range tgs {
		m := metricSums(t.admin, "parley_storage_archive_batch_rows_sum", "parley_storage_archive_batch_rows_count")
		b.rows += m["parley_storage_archive_batch_rows_sum"]
		b.count += m["parley_storage_archive_batch_rows_count"]
	}
	return b
}
