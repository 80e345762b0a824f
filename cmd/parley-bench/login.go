package main

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loginConfig is the login scenario: a storm of complete logins (connect,
// TLS as configured, SCRAM-SHA-256, bind, close), so many at a time.
type loginConfig struct {
	logins      int
	concurrency int
	users       int // accounts the logins cycle through
	sec         string
	scramCache  bool
}

type loginResult struct {
	Scenario    string  `json:"scenario"`
	Server      string  `json:"server,omitempty"`
	Sec         string  `json:"sec"`
	ScramCache  bool    `json:"scram_cache"`
	Logins      int     `json:"logins"`
	Concurrency int     `json:"concurrency"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Seconds     float64 `json:"seconds"`
	Rate        float64 `json:"logins_per_s"`
	percentiles
	ServerCPU float64 `json:"server_cpu_pct"`
	ToolCPU   float64 `json:"tool_cpu_pct"`
	LoadAvg   float64 `json:"loadavg_1m"`
}

func runLogin(ctx context.Context, d *dialer, tg *target, cfg loginConfig, out *emitter) (loginResult, error) {
	res := loginResult{Scenario: "login", Server: tg.label, Sec: cfg.sec, ScramCache: cfg.scramCache,
		Logins: cfg.logins, Concurrency: cfg.concurrency}
	users := max(1, cfg.users)
	// Warm up: the first login of each account pays for its SCRAM key in
	// the tool when the cache is on, and code paths get loaded.
	_ = parallel(ctx, min(users, cfg.logins), cfg.concurrency, func(i int) error {
		c, err := d.login(ctx, tg.user(i%users), loginOpts{resource: "warm" + strconv.Itoa(i)})
		if err == nil {
			c.close()
		}
		return nil
	})
	var mu sync.Mutex
	lat := make([]time.Duration, 0, cfg.logins)
	var errs atomic.Int64
	var firstErr atomic.Value
	srvCPU, toolCPU := startCPU(tg.pid), startCPU(os.Getpid())
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < cfg.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= cfg.logins {
					return
				}
				t0 := time.Now()
				c, err := d.login(ctx, tg.user(i%users), loginOpts{resource: "l" + strconv.Itoa(i)})
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				took := time.Since(t0)
				c.close()
				mu.Lock()
				lat = append(lat, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	res.ServerCPU, res.ToolCPU = srvCPU.percent(), toolCPU.percent()
	res.Seconds = round3(secs)
	res.Errors = errs.Load()
	res.FirstError, _ = firstErr.Load().(string)
	res.Rate = round1(float64(len(lat)) / secs)
	res.percentiles = pct(lat)
	res.LoadAvg = loadAvg()
	out.emit(res)
	return res, ctx.Err()
}
