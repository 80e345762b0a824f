package muc

import (
	"errors"
	"reflect"
	"slices"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

func TestContainsWord(t *testing.T) {
	for _, c := range []struct {
		text, word string
		want       bool
	}{
		{"hey bob, look", "bob", true},
		{"bob: hi", "bob", true},
		{"hi bob", "bob", true},
		{"bobby is here", "bob", false},
		{"kebob", "bob", false},
		{"bob_2 left", "bob", false},
		{"«bob» ?", "bob", true},
		{"zoë, are you there", "zoë", true},
		{"zoëlle", "zoë", false},
		{"", "bob", false},
		{"bob bob", "bob", true},
		{"xbob bob", "bob", true},
	} {
		if got := containsWord(c.text, c.word); got != c.want {
			t.Errorf("containsWord(%q, %q) = %v", c.text, c.word, got)
		}
	}
}

func TestRSMPage(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e"}
	page := func(set string) ([]string, string) {
		t.Helper()
		q := wire.MustParse("<query xmlns='http://jabber.org/protocol/disco#items'>" + set + "</query>").Tree()
		got, s, err := rsmPage(keys, q)
		if err != nil {
			return nil, err.Error()
		}
		count := ""
		if s != nil {
			count = s.ChildText(nsRSM, "count")
		}
		return got, count
	}
	const rsm = "<set xmlns='http://jabber.org/protocol/rsm'>"
	for _, c := range []struct {
		set  string
		want []string
	}{
		{"", keys},
		{rsm + "<max>2</max></set>", []string{"a", "b"}},
		{rsm + "<max>2</max><after>b</after></set>", []string{"c", "d"}},
		{rsm + "<max>2</max><before/></set>", []string{"d", "e"}},
		{rsm + "<max>2</max><before>c</before></set>", []string{"a", "b"}},
		{rsm + "<max>2</max><index>4</index></set>", []string{"e"}},
		{rsm + "<max>0</max></set>", []string{}},
	} {
		got, count := page(c.set)
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%s: %v, want %v", c.set, got, c.want)
		}
		if c.set != "" && count != "5" {
			t.Errorf("%s: count %q", c.set, count)
		}
	}
	if _, msg := page(rsm + "<max>x</max></set>"); msg == "" {
		t.Error("a bad max was accepted")
	}
}

func TestApplyConfigForm(t *testing.T) {
	m := New(Config{Settings: Settings{MaxOccupants: 50, MaxHistory: 30}}, nil)
	r := newRoom(m, jid.MustParse("r@conference.example.org"))
	r.cfg = m.cfg.defaults
	form := func(fields string) *wire.Element {
		return wire.MustParse("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>" + nsRoomConfig +
			"</value></field>" + fields + "</x>").Tree()
	}
	cfg, chg, err := r.applyConfigForm(r.cfg, form(
		"<field var='muc#roomconfig_roomname'><value>Room</value></field>"+
			"<field var='muc#roomconfig_persistentroom'><value>true</value></field>"+
			"<field var='muc#maxhistoryfetch'><value>500</value></field>"+
			"<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"+
			"<field var='muc#roomconfig_roomsecret'><value>s</value></field>"+
			"<field var='muc#roomconfig_roomadmins'><value>a@example.org</value><value>b@example.org</value></field>"+
			"<field var='x-unknown#field'><value>ignored</value></field>"))
	if err != nil || cfg.Name != "Room" || !cfg.Persistent || cfg.HistoryLength != 30 || cfg.Password != "s" ||
		!slices.Equal(chg.admins, []string{"a@example.org", "b@example.org"}) || chg.owners != nil {
		t.Fatalf("applied: %+v %+v %v", cfg, chg, err)
	}
	// Turning the password off clears it.
	cfg, _, _ = r.applyConfigForm(cfg, form("<field var='muc#roomconfig_passwordprotectedroom'><value>0</value></field>"))
	if cfg.Password != "" {
		t.Fatalf("password kept: %+v", cfg)
	}
	for name, fields := range map[string]string{
		"too many occupants": "<field var='muc#roomconfig_maxusers'><value>51</value></field>",
		"not a boolean":      "<field var='muc#roomconfig_membersonly'><value>maybe</value></field>",
		"bad whois":          "<field var='muc#roomconfig_whois'><value>everyone</value></field>",
		"bad pm setting":     "<field var='muc#roomconfig_allowpm'><value>all</value></field>",
		"bad notify":         "<field var='{urn:parley:muc:0}notify'><value>always</value></field>",
		"password missing":   "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>",
		"bad owner JID":      "<field var='muc#roomconfig_roomowners'><value>a@b/c</value></field>",
	} {
		if _, _, err := r.applyConfigForm(m.cfg.defaults, form(fields)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if se := (*module.StanzaError)(nil); !errors.As(err, &se) {
			t.Errorf("%s: %v is not a stanza error", name, err)
		}
	}
	bad := wire.MustParse("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field></x>").Tree()
	if _, _, err := r.applyConfigForm(m.cfg.defaults, bad); err == nil {
		t.Error("a foreign FORM_TYPE was accepted")
	}
}

func TestDecodeConfigKeepsNewDefaults(t *testing.T) {
	def := DefaultRoomConfig()
	got, err := decodeConfig([]byte(`{"name":"old room","members_only":true}`), def)
	if err != nil || got.Name != "old room" || !got.MembersOnly || got.Notify != def.Notify || got.MaxUsers != def.MaxUsers {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	again, err := decodeConfig(encodeConfig(got), def)
	if err != nil || !reflect.DeepEqual(again, got) || again.PresenceBroadcast != nil {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
	// No role shown stays no role, not every role.
	got.PresenceBroadcast = []string{}
	if again, err = decodeConfig(encodeConfig(got), def); err != nil || again.PresenceBroadcast == nil || again.broadcasts(roleVisitor) {
		t.Fatalf("round trip of an empty presence broadcast: %+v, %v", again, err)
	}
}

func TestPhotoHashes(t *testing.T) {
	v := wire.MustParse("<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png</TYPE><BINVAL>aGVs\n bG8=</BINVAL></PHOTO>" +
		"<PHOTO><BINVAL>!!!</BINVAL></PHOTO></vCard>").Tree()
	// sha1("hello")
	if got := photoHashes(v); !slices.Equal(got, []string{"aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"}) {
		t.Fatalf("hashes %v", got)
	}
}
