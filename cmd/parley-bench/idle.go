package main

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// idleConfig is the idle scenario: many logged-in connections that send
// nothing, and what each costs the server.
type idleConfig struct {
	conns       int
	concurrency int
	settle      time.Duration // wait before measuring, for the server to settle
	sm          bool
	presence    bool
	sec         string
}

type idleResult struct {
	Scenario          string  `json:"scenario"`
	Server            string  `json:"server,omitempty"`
	Sec               string  `json:"sec"`
	SM                bool    `json:"sm"`
	Presence          bool    `json:"presence"`
	Conns             int     `json:"conns"`
	RSSBefore         int64   `json:"rss_before_kib"`
	RSSAfter          int64   `json:"rss_after_kib"`
	KiBPerConn        float64 `json:"kib_per_conn"`
	HeapPerConn       float64 `json:"heap_kib_per_conn"`
	StackPerConn      float64 `json:"stack_kib_per_conn"`
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	ConnectSecs       float64 `json:"connect_seconds"`
	IdleCPU           float64 `json:"server_cpu_idle_pct"`
	LoadAvg           float64 `json:"loadavg_1m"`
}

// runtime metrics read from the admin listener (Prometheus Go collector).
var idleMetrics = []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"}

func runIdle(ctx context.Context, d *dialer, tg *target, cfg idleConfig, out *emitter) (idleResult, error) {
	res := idleResult{Scenario: "idle", Server: tg.label, Sec: cfg.sec, SM: cfg.sm, Presence: cfg.presence, Conns: cfg.conns}
	if tg.pid == 0 {
		return res, errors.New("idle: the server's process id is needed (-pid) to read its memory")
	}
	opts := loginOpts{sm: cfg.sm, presence: cfg.presence}
	// Warm up: load the code paths and pools a connection uses, then let
	// the server return to idle.
	warm := min(50, cfg.conns)
	ws := make([]*client, warm)
	if err := parallel(ctx, warm, cfg.concurrency, func(i int) error {
		o := opts
		o.resource = "warm" + strconv.Itoa(i)
		c, err := d.login(ctx, tg.user(i), o)
		if err == nil {
			go drain(c, cfg.sm)
			ws[i] = c
		}
		return err
	}); err != nil {
		return res, err
	}
	for _, c := range ws {
		if c != nil {
			c.close()
		}
	}
	time.Sleep(cfg.settle)
	before, err := settledRSS(tg.pid)
	if err != nil {
		return res, err
	}
	m0 := metrics(tg.admin, idleMetrics...)

	clients := make([]*client, cfg.conns)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	start := time.Now()
	if err := parallel(ctx, cfg.conns, cfg.concurrency, func(i int) error {
		o := opts
		o.resource = "idle"
		c, err := d.login(ctx, tg.user(i), o)
		if err != nil {
			return err
		}
		clients[i] = c
		go drain(c, cfg.sm)
		return nil
	}); err != nil {
		return res, err
	}
	res.ConnectSecs = round3(time.Since(start).Seconds())
	time.Sleep(cfg.settle)
	cpu := startCPU(tg.pid)
	after, err := settledRSS(tg.pid)
	if err != nil {
		return res, err
	}
	res.IdleCPU = cpu.percent()
	m1 := metrics(tg.admin, idleMetrics...)
	n := float64(cfg.conns)
	res.RSSBefore, res.RSSAfter = before, after
	res.LoadAvg = loadAvg()
	res.KiBPerConn = round1(float64(after-before) / n)
	if len(m0) == len(idleMetrics) && len(m1) == len(idleMetrics) {
		res.HeapPerConn = round1((m1["go_memstats_heap_inuse_bytes"] - m0["go_memstats_heap_inuse_bytes"]) / 1024 / n)
		res.StackPerConn = round1((m1["go_memstats_stack_inuse_bytes"] - m0["go_memstats_stack_inuse_bytes"]) / 1024 / n)
		res.GoroutinesPerConn = round3((m1["go_goroutines"] - m0["go_goroutines"]) / n)
	}
	out.emit(res)
	return res, nil
}

// settledRSS samples RSS over a second and returns the lowest value (a GC
// cycle in progress inflates single samples).
func settledRSS(pid int) (int64, error) {
	var low int64 = -1
	for i := 0; i < 5; i++ {
		v, err := rssKiB(pid)
		if err != nil {
			return 0, err
		}
		if low < 0 || v < low {
			low = v
		}
		time.Sleep(200 * time.Millisecond)
	}
	return low, nil
}

// drain reads and answers what the server sends an idle client.
func drain(c *client, smOn bool) {
	for {
		el, err := c.sc.next()
		if err != nil {
			return
		}
		if _, reply := c.answer(el, smOn); reply != nil {
			_, _ = c.bw.Write(reply)
			_ = c.bw.Flush()
		}
	}
}
