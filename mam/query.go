package mam

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/mamquery"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/storage"
	"github.com/parley-xmpp/parley/wire"
)

// ownArchive checks that the requester is the archive's owner (XEP-0313
// §9.1: a user's archive is the user's alone).
func ownArchive(ev *module.Event) (jid.JID, error) {
	owner := ev.To.Bare()
	if ev.From.Localpart() == "" || !ev.From.Bare().Equal(owner) {
		return owner, module.Errorf(wire.ErrForbidden, "only the owner may access an archive")
	}
	return owner, nil
}

// handleQuery answers {urn:xmpp:mam:2}query: get returns the search form
// (§4.1.5), set runs a query (§4).
func (m *Module) handleQuery(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner, err := ownArchive(ev)
	if err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "get" {
		return mamquery.Form(m.cfg.Fulltext), nil
	}
	sender := m.reg.Sender()
	fin, err := mamquery.Run(ctx, m.archive, mamquery.Query{
		Owner: owner.String(), Requester: ev.From.String(), Element: ev.Stanza.Tree().FirstElement(),
		Options: mamquery.Options{DefaultPageSize: m.cfg.DefaultPageSize, MaxPageSize: m.cfg.MaxPageSize, Fulltext: m.cfg.Fulltext},
		Send:    func(st *wire.Stanza) error { sender.Route(ctx, st); return nil },
		Unreadable: func(msg storage.ArchivedMessage, err error) {
			m.log.Error("mam: archived message unreadable", "user", owner.String(), "id", msg.ID, "err", err)
		},
	})
	if err == nil {
		queries.Inc()
	}
	return fin, err
}

// handleMetadata answers the archive metadata query (§6).
func (m *Module) handleMetadata(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner, err := ownArchive(ev)
	if err != nil {
		return nil, err
	}
	if ev.Stanza.Type != "get" {
		return nil, module.Err(wire.ErrBadRequest)
	}
	return m.metadata(ctx, owner.String())
}

// metadata describes owner's archive: its first and last message.
func (m *Module) metadata(ctx context.Context, owner string) (*wire.Element, error) {
	first, last, err := m.archive.ArchiveMetadata(ctx, owner)
	if err != nil {
		return nil, err
	}
	return mamquery.Metadata(first, last), nil
}

// handlePrefs gets and sets XEP-0441 preferences.
func (m *Module) handlePrefs(ctx context.Context, ev *module.Event) (*wire.Element, error) {
	owner, err := ownArchive(ev)
	if err != nil {
		return nil, err
	}
	if ev.Stanza.Type == "set" {
		el := ev.Stanza.Tree().FirstElement()
		p := storage.ArchivePrefs{Default: el.AttrValue("default")}
		switch p.Default {
		case storage.ArchiveAlways, storage.ArchiveNever, storage.ArchiveRoster:
		default:
			return nil, module.Errorf(wire.ErrBadRequest, "'default' must be always, never or roster")
		}
		for _, list := range []struct {
			name string
			dst  *[]string
		}{{"always", &p.Always}, {"never", &p.Never}} {
			l := el.Child(NS, list.name)
			if l == nil {
				continue
			}
			for _, j := range l.ChildrenNamed(NS, "jid") {
				parsed, err := jid.Parse(j.Text())
				if err != nil {
					return nil, module.Errorf(wire.ErrJIDMalformed, "%q is not a valid JID", j.Text())
				}
				if s := parsed.String(); !slices.Contains(*list.dst, s) {
					*list.dst = append(*list.dst, s)
				}
			}
		}
		if len(p.Always)+len(p.Never) > 1000 {
			return nil, module.Errorf(wire.ErrPolicyViolation, "at most 1000 JIDs in the preferences")
		}
		err := m.archive.SetArchivePrefs(ctx, owner.String(), p)
		m.prefC.forget(owner.String()) // also after a failure: the row may be written
		if err != nil {
			return nil, err
		}
	}
	p, err := m.prefs(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := wire.NewElement(NS, "prefs", "default", p.Default)
	for _, list := range []struct {
		name string
		jids []string
	}{{"always", p.Always}, {"never", p.Never}} {
		l := wire.NewElement(NS, list.name)
		for _, j := range list.jids {
			l.Add(wire.NewElement(NS, "jid").AddText(j))
		}
		out.Add(l)
	}
	return out, nil
}
