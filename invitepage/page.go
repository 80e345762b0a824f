// Package invitepage serves the web page of an invitation (XEP-0401 §3.3,
// XEP-0379 §3.3) at /invite/TOKEN on the http and https listeners: it
// tells the invited person in plain language which app to install on
// their device, offers the xmpp: link as a button and a QR code, and lets
// them pick a username and password in the browser when they have no app
// yet. The account is created by the admin service, the same function as
// in-band registration with the token.
//
// Security: the token is the only credential, so the page sends
// Referrer-Policy: no-referrer and is never cached; a strict
// Content-Security-Policy allows no script; form bodies are limited;
// passwords are never logged or echoed.
package invitepage

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/parley-xmpp/parley/admin"
)

// MaxFormBytes bounds the registration form.
const MaxFormBytes = 8 << 10

// Config configures the page.
type Config struct {
	// WebClientPath is where the web client is served ("" none), offered
	// after a registration in the browser.
	WebClientPath string
	Logger        *slog.Logger
}

// Handler serves /invite/{token}.
func Handler(svc *admin.Service, cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &page{svc: svc, cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /invite/{token}", p.show)
	mux.HandleFunc("POST /invite/{token}", p.register)
	return mux
}

type page struct {
	svc *admin.Service
	cfg Config
}

// App is one recommended client.
type App struct {
	Name, URL, Note string
}

// Platform groups the apps recommended for one kind of device.
type Platform struct {
	Name    string
	Apps    []App
	Current bool // the visitor's platform, from the User-Agent
}

// platforms lists well-maintained clients that support invitations
// (XEP-0401) where they exist.
func platforms(userAgent string) []Platform {
	ua := strings.ToLower(userAgent)
	ps := []Platform{
		{Name: "Android", Apps: []App{
			{"Conversations", "https://f-droid.org/packages/eu.siacs.conversations/", "free on F-Droid, also in Google Play; opens invitation links directly"},
			{"Cheogram", "https://f-droid.org/packages/com.cheogram.android/", "based on Conversations"},
		}},
		{Name: "iPhone and iPad", Apps: []App{
			{"Monal", "https://apps.apple.com/app/id317711500", "free in the App Store"},
			{"Siskin IM", "https://apps.apple.com/app/id1153516838", "free in the App Store"},
		}},
		{Name: "Windows", Apps: []App{
			{"Gajim", "https://gajim.org/download/", "free; download the installer"},
		}},
		{Name: "macOS", Apps: []App{
			{"Monal", "https://apps.apple.com/app/id1637078500", "free in the Mac App Store"},
		}},
		{Name: "Linux", Apps: []App{
			{"Dino", "https://dino.im/", "in most distributions' software centre"},
			{"Gajim", "https://gajim.org/download/", "in most distributions' software centre"},
		}},
	}
	cur := ""
	switch {
	case strings.Contains(ua, "android"):
		cur = "Android"
	case strings.Contains(ua, "iphone"), strings.Contains(ua, "ipad"):
		cur = "iPhone and iPad"
	case strings.Contains(ua, "windows"):
		cur = "Windows"
	case strings.Contains(ua, "mac os"):
		cur = "macOS"
	case strings.Contains(ua, "linux"):
		cur = "Linux"
	}
	// The visitor's platform first.
	for i := range ps {
		if ps[i].Name == cur {
			ps[i].Current = true
			ps[0], ps[i] = ps[i], ps[0]
		}
	}
	return ps
}

func headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
}

type view struct {
	Domain, Inviter, Username string
	// URI is built by the admin service from an xmpp: prefix, a JID and
	// the token's base32 characters: a safe link.
	URI       template.URL
	Expires   string
	QR        template.HTML
	Platforms []Platform
	Error     string
	Account   string // set after a successful registration
	WebClient string
	Invalid   bool
}

func (p *page) info(ctx context.Context, r *http.Request) (view, bool) {
	info, err := p.svc.CheckInvite(ctx, r.PathValue("token"))
	if err != nil {
		return view{Invalid: true}, false
	}
	v := view{Domain: info.Domain, Inviter: info.Inviter, Username: info.Username, URI: template.URL(info.URI),
		Expires: info.Expires.UTC().Format("2 January 2006, 15:04 MST"), Platforms: platforms(r.UserAgent()),
		WebClient: p.cfg.WebClientPath}
	v.QR = qrSVG(info.URI)
	return v, true
}

func (p *page) show(w http.ResponseWriter, r *http.Request) {
	headers(w)
	v, ok := p.info(r.Context(), r)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
	}
	p.render(w, v)
}

func (p *page) render(w http.ResponseWriter, v view) {
	if err := tmpl.Execute(w, v); err != nil {
		p.cfg.Logger.Debug("invitation page not written", "err", err)
	}
}

