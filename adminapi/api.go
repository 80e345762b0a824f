// Package adminapi is the HTTP admin API: JSON over the admin listener,
// authenticated with bearer tokens (`parley admin token create`). Every
// endpoint calls the admin service, the same functions as the XEP-0133
// commands and the parley CLI. See docs/admin-api.md.
//
// Security: tokens are compared by their SHA-256 in the store and never
// logged; request bodies are limited to MaxBodyBytes; errors say what was
// wrong with the request, never echo passwords, and hide storage details.
package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/parley-xmpp/parley/admin"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Handler serves the API under /api/v1/.
func Handler(svc *admin.Service, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	a := &api{svc: svc, log: log}
	mux := http.NewServeMux()
	allowed := map[string][]string{} // path pattern → its methods, in order
	var paths []string
	route := func(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, a.wrap(h))
		method, path, _ := strings.Cut(pattern, " ")
		if allowed[path] == nil {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], method)
	}
	route("GET /api/v1/stats", a.stats)
	route("GET /api/v1/users", a.listUsers)
	route("POST /api/v1/users", a.addUser)
	route("GET /api/v1/users/{jid}", a.userStats)
	route("DELETE /api/v1/users/{jid}", a.deleteUser)
	route("PUT /api/v1/users/{jid}/password", a.setPassword)
	route("GET /api/v1/users/{jid}/export", a.export)
	route("POST /api/v1/users/{jid}/disable", a.disable)
	route("POST /api/v1/users/{jid}/enable", a.enable)
	route("GET /api/v1/disabled", a.disabled)
	route("GET /api/v1/sessions", a.sessions)
	route("DELETE /api/v1/users/{jid}/sessions", a.endSessions)
	route("POST /api/v1/announce", a.announce)
	route("GET /api/v1/welcome", a.getWelcome)
	route("PUT /api/v1/welcome", a.setWelcome)
	route("GET /api/v1/invites", a.listInvites)
	route("POST /api/v1/invites", a.createInvite)
	route("DELETE /api/v1/invites/{id}", a.revokeInvite)
	// A known path with another method is 405 with Allow (RFC 9110
	// §15.5.6), not the catch-all's 404: the method-less pattern is less
	// specific than the routes above and more specific than "/api/".
	for _, path := range paths {
		allow := allowed[path]
		if slices.Contains(allow, http.MethodGet) {
			allow = append(allow, http.MethodHead)
		}
		allowHeader := strings.Join(allow, ", ")
		mux.Handle(path, a.wrap(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Allow", allowHeader)
			return httpError{http.StatusMethodNotAllowed, r.Method + " is not allowed here (allowed: " + allowHeader + ")"}
		}))
	}
	mux.Handle("/api/", a.wrap(func(http.ResponseWriter, *http.Request) error {
		return httpError{http.StatusNotFound, "no such endpoint (see docs/admin-api.md)"}
	}))
	return mux
}

type api struct {
	svc *admin.Service
	log *slog.Logger
}

// httpError is an error with the status and message the client gets.
type httpError struct {
	status int
	msg    string
}

func (e httpError) Error() string { return e.msg }

func (a *api) wrap(h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		id, ok := a.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="parley admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token (create one with: parley admin token create)"})
			a.log.Info("admin API: refused request without a valid token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		err := h(w, r)
		if err == nil {
			a.log.Info("admin API", "method", r.Method, "path", r.Pattern, "token", id)
			return
		}
		status, msg := classify(err)
		if status == http.StatusInternalServerError {
			a.log.Error("admin API request failed", "method", r.Method, "path", r.Pattern, "token", id, "err", err)
		}
		writeJSON(w, status, map[string]string{"error": msg})
	})
}

// authenticate checks the bearer token; it returns the token's ID.
func (a *api) authenticate(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	return a.svc.CheckAPIToken(ctx, strings.TrimSpace(tok))
}

func classify(err error) (int, string) {
	var he httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.status, he.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)
	case errors.Is(err, admin.ErrNoSuchUser):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, admin.ErrUserExists):
		return http.StatusConflict, err.Error()
	case errors.Is(err, admin.ErrBadJID), errors.Is(err, admin.ErrBadPassword), errors.Is(err, admin.ErrInvalidInvite):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, admin.ErrNotRunning):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, admin.ErrInput):
		return http.StatusBadRequest, err.Error()
	}
	return http.StatusInternalServerError, "internal error (see the server log)"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON object into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return httpError{http.StatusBadRequest, "invalid JSON body: " + err.Error()}
	}
	if dec.More() {
		return httpError{http.StatusBadRequest, "invalid JSON body: more than one value"}
	}
	return nil
}

