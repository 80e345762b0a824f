package federation

import (
	"testing"

	"github.com/parley-xmpp/parley/internal/testserver"
)

// c2sLogin logs in to a third-party server's STARTTLS port at addr as
// user@domain with SASL PLAIN and binds resource; with register the
// account is created in-band first (XEP-0077).
func c2sLogin(t *testing.T, addr, domain, user, password, resource string, register bool) *testserver.Client {
	t.Helper()
	c := testserver.ConnectTo(t, addr, domain)
	f := c.Features()
	if register {
		c.Send("<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>",
			user, password)
		if st := c.Next(); st.Name != "iq" || st.Type != "result" {
			t.Fatalf("in-band registration of %s: %s", user, st.Raw)
		}
	}
	c.LoginWith(f, "PLAIN", user, password, resource)
	return c
}
