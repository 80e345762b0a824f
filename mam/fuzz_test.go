package mam

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/modtest"
)

// FuzzMAMQuery: any archive query (XEP-0313 form fields, RSM, flip-page,
// XEP-0431 search) is answered exactly once, its results and <fin/> are
// well-formed, and a refusal has a defined condition.
func FuzzMAMQuery(f *testing.F) {
	for _, s := range []string{
		"<query xmlns='urn:xmpp:mam:2' queryid='q'/>",
		"<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>" +
			"<field var='with'><value>bob@example.org</value></field><field var='start'><value>2010-06-07T00:00:00Z</value></field></x>" +
			"<set xmlns='http://jabber.org/protocol/rsm'><max>2</max><before/></set></query>",
		"<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><index>1</index><max>-1</max><after>x</after></set><flip-page/></query>",
		"<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'><field var='{urn:xmpp:fulltext:0}fulltext'><value>hi there</value></field>" +
			"<field var='ids'><value>a</value><value>b</value></field><field var='end'><value>not a date</value></field></x></query>",
		"<metadata xmlns='urn:xmpp:mam:2'/>",
		"<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>bob@example.org</jid></always><never/></prefs>",
	} {
		f.Add("set", []byte(s))
	}
	f.Add("get", []byte("<query xmlns='urn:xmpp:mam:2'/>"))
	e := modtest.New(f)
	e.Register(New(Config{Settings: Settings{Fulltext: true, MaxPageSize: 20}}, e.Store, e.Store))
	a := e.Login("alice@example.org/fuzz")
	b := e.LoginAvailable("bob@example.org/fuzz", 0)
	for range 5 { // something to page through
		e.Send(b, "<message to='alice@example.org' type='chat'><body>hi there</body></message>")
	}
	a.Take()
	f.Fuzz(func(t *testing.T, typ string, payload []byte) {
		if typ != "get" && typ != "set" {
			typ = "set"
		}
		e.CheckIQ(t, a, typ, "", payload)
	})
}
