package wire

import "testing"

func TestStreamErrorBytes(t *testing.T) {
	for _, c := range []struct {
		e    *StreamError
		want string
	}{
		{&StreamError{Condition: CondSystemShutdown},
			"<stream:error><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
		// RFC 6120 §4.9.3.19: the new address is the condition's content.
		{&StreamError{Condition: CondSeeOtherHost, Content: "[2001:db8::1]:5222", Text: "moving <now>"},
			"<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[2001:db8::1]:5222</see-other-host>" +
				"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>moving &lt;now&gt;</text></stream:error>"},
	} {
		if got := string(c.e.Bytes()); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
