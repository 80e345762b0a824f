package basic

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/modtest"
	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
	"github.com/parley-xmpp/parley/xep"
)

// other stands for a module registered after basic: its features,
// identities and hosts must show up in disco and caps.
type other struct{}

func (other) Name() string { return "other" }
func (other) Register(r *module.Registry) error {
	r.Feature("urn:xmpp:blocking", "msgoffline", xep.NSPing) // ping twice: deduplicated
	r.AccountFeature("urn:xmpp:mam:2")
	r.Identity(module.Identity{Category: "pubsub", Type: "pep"})
	r.AddHost(module.Host{Domain: "upload.example.org", Parent: domain, Name: "Uploads", Handler: func(context.Context, *module.Event) module.Verdict { return module.Handled }})
	r.AddHost(module.Host{Domain: "conference.example.org", Parent: domain, Name: "Chatrooms", Handler: func(context.Context, *module.Event) module.Verdict { return module.Handled }})
	r.AddHost(module.Host{Domain: "upload.other.example", Parent: "other.example", Handler: func(context.Context, *module.Event) module.Verdict { return module.Handled }})
	return nil
}

func TestCapsVerSpecExamples(t *testing.T) {
	// XEP-0115 §5.2.
	simple := wire.MustParse(`<query xmlns='http://jabber.org/protocol/disco#info'>
		<identity category='client' type='pc' name='Exodus 0.9.1'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<feature var='http://jabber.org/protocol/caps'/>
	</query>`).Tree()
	if got := CapsVer(simple); got != "QgayPKawpkPSDYmwT/WM94uAlu0=" {
		t.Errorf("simple example: ver %s (S=%q)", got, capsInput(simple))
	}
	// XEP-0115 §5.3, with an extended form, two languages and the fields
	// out of order.
	complexInfo := wire.MustParse(`<query xmlns='http://jabber.org/protocol/disco#info'>
		<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
		<identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
		<feature var='http://jabber.org/protocol/caps'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='http://jabber.org/protocol/disco#items'/>
		<feature var='http://jabber.org/protocol/muc'/>
		<x xmlns='jabber:x:data' type='result'>
			<field var='os'><value>Mac</value></field>
			<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
			<field var='ip_version' type='text-multi'><value>ipv6</value><value>ipv4</value></field>
			<field var='os_version'><value>10.5.1</value></field>
			<field var='software'><value>Psi</value></field>
			<field var='software_version'><value>0.11</value></field>
		</x>
		<x xmlns='jabber:x:data' type='result'><field var='ignored'><value>no FORM_TYPE</value></field></x>
	</query>`).Tree()
	wantS := "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
		"http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<" +
		"ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<"
	if s := capsInput(complexInfo); s != wantS {
		t.Errorf("complex example S:\n got %q\nwant %q", s, wantS)
	}
	if got := CapsVer(complexInfo); got != "q07IKJEyjvHSyhy//CH0CxmKi8w=" {
		t.Errorf("complex example: ver %s", got)
	}
}

