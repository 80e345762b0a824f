package upload

import (
	"context"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/parley-xmpp/parley/storage"
)

// Handler returns the HTTP handler for slot URLs. It serves
// <anything>/<id>/<file name>, so it can be mounted under any prefix
// (e.g. mux.Handle("/upload/", m.Handler())); Config.BaseURL must name the
// same place.
func (m *Module) Handler() http.Handler { return http.HandlerFunc(m.serveHTTP) }

func (m *Module) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, PUT, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
	h.Set("Access-Control-Max-Age", "86400")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox")
	h.Set("Referrer-Policy", "no-referrer")
	switch r.Method {
	case http.MethodOptions:
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		m.serveGet(w, r)
	case http.MethodPut:
		m.servePut(w, r)
	default:
		h.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// slotPath returns the id and file name of a slot URL path.
func slotPath(p string) (id, name string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", "", false
	}
	name = p[i+1:]
	j := strings.LastIndexByte(p[:i], '/')
	id = p[j+1 : i]
	return id, name, validID(id) && name != ""
}

// lookup finds the record a request's path names; the file name must
// match too.
func (m *Module) lookup(r *http.Request) (storage.Upload, bool, error) {
	id, name, ok := slotPath(r.URL.Path)
	if !ok {
		return storage.Upload{}, false, nil
	}
	u, err := m.meta.Upload(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return u, false, nil
	}
	if err != nil {
		return u, false, err
	}
	return u, u.Filename == name, nil
}

func (m *Module) servePut(w http.ResponseWriter, r *http.Request) {
	u, found, err := m.lookup(r)
	if err != nil {
		m.log.Error("upload: looking up slot", "path", r.URL.Path, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	if !found {
		reject(reasonNotFound)
		http.Error(w, "no such upload slot", http.StatusNotFound)
		return
	}
	// The signature binds the slot to what was requested (and to whom it
	// was handed out): a valid header of another slot does not fit.
	if !m.sign.verify(u, r.Header.Get("Authorization")) {
		reject(reasonBadSignature)
		http.Error(w, "missing or invalid authorization for this slot", http.StatusForbidden)
		return
	}
	if u.State != storage.UploadPending {
		reject(reasonReused)
		http.Error(w, "this slot has been used already", http.StatusConflict)
		return
	}
	if !m.now().Before(u.Expires) {
		reject(reasonExpired)
		http.Error(w, "this slot has expired; request a new one", http.StatusForbidden)
		return
	}
	switch {
	case r.ContentLength < 0:
		reject(reasonLength)
		http.Error(w, "Content-Length is required", http.StatusLengthRequired)
		return
	case r.ContentLength > u.Size:
		reject(reasonLength)
		http.Error(w, "the body is larger than the size of the slot ("+strconv.FormatInt(u.Size, 10)+" bytes)", http.StatusRequestEntityTooLarge)
		return
	case r.ContentLength != u.Size:
		reject(reasonLength)
		http.Error(w, "Content-Length must equal the size of the slot ("+strconv.FormatInt(u.Size, 10)+" bytes)", http.StatusBadRequest)
		return
	}
	if ct := r.Header.Get("Content-Type"); u.ContentType != "" && ct != "" && !sameMediaType(u.ContentType, ct) {
		reject(reasonContentType)
		http.Error(w, "Content-Type must be "+u.ContentType, http.StatusUnsupportedMediaType)
		return
	}
	ctx := r.Context()
	switch err := m.meta.StartUpload(ctx, u.ID); {
	case errors.Is(err, storage.ErrExists):
		reject(reasonReused)
		http.Error(w, "this slot has been used already", http.StatusConflict)
		return
	case errors.Is(err, storage.ErrNotFound):
		reject(reasonNotFound)
		http.Error(w, "no such upload slot", http.StatusNotFound)
		return
	case err != nil:
		m.log.Error("upload: claiming slot", "id", u.ID, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	// From here on the slot is spent: on failure its record goes, and the
	// client may request a new slot (XEP-0363 §6).
	fail := func(status int, msg string) {
		_ = m.blobs.Delete(u.ID)
		if err := m.meta.DeleteUpload(context.WithoutCancel(ctx), u.ID); err != nil {
			m.log.Warn("upload: removing failed slot", "id", u.ID, "err", err)
		}
		http.Error(w, msg, status)
	}
	// Never read beyond the declared size, whatever the transport does.
	body := http.MaxBytesReader(w, r.Body, u.Size)
	if err := m.blobs.Put(ctx, u.ID, body, u.Size); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(err, ErrSizeMismatch), errors.As(err, &tooLarge):
			reject(reasonIncompleteBody)
			fail(http.StatusBadRequest, "the body does not have the size of the slot")
		case ctx.Err() != nil:
			reject(reasonIncompleteBody)
			fail(http.StatusBadRequest, "upload interrupted")
		default:
			m.log.Warn("upload: storing file", "id", u.ID, "err", err)
			reject(reasonIncompleteBody)
			fail(http.StatusBadRequest, "the upload failed")
		}
		return
	}
	if err := m.meta.CompleteUpload(ctx, u.ID, m.now().UTC()); err != nil {
		// The record went away meanwhile (account deleted, stale sweep).
		m.log.Warn("upload: completing", "id", u.ID, "err", err)
		fail(http.StatusGone, "the slot was removed during the upload")
		return
	}
	uploadsTotal.Inc()
	uploadBytes.Add(float64(u.Size))
	diskUsage.Add(float64(u.Size))
	m.log.Info("file uploaded", "owner", u.Owner, "id", u.ID, "size", u.Size)
	w.WriteHeader(http.StatusCreated)
}

func (m *Module) serveGet(w http.ResponseWriter, r *http.Request) {
	u, found, err := m.lookup(r)
	if err != nil {
		m.log.Error("upload: looking up file", "path", r.URL.Path, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	if !found || u.State != storage.UploadComplete ||
		(m.cfg.FileTTL > 0 && m.now().Sub(u.Completed) > m.cfg.FileTTL) {
		http.NotFound(w, r)
		return
	}
	f, _, size, err := m.blobs.Open(u.ID)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		m.log.Error("upload: opening file", "id", u.ID, "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if size != u.Size {
		m.log.Error("upload: stored file has the wrong size", "id", u.ID, "size", size, "want", u.Size)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	ct, inline := serveType(u.ContentType)
	disposition := "attachment"
	if inline {
		disposition = "inline"
	}
	if d := mime.FormatMediaType(disposition, map[string]string{"filename": u.Filename}); d != "" {
		disposition = d
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", disposition)
	h.Set("ETag", `"`+u.ID+`"`)
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", u.Completed, f)
}
