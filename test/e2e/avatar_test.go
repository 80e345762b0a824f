package e2e

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/wire"
)

const (
	nsVCard        = "vcard-temp"
	nsVCardUpdate  = "vcard-temp:x:update"
	nsConversion   = "urn:xmpp:pep-vcard-conversion:0"
	nodeAvatarData = "urn:xmpp:avatar:data"
	nodeAvatarMeta = "urn:xmpp:avatar:metadata"
)

// testPNG returns a w×h PNG image, different for each seed.
func testPNG(t *testing.T, w, h int, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{R: seed, G: uint8(x * 16), B: uint8(y * 16), A: 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// photoHash returns the vcard-temp:x:update photo of a presence and
// whether it has the element at all.
func photoHash(p *wire.Stanza) (string, bool) {
	ph := p.Child(nsVCardUpdate, "x").Child(nsVCardUpdate, "photo")
	return ph.Text(), ph != nil
}

func hasFeature(t *testing.T, c *testserver.Client, to, feature string) bool {
	t.Helper()
	r := c.IQ("df-"+feature, "<iq type='get' id='df-%s' to='%s'><query xmlns='%s'/></iq>", feature, to, nsDiscoInfo)
	for _, f := range r.Child(nsDiscoInfo, "query").ChildrenNamed(nsDiscoInfo, "feature") {
		if f.AttrValue("var") == feature {
			return true
		}
	}
	return false
}

// getVCard fetches to's vCard.
func getVCard(t *testing.T, c *testserver.Client, id, to string) *wire.Element {
	t.Helper()
	r := c.IQ(id, "<iq type='get' id='%s' to='%s'><vCard xmlns='%s'/></iq>", id, to, nsVCard)
	if r.Type != "result" {
		t.Fatalf("vCard get: %s", r.Raw)
	}
	return r.Child(nsVCard, "vCard")
}

// vcardImage returns the decoded PHOTO BINVAL and TYPE of a vCard.
func vcardImage(t *testing.T, vc *wire.Element) ([]byte, string) {
	t.Helper()
	p := vc.Child(nsVCard, "PHOTO")
	if p == nil {
		return nil, ""
	}
	img, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(p.ChildText(nsVCard, "BINVAL")), ""))
	if err != nil {
		t.Fatalf("BINVAL: %v: %s", err, vc.Bytes())
	}
	return img, p.ChildText(nsVCard, "TYPE")
}

// avatarContacts logs alice and bob in, makes them contacts and has bob's
// client ask for avatar metadata notifications. It returns once alice's
// server has learnt bob's interests and sent him her last items: until
// then an avatar the test publishes could reach him twice, live and again
// as a last item (XEP-0163 §4.3.2), which the tests would take for a
// notification the server should not have sent.
func avatarContacts(t *testing.T) (ts *testserver.Server, alice, bob string, a, b *testserver.Client) {
	ts = testserver.Start(t)
	alice = ts.AddUser("alice", "pw1")
	bob = ts.AddUser("bob", "pw2")
	a = ts.Login("alice", "pw1", "phone")
	b = ts.Login("bob", "pw2", "pc")
	requirePEP(t, a, alice)
	if !hasFeature(t, a, alice, nsConversion) {
		t.Fatalf("the account does not advertise %s", nsConversion)
	}
	a.Send("<presence/>")
	capsB, featB := pepCaps(nodeAvatarMeta, "http://jabber.org/protocol/nick")
	b.Send("<presence>%s</presence>", capsB)
	subscribe(t, a, b, alice, bob)
	// Her nick is the last item bob gets once his caps are known.
	publishNick(t, a, "nick", "Alice")
	answerCapsQuery(b, featB)
	b.Expect("alice's nick as her last item", func(s *wire.Stanza) bool { return isNickEvent("Alice")(s) && s.From == alice })
	return ts, alice, bob, a, b
}

