package pg

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// ErrTimeout is matched (errors.Is) by errors of calls that the Store's
// QueryTimeout cut short. Such errors also match context.DeadlineExceeded.
var ErrTimeout = errors.New("pg: database did not answer within the query timeout")

type timeoutCause struct{}

func (timeoutCause) Error() string { return "pg: query timeout" }

var errTimeoutCause error = timeoutCause{}

// IsUnavailable reports whether err says the database cannot be reached
// or is not serving: the connection was refused, reset or closed, the pool
// is closed, the server is shutting down or starting up (SQLSTATE 57P01,
// 57P02, 57P03), a connection exception (class 08), too many connections
// (53300), or no answer within the query timeout (ErrTimeout). Errors that
// the database returned for a query (constraint violations, syntax, ...)
// and the storage sentinel errors are not.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"),
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03",
			pe.Code == "53300":
			return true
		}
		// A connection attempt that the server refused for a reason of
		// its own (bad password, unknown database) is a configuration
		// problem, not an outage.
		return false
	}
	if errors.Is(err, ErrTimeout) || errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ETIMEDOUT,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne *net.OpError
	return errors.As(err, &ne)
}

// redacted replaces passwords in RedactDSN's output.
const redacted = "xxxxx"

// secretKeys are the connection parameters RedactDSN hides.
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// RedactDSN returns dsn with its passwords replaced by "xxxxx", for logs
// and error messages. It handles URL DSNs (postgres://user:pw@host/db,
// also ?password=pw) and key=value DSNs (host=h password='p w'), and keeps
// everything else as written.
func RedactDSN(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return redactURL(dsn)
	}
	return redactKeyValue(dsn)
}

func redactURL(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		q := u.Query()
		changed := false
		for k := range q {
			if secretKeys[k] {
				q.Set(k, redacted)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	// Unparsable (an unescaped character in the password, say): hide
	// everything between the scheme and the last '@', and any query.
	scheme, rest, _ := strings.Cut(dsn, "://")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		userinfo := rest[:at]
		if user, _, has := strings.Cut(userinfo, ":"); has {
			rest = user + ":" + redacted + rest[at:]
		}
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 && strings.Contains(strings.ToLower(rest[i:]), "password") {
		rest = rest[:i] + "?" + redacted
	}
	return scheme + "://" + rest
}

// redactKeyValue walks a libpq key=value string: keys and values separated
// by '=' (optionally surrounded by spaces), values either single-quoted
// (with \' and \\ escapes) or running to the next space (with \ escapes).
func redactKeyValue(dsn string) string {
	var b strings.Builder
	i := 0
	for i < len(dsn) {
		// Whitespace between pairs.
		j := i
		for j < len(dsn) && isSpace(dsn[j]) {
			j++
		}
		b.WriteString(dsn[i:j])
		i = j
		if i >= len(dsn) {
			break
		}
		// Key.
		for j < len(dsn) && dsn[j] != '=' && !isSpace(dsn[j]) {
			j++
		}
		key := dsn[i:j]
		for j < len(dsn) && isSpace(dsn[j]) {
			j++
		}
		if j >= len(dsn) || dsn[j] != '=' {
			// Not key=value: keep the text as is.
			b.WriteString(dsn[i:j])
			i = j
			continue
		}
		j++ // '='
		for j < len(dsn) && isSpace(dsn[j]) {
			j++
		}
		b.WriteString(dsn[i:j])
		// Value.
		i = j
		if j < len(dsn) && dsn[j] == '\'' {
			j++
			for j < len(dsn) && dsn[j] != '\'' {
				if dsn[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(dsn)) // closing quote
		} else {
			for j < len(dsn) && !isSpace(dsn[j]) {
				if dsn[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(dsn))
		}
		if secretKeys[key] {
			b.WriteString(redacted)
		} else {
			b.WriteString(dsn[i:j])
		}
		i = j
	}
	return b.String()
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// dsnError is an Open or Migrate failure. Its text names the server and
// database, and any password that leaked into the cause's text is masked;
// Unwrap still gives the cause, so IsUnavailable and errors.Is work.
type dsnError struct {
	target string
	secret string
	err    error
}

func (e *dsnError) Error() string {
	msg := e.err.Error()
	if e.secret != "" {
		msg = strings.ReplaceAll(msg, e.secret, redacted)
	}
	return "pg: " + e.target + ": " + msg
}

func (e *dsnError) Unwrap() error { return e.err }

// openError wraps err with where we tried to connect. cc is the parsed
// configuration, nil when the DSN did not parse.
func openError(dsn string, cc *pgconn.Config, err error) error {
	if cc == nil {
		return &dsnError{target: "DSN " + RedactDSN(dsn), secret: dsnPassword(dsn), err: err}
	}
	hosts := []string{net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port)))}
	for _, f := range cc.Fallbacks {
		h := net.JoinHostPort(f.Host, strconv.Itoa(int(f.Port)))
		if !strings.Contains(strings.Join(hosts, ","), h) {
			hosts = append(hosts, h)
		}
	}
	secret := cc.Password
	if secret == "" {
		secret = dsnPassword(dsn)
	}
	return &dsnError{
		target: fmt.Sprintf("host %s database %q", strings.Join(hosts, ","), cc.Database),
		secret: secret,
		err:    err,
	}
}

// dsnPassword extracts the password from dsn as best it can, so that it
// can be masked in error texts; "" when there is none.
func dsnPassword(dsn string) string {
	if cc, err := pgconn.ParseConfig(dsn); err == nil {
		return cc.Password
	}
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		return pw
	}
	return ""
}
