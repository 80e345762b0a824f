package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/xep"
)

// mucConfig is the group-chat fan-out scenario: -rooms rooms of
// -occupants occupants each (every occupant a client of its own); in each
// room -muc-senders of them send, at the aggregate -rates over all rooms;
// every message reaches every occupant of its room (the sender's own
// reflection included), which is what latency, loss and order are
// measured on.
type mucConfig struct {
	throughputConfig
	rooms, occupants, senders int
	service                   string // MUC service domain
}

const nsMUC, nsMUCUser, nsMUCOwner = xep.NSMUC, xep.NSMUCUser, xep.NSMUC + "#owner"

func runMUC(ctx context.Context, d *dialer, tg *target, cfg mucConfig, out *emitter) (throughputSummary, error) {
	sum := throughputSummary{Scenario: "muc", Server: tg.label, Summary: true, Archive: tg.archive}
	if cfg.rooms < 1 || cfg.occupants < 2 || cfg.senders < 1 || cfg.senders > cfg.occupants {
		return sum, errors.New("muc: need -rooms >= 1, -occupants >= 2 and 1 <= -muc-senders <= -occupants")
	}
	cfg.fanout, cfg.scenario = cfg.occupants, "muc"
	n := cfg.rooms * cfg.occupants
	clients := make([]*client, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	if err := parallel(ctx, n, 16, func(i int) error {
		c, err := d.login(ctx, tg.user(i), loginOpts{resource: "muc", sm: cfg.sm})
		clients[i] = c
		return err
	}); err != nil {
		return sum, err
	}
	var senders []*tpSender
	var receivers []*tpReceiver
	for r := range cfg.rooms {
		room := "bench" + strconv.Itoa(r) + "@" + cfg.service
		for o := range cfg.occupants {
			c := clients[r*cfg.occupants+o]
			nick := "n" + strconv.Itoa(o)
			if err := enterRoom(c, room, nick, o == 0); err != nil {
				return sum, fmt.Errorf("%s joining %s: %w", c.user, room, err)
			}
		}
	}
	// Only now do the readers start: the joins above read synchronously.
	for r := range cfg.rooms {
		room := "bench" + strconv.Itoa(r) + "@" + cfg.service
		for o := range cfg.occupants {
			c := clients[r*cfg.occupants+o]
			rc := newReceiver(c, cfg.throughputConfig)
			receivers = append(receivers, rc)
			if o < cfg.senders {
				s := newSender(c, len(senders), room, "groupchat", cfg.throughputConfig)
				senders = append(senders, s)
				// The sender's stream also carries its room's copies: one
				// reader records them and answers for both.
				go rc.readFor(s)
			} else {
				go rc.read()
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	for stepIdx, rate := range cfg.rates {
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		st, err := runStep(ctx, tg, cfg.throughputConfig, stepIdx+1, rate, senders, receivers)
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

// enterRoom joins room as nick; the first occupant creates it as an
// instant room (XEP-0045 §10.1.2).
func enterRoom(c *client, room, nick string, create bool) error {
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	hist := "<history maxstanzas='0'/>"
	if err := c.send("<presence to='" + room + "/" + nick + "'><x xmlns='" + nsMUC + "'>" + hist + "</x></presence>"); err != nil {
		return err
	}
	self := room + "/" + nick
	if err := c.waitFor(func(el []byte) bool {
		return elemName(el) == "presence" && attrValue(el, "from") == self &&
			(attrValue(el, "type") == "error" || strings.Contains(string(el), "code='110'") || strings.Contains(string(el), `code="110"`))
	}); err != nil {
		return err
	}
	if !create {
		// The subject (perhaps empty) ends the join (§7.2.16).
		return c.waitFor(func(el []byte) bool {
			return elemName(el) == "message" && attrValue(el, "from") == room && strings.Contains(string(el), "<subject")
		})
	}
	if err := c.send("<iq type='set' id='cfg' to='" + room + "'><query xmlns='" + nsMUCOwner +
		"'><x xmlns='jabber:x:data' type='submit'/></query></iq>"); err != nil {
		return err
	}
	return c.waitFor(func(el []byte) bool {
		if elemName(el) != "iq" || attrValue(el, "id") != "cfg" {
			return false
		}
		return attrValue(el, "type") == "result"
	})
}

// waitFor reads until pred matches, counting stanzas for stream
// management and answering on the way; an error stanza fails.
func (c *client) waitFor(pred func([]byte) bool) error {
	for {
		el, err := c.sc.next()
		if err != nil {
			return err
		}
		_, reply := c.answer(el, true)
		if reply != nil {
			if err := c.send(string(reply)); err != nil {
				return err
			}
		}
		if attrValue(el, "type") == "error" && elemName(el) != "a" {
			return fmt.Errorf("%s", el)
		}
		if pred(el) {
			return nil
		}
	}
}