// TestAvatarPEPToVCard: a PEP avatar becomes the vCard PHOTO that a
// contact and a stranger read, and its hash goes into presence; disabling
// the PEP avatar removes the PHOTO.
func TestAvatarPEPToVCard(t *testing.T) {
	t.Parallel()
	ts, alice, _, a, b := avatarContacts(t)
	img := testPNG(t, 4, 3, 1)
	h := sha1Hex(img)

	r := a.IQ("d1", "<iq type='set' id='d1'><pubsub xmlns='%s'><publish node='%s'><item id='%s'><data xmlns='%s'>%s</data></item></publish></pubsub></iq>",
		nsPubSub, nodeAvatarData, h, nodeAvatarData, base64.StdEncoding.EncodeToString(img))
	if r.Type != "result" {
		t.Fatalf("publish data: %s", r.Raw)
	}
	r = a.IQ("m1", "<iq type='set' id='m1'><pubsub xmlns='%s'><publish node='%s'><item id='%s'><metadata xmlns='%s'><info bytes='%d' id='%s' type='image/png' width='4' height='3'/></metadata></item></publish></pubsub></iq>",
		nsPubSub, nodeAvatarMeta, h, nodeAvatarMeta, len(img), h)
	if r.Type != "result" {
		t.Fatalf("publish metadata: %s", r.Raw)
	}
	b.Expect("metadata notification", func(s *wire.Stanza) bool { return isEvent(nodeAvatarMeta, h)(s) && s.From == alice })

	// The contact and a stranger read the vCard avatar.
	got, typ := vcardImage(t, getVCard(t, b, "v1", alice))
	if !bytes.Equal(got, img) || typ != "image/png" {
		t.Fatalf("vCard photo (type %q) is not the PEP avatar", typ)
	}
	ts.AddUser("eve", "pw3")
	e := ts.Login("eve", "pw3", "x")
	if got, _ := vcardImage(t, getVCard(t, e, "v2", alice)); !bytes.Equal(got, img) {
		t.Fatal("stranger's vCard photo is not the PEP avatar")
	}

	// Presence carries the hash: added, and replacing an empty <x/>.
	a.Send("<presence><status>one</status></presence>")
	p := b.Expect("presence with hash", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "one"
	})
	if ph, _ := photoHash(p); ph != h {
		t.Fatalf("presence photo %q, want %q: %s", ph, h, p.Raw)
	}
	a.Send("<presence><status>two</status><x xmlns='%s'/></presence>", nsVCardUpdate)
	p = b.Expect("presence with empty x", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "two"
	})
	if ph, _ := photoHash(p); ph != h || len(p.Tree().ChildrenNamed(nsVCardUpdate, "x")) != 1 {
		t.Fatalf("empty x not overwritten with %q: %s", h, p.Raw)
	}
	// A client's empty <photo/> stays.
	a.Send("<presence><status>three</status><x xmlns='%s'><photo/></x></presence>", nsVCardUpdate)
	p = b.Expect("presence with empty photo", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "three"
	})
	if ph, ok := photoHash(p); ph != "" || !ok {
		t.Fatalf("empty photo changed: %s", p.Raw)
	}
	// A probe answer (a new resource of bob) carries the hash too.
	a.Send("<presence><status>four</status></presence>")
	b.Expect("presence four", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "four"
	})
	b2 := ts.Login("bob", "pw2", "tablet")
	b2.Send("<presence/>")
	p = b2.Expect("probe answer", testserver.PresenceFrom(alice, ""))
	if ph, _ := photoHash(p); ph != h {
		t.Fatalf("probe answer photo %q: %s", ph, p.Raw)
	}

	// Disabling the PEP avatar removes the vCard photo and the hash.
	r = a.IQ("m2", "<iq type='set' id='m2'><pubsub xmlns='%s'><publish node='%s'><item id='none'><metadata xmlns='%s'/></item></publish></pubsub></iq>",
		nsPubSub, nodeAvatarMeta, nodeAvatarMeta)
	if r.Type != "result" {
		t.Fatalf("publish empty metadata: %s", r.Raw)
	}
	if vc := getVCard(t, b, "v3", alice); vc.Child(nsVCard, "PHOTO") != nil {
		t.Fatalf("vCard keeps a photo: %s", vc.Bytes())
	}
	a.Send("<presence><status>five</status></presence>")
	p = b.Expect("presence five", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "five"
	})
	if ph, _ := photoHash(p); ph != "" {
		t.Fatalf("presence still has a hash after removal: %s", p.Raw)
	}
}