func TestServerDiscoInfo(t *testing.T) {
	e := setup(t, Config{Version: "1.2.3", Contact: map[string][]string{
		"support-addresses": {"xmpp:support@example.org", "https://example.org/support"},
		"abuse-addresses":   {"mailto:abuse@example.org"},
		"sales-addresses":   nil, // no addresses: no field
	}}, other{})
	a := e.Login("alice@example.org/a")
	body := "<identity category='pubsub' type='pep'/>" +
		"<identity category='server' type='im' name='Parley'/>" +
		"<feature var='http://jabber.org/protocol/disco#info'/>" +
		"<feature var='http://jabber.org/protocol/disco#items'/>" +
		"<feature var='jabber:iq:version'/>" +
		"<feature var='msgoffline'/>" +
		"<feature var='urn:xmpp:blocking'/>" +
		"<feature var='urn:xmpp:ping'/>" +
		"<feature var='urn:xmpp:time'/>" +
		"<feature var='vcard-temp'/>" +
		"<x xmlns='jabber:x:data' type='result'>" +
		"<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/network/serverinfo</value></field>" +
		"<field var='abuse-addresses'><value>mailto:abuse@example.org</value></field>" +
		"<field var='support-addresses'><value>xmpp:support@example.org</value><value>https://example.org/support</value></field>" +
		"</x></query></iq>"
	e.ExpectReply(a, "<iq type='get' id='i1' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'>"+body)

	ver := e.mod.Ver()
	if got := CapsVer(e.mod.info().serverInfo); got != ver {
		t.Fatalf("Ver %s, recomputed %s", ver, got)
	}
	// The caps node answers with the same content (XEP-0115 §6.2).
	node := CapsNode + "#" + ver
	e.ExpectReply(a, "<iq type='get' id='i2' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='"+node+"'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='i2'><query xmlns='http://jabber.org/protocol/disco#info' node='"+node+"'>"+body)
	// Any other node is unknown, and so is a stale caps node.
	for _, n := range []string{"http://jabber.org/protocol/commands", CapsNode + "#stale"} {
		e.ExpectReply(a, "<iq type='get' id='i3' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='"+n+"'/></iq>",
			"<iq from='example.org' to='alice@example.org/a' type='error' id='i3'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	}
	// disco#info is a query: set is not served.
	if res := e.IQ(a, "<iq type='set' id='i4' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>"); modtest.ErrCondition(res) != "service-unavailable" {
		t.Errorf("set: %s", res.Raw)
	}
}

func TestServerDiscoInfoWithoutContacts(t *testing.T) {
	e := setup(t, Config{ServerName: "Test Server"})
	a := e.Login("alice@example.org/a")
	e.ExpectReply(a, "<iq type='get' id='i1' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='i1'><query xmlns='http://jabber.org/protocol/disco#info'>"+
			"<identity category='server' type='im' name='Test Server'/>"+
			"<feature var='http://jabber.org/protocol/disco#info'/>"+
			"<feature var='http://jabber.org/protocol/disco#items'/>"+
			"<feature var='jabber:iq:version'/>"+
			"<feature var='urn:xmpp:ping'/>"+
			"<feature var='urn:xmpp:time'/>"+
			"<feature var='vcard-temp'/>"+
			"</query></iq>")
	// Independently computed S for this feature set.
	wantS := "server/im//Test Server<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<" +
		"jabber:iq:version<urn:xmpp:ping<urn:xmpp:time<vcard-temp<"
	if s := capsInput(e.mod.info().serverInfo); s != wantS {
		t.Errorf("S = %q", s)
	}
}

func TestServerDiscoItems(t *testing.T) {
	e := setup(t, Config{}, other{})
	a := e.Login("alice@example.org/a")
	e.ExpectReply(a, "<iq type='get' id='d1' to='example.org'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='d1'><query xmlns='http://jabber.org/protocol/disco#items'>"+
			"<item jid='conference.example.org' name='Chatrooms'/><item jid='upload.example.org' name='Uploads'/></query></iq>")
	e.ExpectReply(a, "<iq type='get' id='d2' to='example.org'><query xmlns='http://jabber.org/protocol/disco#items' node='x'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='error' id='d2'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
}

func TestAccountDisco(t *testing.T) {
	e := setup(t, Config{}, other{})
	a := e.Login("alice@example.org/a")
	b := e.Login("bob@example.org/b")
	info := "<query xmlns='http://jabber.org/protocol/disco#info'><identity category='account' type='registered'/>" +
		"<feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/>" +
		"<feature var='urn:xmpp:mam:2'/><feature var='vcard-temp'/></query></iq>"
	// Own account, with and without 'to' (a reply to a request without
	// 'to' has no 'from', RFC 6120 §8.1.2.1).
	e.ExpectReply(a, "<iq type='get' id='a1'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='a1'>"+info)
	e.ExpectReply(a, "<iq type='get' id='a2' to='alice@example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq from='alice@example.org' to='alice@example.org/a' type='result' id='a2'>"+info)
	// Another user's account: the server answers for it.
	e.ExpectReply(b, "<iq type='get' id='a3' to='alice@example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
		"<iq from='alice@example.org' to='bob@example.org/b' type='result' id='a3'>"+info)
	e.ExpectReply(b, "<iq type='get' id='a4' to='alice@example.org'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:xmpp:mam:2'/></iq>",
		"<iq from='alice@example.org' to='bob@example.org/b' type='error' id='a4'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
	e.ExpectReply(a, "<iq type='get' id='a5'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='a5'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
	e.ExpectReply(b, "<iq type='get' id='a6' to='alice@example.org'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
		"<iq from='alice@example.org' to='bob@example.org/b' type='result' id='a6'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>")
}

func TestPingVersionTime(t *testing.T) {
	e := setup(t, Config{Version: "0.3.0"})
	a := e.Login("alice@example.org/a")
	b := e.Login("bob@example.org/b")
	e.ExpectReply(a, "<iq type='get' id='p1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='p1'/>")
	e.ExpectReply(a, "<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='p2'/>")
	e.ExpectReply(b, "<iq type='get' id='p3' to='alice@example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq from='alice@example.org' to='bob@example.org/b' type='result' id='p3'/>")
	e.ExpectReply(a, "<iq type='set' id='p4' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='error' id='p4'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")

	// No OS unless configured.
	e.ExpectReply(a, "<iq type='get' id='v1' to='example.org'><query xmlns='jabber:iq:version'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='v1'><query xmlns='jabber:iq:version'><name>Parley</name><version>0.3.0</version></query></iq>")
	// Version is a server query only: on an account it is the user's
	// clients' business (the router answers service-unavailable).
	if res := e.IQ(b, "<iq type='get' id='v2' to='alice@example.org'><query xmlns='jabber:iq:version'/></iq>"); modtest.ErrCondition(res) != "service-unavailable" {
		t.Errorf("version on account: %s", res.Raw)
	}

	e.mod.now = func() time.Time {
		return time.Date(2006, 12, 19, 12, 58, 35, 500, time.FixedZone("CST", -6*3600))
	}
	e.ExpectReply(a, "<iq type='get' id='t1' to='example.org'><time xmlns='urn:xmpp:time'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='t1'><time xmlns='urn:xmpp:time'><tzo>-06:00</tzo><utc>2006-12-19T18:58:35Z</utc></time></iq>")
	e.mod.now = func() time.Time { return time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC) }
	e.ExpectReply(a, "<iq type='get' id='t2' to='example.org'><time xmlns='urn:xmpp:time'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='t2'><time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2024-01-02T03:04:05Z</utc></time></iq>")
}

func TestVersionOS(t *testing.T) {
	e := setup(t, Config{ServerName: "P", Version: "1", OS: "Linux"})
	a := e.Login("alice@example.org/a")
	e.ExpectReply(a, "<iq type='get' id='v1' to='example.org'><query xmlns='jabber:iq:version'/></iq>",
		"<iq from='example.org' to='alice@example.org/a' type='result' id='v1'><query xmlns='jabber:iq:version'><name>P</name><version>1</version><os>Linux</os></query></iq>")
}

func TestVCard(t *testing.T) {
	e := setup(t, Config{MaxVCardBytes: 200})
	a := e.Login("alice@example.org/a")
	m := e.Login("mallory@example.org/m")
	empty := "<vCard xmlns='vcard-temp'/></iq>"
	// Nothing stored: an empty vCard, for the owner and for others.
	e.ExpectReply(a, "<iq type='get' id='g1'><vCard xmlns='vcard-temp'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='g1'>"+empty)
	e.ExpectReply(m, "<iq type='get' id='g2' to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>",
		"<iq from='alice@example.org' to='mallory@example.org/m' type='result' id='g2'>"+empty)

	vcard := "<vCard xmlns='vcard-temp'><FN>Alice</FN><NICKNAME>al</NICKNAME><x xmlns='urn:example:ext' a='1'/></vCard>"
	e.ExpectReply(a, "<iq type='set' id='s1'>"+vcard+"</iq>",
		"<iq to='alice@example.org/a' type='result' id='s1'/>")
	raw, err := e.Store.VCard(context.Background(), "alice@example.org")
	if err != nil || string(raw) != vcard {
		t.Fatalf("stored %q, %v", raw, err)
	}
	e.ExpectReply(a, "<iq type='get' id='g3'><vCard xmlns='vcard-temp'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='g3'>"+vcard+"</iq>")
	// Public to read.
	e.ExpectReply(m, "<iq type='get' id='g4' to='alice@example.org'><vCard xmlns='vcard-temp'/></iq>",
		"<iq from='alice@example.org' to='mallory@example.org/m' type='result' id='g4'>"+vcard+"</iq>")

	// Another user cannot set it; it stays unchanged.
	e.ExpectReply(m, "<iq type='set' id='x1' to='alice@example.org'><vCard xmlns='vcard-temp'><FN>Pwned</FN></vCard></iq>",
		"<iq from='alice@example.org' to='mallory@example.org/m' type='error' id='x1'><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"+
			"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>you can only change your own vCard</text></error></iq>")
	if raw, _ := e.Store.VCard(context.Background(), "alice@example.org"); string(raw) != vcard {
		t.Fatalf("vCard changed by another user: %s", raw)
	}
	// Nor can a remote server claiming to be alice (not a client origin).
	forged := wire.MustParse("<iq type='set' id='x2' from='alice@example.org/evil' to='alice@example.org'><vCard xmlns='vcard-temp'><FN>Pwned</FN></vCard></iq>")
	e.Router.Route(context.Background(), forged, module.Origin{Kind: module.FromServer})
	if raw, _ := e.Store.VCard(context.Background(), "alice@example.org"); string(raw) != vcard {
		t.Fatalf("vCard changed by a remote server: %s", raw)
	}

	// Setting with an explicit 'to' of one's own bare JID works.
	e.ExpectReply(a, "<iq type='set' id='s2' to='alice@example.org'><vCard xmlns='vcard-temp'><FN>A.</FN></vCard></iq>",
		"<iq from='alice@example.org' to='alice@example.org/a' type='result' id='s2'/>")
	// Too large.
	big := "<iq type='set' id='s3'><vCard xmlns='vcard-temp'><DESC>" + strings.Repeat("x", 200) + "</DESC></vCard></iq>"
	e.ExpectReply(a, big, "<iq to='alice@example.org/a' type='error' id='s3'><error type='modify'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"+
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>the vCard is larger than 200 bytes</text></error></iq>")
	e.ExpectReply(a, "<iq type='get' id='g5'><vCard xmlns='vcard-temp'/></iq>",
		"<iq to='alice@example.org/a' type='result' id='g5'><vCard xmlns='vcard-temp'><FN>A.</FN></vCard></iq>")
}

func TestVCardDefaultLimit(t *testing.T) {
	e := setup(t, Config{})
	a := e.Login("alice@example.org/a")
	ok := "<iq type='set' id='s1'><vCard xmlns='vcard-temp'><DESC>" + strings.Repeat("x", 60<<10) + "</DESC></vCard></iq>"
	if res := e.IQ(a, ok); res.Type != "result" {
		t.Fatalf("60 KiB vCard: %s", res.Raw[:200])
	}
	tooBig := "<iq type='set' id='s2'><vCard xmlns='vcard-temp'><DESC>" + strings.Repeat("x", 64<<10) + "</DESC></vCard></iq>"
	if res := e.IQ(a, tooBig); modtest.ErrCondition(res) != "not-acceptable" {
		t.Fatalf("64 KiB+ vCard: %s", res.Raw)
	}
}

func TestCapsStreamFeature(t *testing.T) {
	e := setup(t, Config{}, other{})
	fs := e.Registry.StreamFeatures()
	if len(fs) != 1 {
		t.Fatalf("%d stream features", len(fs))
	}
	want := "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://parley.im' ver='" + e.mod.Ver() + "'/>"
	for _, authed := range []bool{false, true} {
		if got := fs[0](authed).String(); got != want {
			t.Errorf("authenticated=%v: %s, want %s", authed, got, want)
		}
	}
	// The ver covers features of modules registered after basic.
	if !strings.Contains(capsInput(e.mod.info().serverInfo), "urn:xmpp:blocking<") {
		t.Errorf("caps input lacks later features: %s", capsInput(e.mod.info().serverInfo))
	}
}

func TestWithoutVCardStore(t *testing.T) {
	m := New(Config{}, nil)
	reg := module.NewRegistry([]string{domain}, nil, nil)
	if err := m.Register(reg); err != nil {
		t.Fatal(err)
	}
	if reg.IQHandler(xep.NSVCard, "vCard", module.TargetAccount) != nil {
		t.Error("vCard handler without a store")
	}
	for _, f := range reg.Features() {
		if f == xep.NSVCard {
			t.Error("vcard-temp advertised without a store")
		}
	}
}