func (p *page) register(w http.ResponseWriter, r *http.Request) {
	headers(w)
	v, ok := p.info(r.Context(), r)
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		p.render(w, v)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		v.Error = "The form could not be read; please try again."
		p.render(w, v)
		return
	}
	username, password := strings.TrimSpace(r.PostForm.Get("username")), r.PostForm.Get("password")
	switch {
	case password == "" || (v.Username == "" && username == ""):
		v.Error = "Please choose a username and a password."
	case password != r.PostForm.Get("password2"):
		v.Error = "The two passwords are not the same."
	case len([]rune(password)) < 8:
		v.Error = "Please choose a password of at least 8 characters."
	}
	if v.Error != "" {
		w.WriteHeader(http.StatusBadRequest)
		p.render(w, v)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	bare, err := p.svc.RegisterWithInvite(ctx, r.PathValue("token"), v.Domain, username, password)
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, admin.ErrUserExists):
			v.Error = "This username is taken; please choose another one."
			status = http.StatusConflict
		case errors.Is(err, admin.ErrBadJID):
			v.Error = "This username is not allowed; please use letters, digits, dots, dashes or underscores."
		case errors.Is(err, admin.ErrBadPassword):
			v.Error = "This password is not allowed; please choose another one."
		case errors.Is(err, admin.ErrWrongUsername):
			v.Error = "This invitation is for the username " + v.Username + "."
		case errors.Is(err, admin.ErrInvalidInvite):
			v = view{Invalid: true}
			status = http.StatusNotFound
		default:
			p.cfg.Logger.Error("registration on the invitation page failed", "err", err)
			v.Error = "Something went wrong on the server; please try again later."
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		p.render(w, v)
		return
	}
	v.Account = bare
	p.render(w, v)
}

// qrSVG draws the QR code of text as an inline SVG (no image request,
// nothing for the CSP to allow).
func qrSVG(text string) template.HTML {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return ""
	}
	q.DisableBorder = false
	bm := q.Bitmap()
	n := len(bm)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="240" height="240" role="img" aria-label="QR code of the invitation link" shape-rendering="crispEdges"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n, n, n)
	for y, row := range bm {
		for x, on := range row {
			if on {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String()) // built from numbers only
}

var tmpl = template.Must(template.New("invite").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{if .Invalid}}Invitation not valid{{else}}Invitation to chat on {{.Domain}}{{end}}</title>
<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:42rem;margin:0 auto;padding:1rem 1.2rem;line-height:1.5;color:#1d2329;background:#f7f8fa}
h1{font-size:1.6rem;margin:.6rem 0}h2{font-size:1.15rem;margin-top:1.6rem}
.card{background:#fff;border:1px solid #dde1e6;border-radius:.7rem;padding:1rem 1.2rem;margin:1rem 0}
.button{display:inline-block;background:#1f6feb;color:#fff;padding:.7rem 1.2rem;border-radius:.5rem;text-decoration:none;font-weight:600}
.current{border-color:#1f6feb}.muted{color:#5b6673;font-size:.92rem}.error{color:#b42318;font-weight:600}
label{display:block;margin:.6rem 0 .2rem}input{font-size:1rem;padding:.45rem;width:100%;max-width:22rem;box-sizing:border-box}
button{font-size:1rem;margin-top:.9rem;padding:.55rem 1.1rem}code{word-break:break-all}
</style></head><body>
{{if .Invalid}}
<h1>This invitation is not valid</h1>
<p>The link is wrong, has already been used, was cancelled, or has expired. Please ask the person who sent it for a new one.</p>
{{else if .Account}}
<h1>Your account is ready</h1>
<div class="card"><p>Your address is <strong>{{.Account}}</strong>. Open your chat app, choose “I already have an account” (or “Log in”), and enter this address and the password you just chose.</p>
{{if .WebClient}}<p>No app? You can also <a href="{{.WebClient}}">chat in your browser</a>.</p>{{end}}</div>
{{else}}
<h1>{{if .Inviter}}{{.Inviter}} invites you to chat{{else}}You are invited to chat on {{.Domain}}{{end}}</h1>
<p>This invitation gives you a chat account on <strong>{{.Domain}}</strong>{{if .Username}} with the name <strong>{{.Username}}</strong>{{end}}{{if .Inviter}}, and adds {{.Inviter}} to your contacts{{end}}. It works with any app that speaks XMPP, a free and open chat standard. It is valid until {{.Expires}}.</p>

<h2>1. Install an app</h2>
{{range .Platforms}}<div class="card{{if .Current}} current{{end}}"><strong>{{.Name}}</strong>{{if .Current}} <span class="muted">(this device)</span>{{end}}<ul>
{{range .Apps}}<li><a href="{{.URL}}" rel="noopener noreferrer">{{.Name}}</a> <span class="muted">— {{.Note}}</span></li>{{end}}</ul></div>{{end}}

<h2>2. Open the invitation in the app</h2>
<div class="card"><p>Once the app is installed, tap this button. The app then creates your account and sets everything up.</p>
<p><a class="button" href="{{.URI}}">Open in my chat app</a></p>
<p>On another device? Scan this code with the phone where the app is installed:</p>
{{.QR}}
<p class="muted">If the button does nothing, the app is not installed yet. The link is <code>{{.URI}}</code></p></div>

<h2>No app yet? Create your account here</h2>
<div class="card"><form method="post" autocomplete="off">
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
<label for="username">Username</label>
{{if .Username}}<input id="username" name="username" value="{{.Username}}" readonly>{{else}}<input id="username" name="username" required maxlength="100" autocapitalize="none" spellcheck="false">{{end}}
<span class="muted">Your address will be username@{{.Domain}}.</span>
<label for="password">Password (at least 8 characters)</label>
<input id="password" name="password" type="password" required minlength="8" autocomplete="new-password">
<label for="password2">The same password again</label>
<input id="password2" name="password2" type="password" required minlength="8" autocomplete="new-password">
<button type="submit">Create my account</button>
</form><p class="muted">Then log in with your new address and password in any XMPP app{{if .WebClient}} or <a href="{{.WebClient}}">in your browser</a>{{end}}.</p></div>
<p class="muted">If you do not know who sent this invitation, you can ignore it.</p>
{{end}}
</body></html>
`))
