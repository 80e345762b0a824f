package abuse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// NSReporting is XEP-0377 (reports attached to XEP-0191 block requests).
const NSReporting = xep.NSReporting

// Bounds of one report.
const (
	maxReportText     = 2000
	maxReportStanzas  = 10
	maxReportForwards = 5 // archived messages attached to a forwarded report
)

var reasons = map[string]string{
	"urn:xmpp:reporting:spam":  storage.ReportSpam,
	"urn:xmpp:reporting:abuse": storage.ReportAbuse,
}

// takeReports stores the reports attached to the items of a block request
// (the block itself is the blocking module's). Reports with a reason this
// server does not know are ignored, as XEP-0377 leaves it to the server.
func (m *Module) takeReports(ctx context.Context, reporter jid.JID, block *wire.Element) {
	for _, item := range block.ChildrenNamed(xep.NSBlocking, "item") {
		rep := item.Child(NSReporting, "report")
		if rep == nil {
			continue
		}
		reason, ok := reasons[rep.AttrValue("reason")]
		target, err := jid.Parse(item.AttrValue("jid"))
		if !ok || err != nil {
			continue
		}
		r := storage.SpamReport{Reporter: reporter.Bare().String(), Reported: target.Bare().String(), Reason: reason,
			Created: time.Now()}
		if t := strings.TrimSpace(rep.ChildText(NSReporting, "text")); t != "" {
			r.Text = wire.TruncateText(t, maxReportText)
		}
		for _, sid := range rep.ChildrenNamed(xep.NSSID, "stanza-id") {
			if id := sid.AttrValue("id"); id != "" && len(id) <= 256 && len(r.StanzaIDs) < maxReportStanzas {
				r.StanzaIDs = append(r.StanzaIDs, id)
			}
		}
		id, err := m.store.AddSpamReport(ctx, r, m.cfg.MaxReportsPerUser)
		switch {
		case errors.Is(err, storage.ErrQuotaExceeded):
			m.log.Info("spam report not stored: the reporter has too many", "reporter", r.Reporter, "reported", r.Reported)
			continue
		case err != nil:
			m.log.Error("storing a spam report", "reporter", r.Reporter, "err", err)
			continue
		}
		r.ID = id
		reportsTotal.WithLabelValues(reason).Inc()
		m.log.Info("spam report", "reporter", r.Reporter, "reported", r.Reported, "reason", reason, "id", id)
		m.forward(ctx, r)
	}
}

// forward sends a report to ReportTo as a chat message from the server,
// with the reported messages the reporter's archive has.
func (m *Module) forward(ctx context.Context, r storage.SpamReport) {
	if len(m.cfg.ReportTo) == 0 {
		return
	}
	reporter, err := jid.Parse(r.Reporter)
	if err != nil {
		return
	}
	body := fmt.Sprintf("%s report #%d: %s reported %s", r.Reason, r.ID, r.Reporter, r.Reported)
	if r.Text != "" {
		body += ": " + r.Text
	}
	rep := wire.NewElement(NSReporting, "report", "reason", "urn:xmpp:reporting:"+r.Reason)
	for _, id := range r.StanzaIDs {
		rep.Add(wire.NewElement(xep.NSSID, "stanza-id", "by", r.Reporter, "id", id))
	}
	if r.Text != "" {
		rep.Add(wire.NewElement(NSReporting, "text").AddText(r.Text))
	}
	var evidence []*wire.Element
	for _, id := range r.StanzaIDs {
		if len(evidence) >= maxReportForwards {
			break
		}
		page, err := m.store.QueryArchive(ctx, r.Reporter, storage.ArchiveQuery{IDs: []string{id}, Max: 1})
		if err != nil || len(page.Messages) == 0 {
			continue
		}
		msg, err := wire.Parse(page.Messages[0].Raw, wire.Limits{MaxStanzaBytes: len(page.Messages[0].Raw) + 1})
		if err != nil {
			continue
		}
		evidence = append(evidence, wire.NewElement(nsForward, "forwarded").Add(
			wire.NewElement(xep.NSDelay, "delay", "stamp", xep.DateTime(page.Messages[0].Timestamp)),
			msg.Tree().Copy()))
	}
	for _, to := range m.cfg.ReportTo {
		msg := wire.NewElement(wire.NSClient, "message", "from", reporter.Domainpart(), "to", to, "type", "chat",
			"id", fmt.Sprintf("report-%d", r.ID))
		msg.Add(wire.NewElement(wire.NSClient, "body").AddText(body), rep.Copy())
		for _, e := range evidence {
			msg.Add(e.Copy())
		}
		m.reg.Sender().Route(ctx, wire.FromElement(msg))
	}
}

const nsForward = xep.NSForward