func (a *api) stats(w http.ResponseWriter, r *http.Request) error {
	st, err := a.svc.ServerStats(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (a *api) listUsers(w http.ResponseWriter, r *http.Request) error {
	users, err := a.svc.ListUsers(r.Context(), r.URL.Query().Get("domain"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": nonNil(users)})
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type credentials struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

func (a *api) addUser(w http.ResponseWriter, r *http.Request) error {
	var c credentials
	if err := decode(r, &c); err != nil {
		return err
	}
	bare, err := a.svc.AddUser(r.Context(), c.JID, c.Password)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"jid": bare})
	return nil
}

func (a *api) userStats(w http.ResponseWriter, r *http.Request) error {
	st, err := a.svc.Stats(r.Context(), r.PathValue("jid"))
	if err != nil {
		return err
	}
	st.Sessions = nonNil(st.Sessions) // [] for scripts, not null
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (a *api) deleteUser(w http.ResponseWriter, r *http.Request) error {
	bare, err := a.svc.DeleteUser(r.Context(), r.PathValue("jid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": bare})
	return nil
}

func (a *api) setPassword(w http.ResponseWriter, r *http.Request) error {
	var c struct {
		Password string `json:"password"`
	}
	if err := decode(r, &c); err != nil {
		return err
	}
	bare, err := a.svc.SetPassword(r.Context(), r.PathValue("jid"), c.Password)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"jid": bare})
	return nil
}

func (a *api) export(w http.ResponseWriter, r *http.Request) error {
	bare, err := a.svc.UserJID(r.PathValue("jid"))
	if err != nil {
		return err
	}
	if ok, err := a.svc.AccountExists(r.Context(), bare); err != nil {
		return err
	} else if !ok {
		return admin.ErrNoSuchUser
	}
	// Buffered, so that a failure half way is an error status rather
	// than a truncated document with 200.
	var buf bytes.Buffer
	if err := a.svc.Export(r.Context(), &buf, bare); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(bare, `"`, "")+`.xml"`)
	_, err = io.Copy(w, &buf)
	return err
}

func (a *api) disable(w http.ResponseWriter, r *http.Request) error {
	var m struct {
		Reason string `json:"reason"`
		For    string `json:"for"`
	}
	if err := decode(r, &m); err != nil {
		return err
	}
	d, err := admin.ParseTTL(m.For)
	if err != nil {
		return httpError{http.StatusBadRequest, "for: " + err.Error()}
	}
	bare, err := a.svc.DisableUser(r.Context(), r.PathValue("jid"), m.Reason, "api", d)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"disabled": bare})
	return nil
}

func (a *api) enable(w http.ResponseWriter, r *http.Request) error {
	bare, err := a.svc.EnableUser(r.Context(), r.PathValue("jid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"enabled": bare})
	return nil
}

func (a *api) disabled(w http.ResponseWriter, r *http.Request) error {
	list, err := a.svc.DisabledUsers(r.Context())
	if err != nil {
		return err
	}
	type entry struct {
		JID    string     `json:"jid"`
		Reason string     `json:"reason,omitempty"`
		By     string     `json:"by,omitempty"`
		Since  time.Time  `json:"since"`
		Until  *time.Time `json:"until,omitempty"`
	}
	out := []entry{}
	for _, sp := range list {
		e := entry{JID: sp.Account, Reason: sp.Reason, By: sp.By, Since: sp.Since}
		if !sp.Until.IsZero() {
			u := sp.Until
			e.Until = &u
		}
		out = append(out, e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"disabled": out})
	return nil
}

func (a *api) sessions(w http.ResponseWriter, r *http.Request) error {
	s, err := a.svc.OnlineUsers(r.URL.Query().Get("domain"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": nonNil(s)})
	return nil
}

func (a *api) endSessions(w http.ResponseWriter, r *http.Request) error {
	n, err := a.svc.EndSessions(r.PathValue("jid"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"ended": n})
	return nil
}

func (a *api) announce(w http.ResponseWriter, r *http.Request) error {
	var m struct {
		Domain  string `json:"domain"`
		Subject string `json:"subject"`
		Body    string `json:"body"`
	}
	if err := decode(r, &m); err != nil {
		return err
	}
	n, err := a.svc.Announce(r.Context(), m.Domain, m.Subject, m.Body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"sessions": n})
	return nil
}

func (a *api) getWelcome(w http.ResponseWriter, r *http.Request) error {
	t, err := a.svc.WelcomeMessage(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"text": t})
	return nil
}

func (a *api) setWelcome(w http.ResponseWriter, r *http.Request) error {
	var m struct {
		Text string `json:"text"`
	}
	if err := decode(r, &m); err != nil {
		return err
	}
	if err := a.svc.SetWelcomeMessage(r.Context(), m.Text); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"text": m.Text})
	return nil
}

type inviteJSON struct {
	ID       string    `json:"id"`
	Domain   string    `json:"domain"`
	Username string    `json:"username,omitempty"`
	Inviter  string    `json:"inviter,omitempty"`
	Admin    bool      `json:"admin"`
	UsesLeft int       `json:"uses_left"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

func (a *api) listInvites(w http.ResponseWriter, r *http.Request) error {
	invs, err := a.svc.ListInvites(r.Context(), r.URL.Query().Get("domain"))
	if err != nil {
		return err
	}
	out := []inviteJSON{}
	for _, i := range invs {
		out = append(out, inviteJSON{ID: i.ID, Domain: i.Domain, Username: i.Username, Inviter: i.Owner, Admin: i.Admin,
			UsesLeft: i.UsesLeft, Created: i.Created, Expires: i.Expires})
	}
	writeJSON(w, http.StatusOK, map[string]any{"invites": out})
	return nil
}

func (a *api) createInvite(w http.ResponseWriter, r *http.Request) error {
	var m struct {
		Domain   string `json:"domain"`
		Username string `json:"username"`
		Inviter  string `json:"inviter"`
		Admin    bool   `json:"admin"`
		Expires  string `json:"expires"`
		Uses     int    `json:"uses"`
	}
	if err := decode(r, &m); err != nil {
		return err
	}
	ttl, err := admin.ParseTTL(m.Expires)
	if err != nil {
		return httpError{http.StatusBadRequest, "expires: " + err.Error()}
	}
	req := admin.InviteRequest{Domain: m.Domain, Username: m.Username, Admin: m.Admin, TTL: ttl, Uses: m.Uses}
	if m.Inviter != "" {
		if req.Inviter, err = a.svc.UserJID(m.Inviter); err != nil {
			return err
		}
	}
	inv, err := a.svc.CreateInvite(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, inv)
	return nil
}

func (a *api) revokeInvite(w http.ResponseWriter, r *http.Request) error {
	if err := a.svc.RevokeInvite(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("id")})
	return nil
}
