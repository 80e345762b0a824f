package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-xmpp/parley/netlimit"
)

// httpLimitHits counts HTTP connections refused by a limit (per_address,
// the only value).
var httpLimitHits = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "parley", Subsystem: "http", Name: "limit_hits_total",
	Help: "HTTP connections refused by a limit: per_address.",
}, []string{"limit"})

func init() {
	prometheus.MustRegister(httpLimitHits)
	httpLimitHits.WithLabelValues("per_address")
}

// httpRefusals bounds the refused plain-HTTP connections being answered
// at once; beyond it a refused connection is closed at once, so a flood of
// them costs no more than this many goroutines.
const httpRefusals = 64

// limitHTTPListener refuses connections beyond http.connections_per_address
// (reverse proxies in http.trusted_proxies are not counted). On plain HTTP
// the refused connection is served anyway, marked as a refusedConn: its
// request is read (within http.read_header_timeout) and answered with 429
// and Connection: close (refuseOverLimit). Answering before the request
// arrives is not HTTP: a client that has not written its request yet
// takes the response as unsolicited on an idle connection and fails the
// request, and closing with the request unread resets the connection,
// which can destroy the response before it is read. On TLS the connection
// is closed before the handshake, which a refusal is not worth.
func (s *Server) limitHTTPListener(ln net.Listener, plain bool) net.Listener {
	per := netlimit.NewPerAddress(s.cfg.HTTP.ConnectionsPerAddress, s.proxies...)
	slots := make(chan struct{}, httpRefusals)
	return netlimit.Listener(ln, per, func(c net.Conn) net.Conn {
		httpLimitHits.WithLabelValues("per_address").Inc()
		if plain {
			select {
			case slots <- struct{}{}:
				return &refusedConn{Conn: c, slots: slots}
			default:
			}
		}
		_ = c.Close()
		return nil
	})
}

// refusedConn is a connection over the per-address limit that is served
// only to be refused; closing it frees its refusal slot.
type refusedConn struct {
	net.Conn
	slots chan struct{}
	once  sync.Once
}

func (c *refusedConn) Close() error {
	c.once.Do(func() { <-c.slots })
	return c.Conn.Close()
}

type refusedKey struct{}

// markRefused is the http.Server's ConnContext: requests on a refusedConn
// carry refusedKey in their context.
func markRefused(ctx context.Context, c net.Conn) context.Context {
	if _, ok := c.(*refusedConn); ok {
		return context.WithValue(ctx, refusedKey{}, true)
	}
	return ctx
}

// refuseOverLimit answers a request on a refusedConn with 429 (the write
// within write) and closes the connection after it; other requests go to h.
func refuseOverLimit(h http.Handler, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(refusedKey{}) == nil {
			h.ServeHTTP(w, r)
			return
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(write))
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "60")
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
	})
}

// withDeadlines puts progress deadlines on a request's body and response:
// each read of the body must bring data within read, each write must
// complete within write, so a stalled upload or a client that stops
// reading a download is dropped, while a large transfer that keeps moving
// takes as long as it needs. WebSocket upgrades are left alone (c2s puts
// its own deadlines on the hijacked connection).
func withDeadlines(h http.Handler, read, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			h.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(read))
		_ = rc.SetWriteDeadline(time.Now().Add(write))
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &stallReader{ReadCloser: r.Body, rc: rc, d: read}
		}
		h.ServeHTTP(&stallWriter{ResponseWriter: w, rc: rc, d: write}, r)
		// What net/http writes and reads after the handler (buffered
		// response, the rest of an unread body) has the same bounds.
		_ = rc.SetReadDeadline(time.Now().Add(read))
		_ = rc.SetWriteDeadline(time.Now().Add(write))
	})
}

type stallReader struct {
	io.ReadCloser
	rc *http.ResponseController
	d  time.Duration
}

func (b *stallReader) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	return b.ReadCloser.Read(p)
}

type stallWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *stallWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

// Flush keeps streaming responses working through the wrapper.
func (w *stallWriter) Flush() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *stallWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
