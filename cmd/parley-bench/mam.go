package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// mamConfig is the mam scenario: one account's archive is filled with
// messages (sent through the server, so they are archived as in
// production), then a new device catches up on all of them by paging with
// RSM <after/>.
type mamConfig struct {
	messages int
	page     int
	repeat   int
	sec      string
}

type mamResult struct {
	Scenario  string      `json:"scenario"`
	Server    string      `json:"server,omitempty"`
	Archive   string      `json:"archive"`
	Sec       string      `json:"sec"`
	Round     int         `json:"round"`
	Messages  int         `json:"messages"`
	Pages     int         `json:"pages"`
	PageSize  int         `json:"page_size"`
	Seconds   float64     `json:"seconds"`
	Rate      float64     `json:"messages_per_s"`
	SeedRate  float64     `json:"seed_messages_per_s,omitempty"`
	PageMS    percentiles `json:"page"`
	ServerCPU float64     `json:"server_cpu_pct"`
	ToolCPU   float64     `json:"tool_cpu_pct"`
	LoadAvg   float64     `json:"loadavg_1m"`
}

const nsMAM, nsRSM = xep.NSMAM, xep.NSRSM

func runMAM(ctx context.Context, d *dialer, tg *target, cfg mamConfig, out *emitter) (mamResult, error) {
	res := mamResult{Scenario: "mam", Server: tg.label, Archive: tg.archive, Sec: cfg.sec, PageSize: cfg.page}
	if tg.archive == "off" {
		return res, errors.New("mam: archiving is off on the target")
	}
	seedRate, err := seedArchive(ctx, d, tg, cfg.messages)
	if err != nil {
		return res, err
	}
	for round := 1; round <= cfg.repeat; round++ {
		r, err := catchUp(ctx, d, tg, cfg, round)
		if err != nil {
			return res, err
		}
		r.SeedRate = seedRate
		out.emit(r)
		res = r
	}
	return res, nil
}

// seedArchive sends n messages from user 0 to user 1 (online, so nothing
// waits in the offline store) and returns once all were delivered, i.e.
// archived on both sides.
func seedArchive(ctx context.Context, d *dialer, tg *target, n int) (float64, error) {
	rcv, err := d.login(ctx, tg.user(1), loginOpts{resource: "seed", presence: true})
	if err != nil {
		return 0, err
	}
	defer rcv.close()
	snd, err := d.login(ctx, tg.user(0), loginOpts{resource: "seed"})
	if err != nil {
		return 0, err
	}
	defer snd.close()
	var got atomic.Int64
	go func() {
		for {
			el, err := rcv.sc.next()
			if err != nil {
				return
			}
			if elemName(el) == "message" {
				got.Add(1)
			}
			if _, reply := rcv.answer(el, false); reply != nil {
				_, _ = rcv.bw.Write(reply)
				_ = rcv.bw.Flush()
			}
		}
	}()
	go drain(snd, false)
	start := time.Now()
	const window = 500 // messages in flight at most
	to := tg.bare(1)
	deadline := time.Now().Add(10 * time.Minute)
	for sent := 0; sent < n; {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("mam: seeding stopped after %d of %d messages", got.Load(), n)
		}
		if int64(sent)-got.Load() >= window {
			time.Sleep(time.Millisecond)
			continue
		}
		for k := 0; k < 100 && sent < n; k++ {
			fmt.Fprintf(snd.bw, "<message type='chat' to='%s' id='m%d'><body>archived message number %d</body></message>", to, sent, sent)
			sent++
		}
		_ = snd.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := snd.bw.Flush(); err != nil {
			return 0, err
		}
	}
	for got.Load() < int64(n) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("mam: only %d of %d seed messages arrived", got.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return round1(float64(n) / time.Since(start).Seconds()), nil
}

// catchUp logs in a new device of user 1 and pages through its archive.
func catchUp(ctx context.Context, d *dialer, tg *target, cfg mamConfig, round int) (mamResult, error) {
	res := mamResult{Scenario: "mam", Server: tg.label, Archive: tg.archive, Sec: cfg.sec, Round: round, PageSize: cfg.page}
	c, err := d.login(ctx, tg.user(1), loginOpts{resource: "catchup" + strconv.Itoa(round)})
	if err != nil {
		return res, err
	}
	defer c.close()
	srvCPU, toolCPU := startCPU(tg.pid), startCPU(os.Getpid())
	start := time.Now()
	after := ""
	var pages []time.Duration
	_ = c.conn.SetDeadline(time.Now().Add(5 * time.Minute))
	for page := 0; ; page++ {
		if page > cfg.messages/max(1, cfg.page)+2 {
			return res, fmt.Errorf("mam: the archive did not end after %d pages", page)
		}
		id := "q" + strconv.Itoa(page)
		set := "<max>" + strconv.Itoa(cfg.page) + "</max>"
		if after != "" {
			set += "<after>" + wire.EscapeText(after) + "</after>"
		}
		t0 := time.Now()
		if err := c.send("<iq type='set' id='" + id + "'><query xmlns='" + nsMAM + "' queryid='" + id + "'><set xmlns='" + nsRSM + "'>" + set + "</set></query></iq>"); err != nil {
			return res, err
		}
		var fin *wire.Stanza
		for fin == nil {
			el, err := c.sc.next()
			if err != nil {
				return res, err
			}
			switch elemName(el) {
			case "message":
				res.Messages++
			case "iq":
				if attrValue(el, "id") != id {
					continue
				}
				st, err := wire.Parse(el, wire.Limits{})
				if err != nil {
					return res, err
				}
				if st.Type != "result" {
					return res, fmt.Errorf("mam query: %s", el)
				}
				fin = st
			}
		}
		pages = append(pages, time.Since(t0))
		f := fin.Child(nsMAM, "fin")
		if f.AttrValue("complete") == "true" {
			break
		}
		after = f.Child(nsRSM, "set").ChildText(nsRSM, "last")
		if after == "" {
			break
		}
	}
	secs := time.Since(start).Seconds()
	res.ServerCPU, res.ToolCPU = srvCPU.percent(), toolCPU.percent()
	res.Pages = len(pages)
	res.Seconds = round3(secs)
	res.Rate = round1(float64(res.Messages) / secs)
	res.PageMS = pct(pages)
	res.LoadAvg = loadAvg()
	if res.Messages < cfg.messages {
		return res, fmt.Errorf("mam: caught up on %d of %d messages", res.Messages, cfg.messages)
	}
	return res, nil
}
