package server

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
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

// limitHTTPListener refuses connections beyond http.connections_per_address
// (reverse proxies in http.trusted_proxies are not counted). On plain HTTP
// the client is told with a 429 response; on TLS the connection is closed
// before the handshake, which a refusal is not worth.
func (s *Server) limitHTTPListener(ln net.Listener, plain bool) net.Listener {
	per := netlimit.NewPerAddress(s.cfg.HTTP.ConnectionsPerAddress, s.proxies...)
	return netlimit.Listener(ln, per, func(c net.Conn) {
		httpLimitHits.WithLabelValues("per_address").Inc()
		if plain {
			const body = "too many connections from your address\n"
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nRetry-After: 60\r\n"+
				"Content-Type: text/plain; charset=utf-8\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
		}
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
