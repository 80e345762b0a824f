package server

import (
	"encoding/json"
	"net/http"

	"github.com/parley-xmpp/parley/invitepage"
	"github.com/parley-xmpp/parley/webclient"
	"github.com/parley-xmpp/parley/xep"
)

// webClientPath is where the web client is served, "" when it is off.
func (s *Server) webClientPath() string {
	if s.cfg.WebClient.Enabled {
		return webclient.Path
	}
	return ""
}

// clientHTTP serves what XMPP web clients need: RFC 7395 WebSocket and
// XEP-0156 host-meta discovery, with CORS for browsers on other origins.
func (s *Server) clientHTTP(secure bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/xmpp-websocket", s.c2s.WebSocketHandler(secure))
	if s.upload != nil {
		// XEP-0363: the handler sets its own CORS and security headers.
		mux.Handle("/upload/", s.upload.Handler())
	}
	if s.cfg.WebClient.Enabled {
		mux.Handle(webclient.Path, webclient.Handler(s.cfg.Hosts))
		mux.Handle("GET /{$}", http.RedirectHandler(webclient.Path, http.StatusFound))
	}
	// XEP-0401 invitation pages (their own security headers).
	mux.Handle("/invite/", invitepage.Handler(s.admin, invitepage.Config{WebClientPath: s.webClientPath(), Logger: s.log}))
	mux.HandleFunc("/.well-known/host-meta", func(w http.ResponseWriter, r *http.Request) {
		if cors(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/xrd+xml; charset=utf-8")
		_, _ = w.Write(hostMetaXRD(s.wsURL(r, secure)))
	})
	mux.HandleFunc("/.well-known/host-meta.json", func(w http.ResponseWriter, r *http.Request) {
		if cors(w, r) {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"links": []map[string]string{
			{"rel": xep.NSAltWebSocket, "href": s.wsURL(r, secure)},
		}})
	})
	return mux
}

// cors sets CORS headers and answers preflight requests; it reports
// whether the request was fully handled.
func cors(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	h.Set("Access-Control-Max-Age", "86400")
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return true
	}
	return false
}
