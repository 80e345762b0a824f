package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/parley-xmpp/parley/admin"
	"github.com/parley-xmpp/parley/internal/testserver"
	"github.com/parley-xmpp/parley/server"
)

func httpsClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}

func getPage(t *testing.T, c *http.Client, u, ua string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestInvitationLandingPage: the HTTPS page of an invitation explains what
// to install for the visitor's platform, offers the xmpp: link and a QR
// code, and creates the account in the browser; used, forged and expired
// tokens get a clear page.
func TestInvitationLandingPage(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	ts := testserver.StartWithLog(t, logs, func(c *server.Config) {})
	ts.AddUser("romeo", "pw-romeo")
	inv, err := ts.Admin().CreateInvite(t.Context(), admin.InviteRequest{Domain: "localhost", Inviter: "romeo@localhost"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(inv.Landing, "https://localhost:") {
		t.Fatalf("landing URL %q", inv.Landing)
	}
	c := httpsClient()
	page := "https://" + ts.Addr("https") + "/invite/" + inv.Token

	st, h, body := getPage(t, c, page, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126 Mobile Safari/537.36")
	if st != 200 {
		t.Fatalf("page: %d %s", st, body)
	}
	for _, want := range []string{"romeo@localhost invites you to chat", "Conversations", "(this device)", "Monal", "Gajim",
		`href="xmpp:romeo@localhost?roster;preauth=` + inv.Token + `;ibr=y"`, "<svg", "Create my account"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Index(body, "Android") > strings.Index(body, "iPhone") {
		t.Error("the visitor's platform (Android) is not listed first")
	}
	if h.Get("Referrer-Policy") != "no-referrer" || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") ||
		h.Get("Cache-Control") != "no-store" {
		t.Errorf("security headers: %v", h)
	}

	post := func(form url.Values) (int, string) {
		resp, err := c.PostForm(page, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := post(url.Values{"username": {"juliet"}, "password": {"balcony-2024"}, "password2": {"other-one"}}); st != 400 || !strings.Contains(body, "not the same") {
		t.Fatalf("mismatch: %d", st)
	}
	if st, body := post(url.Values{"username": {"romeo"}, "password": {"balcony-2024"}, "password2": {"balcony-2024"}}); st != 409 || !strings.Contains(body, "taken") {
		t.Fatalf("taken: %d", st)
	}
	if st, _ := post(url.Values{"username": {"juliet"}, "password": {strings.Repeat("x", 9000)}}); st != 400 {
		t.Fatalf("oversized form: %d", st)
	}
	st, body = post(url.Values{"username": {"juliet"}, "password": {"balcony-2024"}, "password2": {"balcony-2024"}})
	if st != 200 || !strings.Contains(body, "juliet@localhost") || !strings.Contains(body, "Your account is ready") {
		t.Fatalf("register: %d %s", st, body)
	}
	// The new account logs in and has romeo as a mutual contact.
	j := ts.Login("juliet", "balcony-2024", "")
	r := j.IQ("r", "<iq type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>")
	if !strings.Contains(string(r.Raw), "jid='romeo@localhost'") || !strings.Contains(string(r.Raw), "subscription='both'") {
		t.Fatalf("roster: %s", r.Raw)
	}
	// Used, forged, and on the plain http listener too.
	for _, u := range []string{page, "https://" + ts.Addr("https") + "/invite/FORGEDTOKEN", "http://" + ts.Addr("http") + "/invite/" + inv.Token} {
		st, _, body := getPage(t, c, u, "")
		if st != 404 || !strings.Contains(body, "This invitation is not valid") {
			t.Fatalf("%s: %d", u, st)
		}
	}
	if st, body := post(url.Values{"username": {"paris"}, "password": {"balcony-2024"}, "password2": {"balcony-2024"}}); st != 404 || !strings.Contains(body, "not valid") {
		t.Fatalf("used token POST: %d", st)
	}
	if strings.Contains(logs.String(), "balcony-2024") || strings.Contains(logs.String(), inv.Token) {
		t.Fatal("a password or token reached the log")
	}
}