// TestAvatarVCardToPEP: a vCard PHOTO is published to the PEP avatar
// nodes (contacts notified), the hash goes into presence, and a vCard
// without PHOTO disables the PEP avatar.
func TestAvatarVCardToPEP(t *testing.T) {
	t.Parallel()
	_, alice, _, a, b := avatarContacts(t)
	img := testPNG(t, 5, 7, 2)
	h := sha1Hex(img)
	enc := base64.StdEncoding.EncodeToString(img)
	// Wrapped at 40 columns, as vCard clients often do.
	var wrapped strings.Builder
	for i := 0; i < len(enc); i += 40 {
		wrapped.WriteString(enc[i:min(i+40, len(enc))] + "\n")
	}
	vcard := "<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>" + wrapped.String() + "</BINVAL></PHOTO></vCard>"
	r := a.IQ("vs1", "<iq type='set' id='vs1'>%s</iq>", vcard)
	if r.Type != "result" {
		t.Fatalf("vCard set: %s", r.Raw)
	}
	n := b.Expect("metadata notification", func(s *wire.Stanza) bool { return isEvent(nodeAvatarMeta, h)(s) && s.From == alice })
	info := n.Child(nsPubSubEvent, "event").Child(nsPubSubEvent, "items").Child(nsPubSubEvent, "item").
		Child(nodeAvatarMeta, "metadata").Child(nodeAvatarMeta, "info")
	if info.AttrValue("id") != h || info.AttrValue("bytes") != strconv.Itoa(len(img)) || info.AttrValue("type") != "image/png" ||
		info.AttrValue("width") != "5" || info.AttrValue("height") != "7" {
		t.Fatalf("metadata info: %s", n.Raw)
	}
	r = b.IQ("gd", "<iq type='get' id='gd' to='%s'><pubsub xmlns='%s'><items node='%s'><item id='%s'/></items></pubsub></iq>", alice, nsPubSub, nodeAvatarData, h)
	d := r.Child(nsPubSub, "pubsub").Child(nsPubSub, "items").Child(nsPubSub, "item").Child(nodeAvatarData, "data")
	if got, err := base64.StdEncoding.DecodeString(d.Text()); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("avatar data: %s", r.Raw)
	}
	// The vCard is stored as the client sent it: no loop rewrote it.
	vc := getVCard(t, a, "vg1", alice)
	if got, _ := vcardImage(t, vc); !bytes.Equal(got, img) || vc.ChildText(nsVCard, "FN") != "Alice" ||
		!strings.Contains(string(vc.Bytes()), "\n") {
		t.Fatalf("vCard after set: %s", vc.Bytes())
	}

	a.Send("<presence><status>with photo</status></presence>")
	p := b.Expect("presence", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "with photo"
	})
	if ph, _ := photoHash(p); ph != h {
		t.Fatalf("presence photo %q, want %q: %s", ph, h, p.Raw)
	}
	// The same vCard again publishes nothing new.
	r = a.IQ("vs2", "<iq type='set' id='vs2'>%s</iq>", vcard)
	if r.Type != "result" {
		t.Fatalf("vCard set again: %s", r.Raw)
	}
	b.ExpectNone("second notification", 200*time.Millisecond, isEvent(nodeAvatarMeta, ""))

	// Removing the photo disables the PEP avatar.
	r = a.IQ("vs3", "<iq type='set' id='vs3'><vCard xmlns='vcard-temp'><FN>Alice</FN></vCard></iq>")
	if r.Type != "result" {
		t.Fatalf("vCard set without photo: %s", r.Raw)
	}
	n = b.Expect("empty metadata notification", isEvent(nodeAvatarMeta, ""))
	md := n.Child(nsPubSubEvent, "event").Child(nsPubSubEvent, "items").Child(nsPubSubEvent, "item").Child(nodeAvatarMeta, "metadata")
	if md == nil || len(md.Elements()) != 0 {
		t.Fatalf("want empty metadata: %s", n.Raw)
	}
	a.Send("<presence><status>no photo</status></presence>")
	p = b.Expect("presence", func(s *wire.Stanza) bool {
		return testserver.PresenceFrom(alice, "")(s) && s.Child(wire.NSClient, "status").Text() == "no photo"
	})
	if _, ok := photoHash(p); ok {
		t.Fatalf("presence has a photo after removal: %s", p.Raw)
	}
}
