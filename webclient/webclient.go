// Package webclient serves Converse.js, an XMPP web client, embedded in
// the binary (scripts/update-webclient.sh puts the pinned npm release in
// dist/), at /chat/ on the http and https listeners, configured for the
// server's own WebSocket endpoint. Nothing is loaded from elsewhere at run
// time: the page's Content-Security-Policy allows only this origin (and
// its WebSocket).
package webclient

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"slices"
	"strings"
)

//go:embed dist
var dist embed.FS

// Path is where the client is served.
const Path = "/chat/"

// Version is the embedded Converse.js release.
func Version() string {
	b, _ := dist.ReadFile("dist/VERSION")
	return strings.TrimSpace(string(b))
}

// Handler serves the client under Path; hosts are the XMPP domains (the
// login form's domain is the one the browser asked for when it is one of
// them, else the first).
func Handler(hosts []string) http.Handler {
	sub, _ := fs.Sub(dist, "dist")
	files := http.StripPrefix(Path+"dist/", http.FileServerFS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path+"{$}", func(w http.ResponseWriter, r *http.Request) {
		security(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write([]byte(indexHTML))
	})
	mux.HandleFunc("GET "+Path+"config.js", func(w http.ResponseWriter, r *http.Request) {
		security(w)
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write([]byte(configJS(domainFor(r, hosts))))
	})
	mux.HandleFunc("GET "+Path+"dist/", func(w http.ResponseWriter, r *http.Request) {
		security(w)
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, r)
	})
	return mux
}

// domainFor picks the XMPP domain for a request's Host.
func domainFor(r *http.Request, hosts []string) string {
	h := r.Host
	if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.ToLower(h)
	if slices.Contains(hosts, h) {
		return h
	}
	return hosts[0]
}

func security(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "+
		"style-src 'self' 'unsafe-inline'; script-src 'self' 'wasm-unsafe-eval'; font-src 'self'; media-src 'self' blob:; "+
		"worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")
}

// configJS starts Converse for domain with the WebSocket of the origin
// the page was loaded from (ws: for http, wss: for https). The room
// search service is the host's own room service: Converse's default sends
// what the user types in the "Add groupchat" dialog to a public directory
// (api@search.jabber.network) through this server's federation, and an
// empty setting removes the dialog's room field altogether (Converse 14).
func configJS(domain string) string {
	d, _ := json.Marshal(domain)
	return `(function () {
  var ws = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/xmpp-websocket";
  converse.initialize({
    assets_path: "` + Path + `dist/",
    websocket_url: ws,
    discover_connection_methods: false,
    bosh_service_url: undefined,
    default_domain: ` + string(d) + `,
    locked_domain: ` + string(d) + `,
    authentication: "login",
    allow_registration: false,
    view_mode: "fullscreen",
    i18n: "en",
    use_system_emojis: true,
    show_client_info: false,
    muc_domain: "conference." + ` + string(d) + `,
    muc_search_service: "conference." + ` + string(d) + `,
    message_archiving: "always",
    clear_cache_on_logout: true,
    persistent_store: "IndexedDB"
  });
})();
`
}

const indexHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Chat</title>
<link rel="icon" href="` + Path + `dist/images/favicon.ico">
<link rel="stylesheet" href="` + Path + `dist/converse.min.css">
<style>converse-footer{display:none!important}</style>
<script type="module" src="` + Path + `dist/converse.min.js"></script>
</head>
<body class="converse-fullscreen">
<noscript>This chat needs JavaScript. You can also use any XMPP app.</noscript>
<script type="module" src="` + Path + `config.js"></script>
</body>
</html>
`
