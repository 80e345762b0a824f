package avatar_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"strconv"
	"testing"

	"github.com/parley-xmpp/parley/avatar"
	"github.com/parley-xmpp/parley/basic"
	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/pep"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

const alice = "alice@" + modtest.Domain

// gif1x1 is a 1×1 GIF.
var gif1x1, _ = base64.StdEncoding.DecodeString("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

type env struct {
	*modtest.Env
	pep *pep.Module
	av  *avatar.Module
	a   *modtest.Session
}

func setup(t *testing.T) *env {
	e := modtest.New(t)
	var av *avatar.Module
	pm := pep.New(pep.Config{
		OnPublish: func(ctx context.Context, owner, node, id string, payload []byte) {
			av.OnPEPPublish(ctx, owner, node, id, payload)
		},
		OnRetract: func(ctx context.Context, owner, node, id string) { av.OnPEPRetract(ctx, owner, node, id) },
	}, e.Store, e.Store, e.Store)
	t.Cleanup(func() { pm.Stop(context.Background()) })
	av = avatar.New(avatar.Config{PEP: pm}, e.Store)
	e.Register(pm, av, basic.New(basic.Config{OnVCardSet: av.OnVCardSet}, e.Store))
	return &env{Env: e, pep: pm, av: av, a: e.Login(alice + "/a")}
}

func (e *env) ok(xml string) {
	e.T.Helper()
	if r := e.IQFind(e.a, xml); r.Type != "result" {
		e.T.Fatalf("%s: %s", xml, r.Raw)
	}
}

func (e *env) publish(node, id, payload, opts string) {
	e.T.Helper()
	e.ok("<iq type='set' id='p-" + id + "'><pubsub xmlns='" + pep.NSPubSub + "'><publish node='" + node + "'><item id='" + id + "'>" +
		payload + "</item></publish>" + opts + "</pubsub></iq>")
}

func (e *env) publishAvatar(img []byte, info string) {
	e.T.Helper()
	h := avatar.Hash(img)
	e.publish(avatar.NodeData, h, "<data xmlns='"+avatar.NodeData+"'>"+base64.StdEncoding.EncodeToString(img)+"</data>", "")
	e.publish(avatar.NodeMetadata, h, "<metadata xmlns='"+avatar.NodeMetadata+"'>"+info+"</metadata>", "")
}

func (e *env) vcard() *wire.Element {
	e.T.Helper()
	raw, err := e.Store.VCard(e.Ctx, alice)
	if err != nil {
		return nil
	}
	return wire.MustParse(string(raw)).Tree()
}

func (e *env) photo() []byte {
	e.T.Helper()
	vc := e.vcard()
	if vc == nil || vc.Child(xep.NSVCard, "PHOTO") == nil {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(vc.Child(xep.NSVCard, "PHOTO").ChildText(xep.NSVCard, "BINVAL"))
	if err != nil {
		e.T.Fatal(err)
	}
	return b
}

func TestPEPAvatarToVCardKeepsOtherFields(t *testing.T) {
	e := setup(t)
	e.ok("<iq type='set' id='v'><vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME></vCard></iq>")
	h := avatar.Hash(gif1x1)
	// The info with a URL is skipped; the one without is copied.
	e.publishAvatar(gif1x1, "<info bytes='1' id='ffff' type='image/png' url='https://example.org/a.png'/>"+
		"<info bytes='42' id='"+h+"' type='image/gif'/>")
	if !bytes.Equal(e.photo(), gif1x1) {
		t.Fatalf("vCard: %s", e.vcard().Bytes())
	}
	vc := e.vcard()
	if vc.ChildText(xep.NSVCard, "FN") != "Alice" || vc.ChildText(xep.NSVCard, "NICKNAME") != "al" ||
		vc.Child(xep.NSVCard, "PHOTO").ChildText(xep.NSVCard, "TYPE") != "image/gif" {
		t.Fatalf("vCard: %s", vc.Bytes())
	}
	// Retracting the current metadata item removes the photo.
	e.ok("<iq type='set' id='r'><pubsub xmlns='" + pep.NSPubSub + "'><retract node='" + avatar.NodeMetadata + "'><item id='" + h + "'/></retract></pubsub></iq>")
	if e.photo() != nil || e.vcard().ChildText(xep.NSVCard, "FN") != "Alice" {
		t.Fatalf("after retract: %s", e.vcard().Bytes())
	}
}

func TestPEPAvatarNotCopied(t *testing.T) {
	e := setup(t)
	// The hash does not match the data.
	e.publish(avatar.NodeData, "0123", "<data xmlns='"+avatar.NodeData+"'>"+base64.StdEncoding.EncodeToString(gif1x1)+"</data>", "")
	e.publish(avatar.NodeMetadata, "0123", "<metadata xmlns='"+avatar.NodeMetadata+"'><info bytes='42' id='0123' type='image/gif'/></metadata>", "")
	if e.vcard() != nil {
		t.Fatalf("mismatching hash copied: %s", e.vcard().Bytes())
	}
	// A data node that is not open is not copied (XEP-0398 §6).
	e.ok("<iq type='set' id='del'><pubsub xmlns='" + pep.NSPubSub + "#owner'><delete node='" + avatar.NodeData + "'/></pubsub></iq>")
	opts := "<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + pep.NSPubSub +
		"#publish-options</value></field><field var='pubsub#access_model'><value>presence</value></field></x></publish-options>"
	h := avatar.Hash(gif1x1)
	e.publish(avatar.NodeData, h, "<data xmlns='"+avatar.NodeData+"'>"+base64.StdEncoding.EncodeToString(gif1x1)+"</data>", opts)
	e.publish(avatar.NodeMetadata, h, "<metadata xmlns='"+avatar.NodeMetadata+"'><info bytes='42' id='"+h+"' type='image/gif'/></metadata>", "")
	if e.vcard() != nil {
		t.Fatalf("avatar of a presence-only node copied: %s", e.vcard().Bytes())
	}
}

func TestVCardToPEP(t *testing.T) {
	e := setup(t)
	h := avatar.Hash(gif1x1)
	// No TYPE: sniffed.
	e.ok("<iq type='set' id='v'><vCard xmlns='vcard-temp'><PHOTO><BINVAL>" + base64.StdEncoding.EncodeToString(gif1x1) + "</BINVAL></PHOTO></vCard></iq>")
	its, err := e.pep.Items(e.Ctx, alice, avatar.NodeMetadata)
	if err != nil || len(its) != 1 || its[0].ID != h {
		t.Fatalf("metadata items %v %v", its, err)
	}
	want := "<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='" + strconv.Itoa(len(gif1x1)) + "' id='" + h + "' type='image/gif' width='1' height='1'/></metadata>"
	if got := string(its[0].Payload); got != want {
		t.Fatalf("metadata\n got %s\nwant %s", got, want)
	}
	data, _ := e.pep.Items(e.Ctx, alice, avatar.NodeData)
	if len(data) != 1 || data[0].ID != h {
		t.Fatalf("data items %v", data)
	}
	// EXTVAL only: the PEP avatar stays.
	e.ok("<iq type='set' id='v2'><vCard xmlns='vcard-temp'><PHOTO><EXTVAL>https://example.org/a.gif</EXTVAL></PHOTO></vCard></iq>")
	if its, _ := e.pep.Items(e.Ctx, alice, avatar.NodeMetadata); len(its) != 1 || its[0].ID != h {
		t.Fatalf("EXTVAL changed the PEP avatar: %v", its)
	}
	// Without PHOTO: disabled and the data retracted.
	e.ok("<iq type='set' id='v3'><vCard xmlns='vcard-temp'><FN>A</FN></vCard></iq>")
	its, _ = e.pep.Items(e.Ctx, alice, avatar.NodeMetadata)
	if len(its) != 1 || string(its[0].Payload) != "<metadata xmlns='urn:xmpp:avatar:metadata'/>" {
		t.Fatalf("metadata after removal: %v", its)
	}
	if data, _ := e.pep.Items(e.Ctx, alice, avatar.NodeData); len(data) != 0 {
		t.Fatalf("data after removal: %v", data)
	}
}

func TestPresenceHash(t *testing.T) {
	e := setup(t)
	h := avatar.Hash(gif1x1)
	e.ok("<iq type='set' id='v'><vCard xmlns='vcard-temp'><PHOTO><TYPE>image/gif</TYPE><BINVAL>" + base64.StdEncoding.EncodeToString(gif1x1) + "</BINVAL></PHOTO></vCard></iq>")
	for _, c := range []struct{ in, want string }{
		{"<presence/>", h},
		{"<presence><x xmlns='vcard-temp:x:update'/></presence>", h},
		{"<presence><x xmlns='vcard-temp:x:update'><photo>abcd</photo></x></presence>", h},
		{"<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>", ""},
		{"<presence to='room@muc.example.org/al'/>", h},
	} {
		var seen *wire.Stanza
		capture := func(_ context.Context, ev *module.Event) module.Verdict {
			seen = ev.Stanza
			return module.Handled
		}
		reg := module.NewRegistry([]string{modtest.Domain}, e.Router.Sender(), e.Router)
		if err := e.av.Register(reg); err != nil {
			t.Fatal(err)
		}
		reg.Outbound(capture)
		ev := &module.Event{Stanza: wire.MustParse(c.in).WithAttr("from", alice+"/a"), From: e.a.JID(), To: e.a.JID().Bare(),
			Origin: module.Origin{Kind: module.FromClient, Session: e.a}}
		module.RunChain(e.Ctx, reg.OutboundHooks(), ev)
		xs := seen.Tree().ChildrenNamed(avatar.NSUpdate, "x")
		if len(xs) != 1 || xs[0].ChildText(avatar.NSUpdate, "photo") != c.want {
			t.Errorf("%s → %s", c.in, seen.Raw)
		}
	}
}
