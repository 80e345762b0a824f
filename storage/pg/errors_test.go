package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/parley-xmpp/parley/storage"
)

func TestRedactDSN(t *testing.T) {
	cases := []struct{ in, want string }{
		// URL form.
		{"postgres://parley:s3cret@db.example:5432/parley?sslmode=require",
			"postgres://parley:xxxxx@db.example:5432/parley?sslmode=require"},
		{"postgresql://parley:p%40ss%2Fw0rd@db.example/parley",
			"postgresql://parley:xxxxx@db.example/parley"},
		{"postgres://parley@db.example/parley?password=s3cret&sslmode=disable",
			"postgres://parley@db.example/parley?password=xxxxx&sslmode=disable"},
		{"postgres://parley@db.example/parley", "postgres://parley@db.example/parley"},
		{"postgres://db.example/parley", "postgres://db.example/parley"},
		{"postgres://u:@db.example/parley", "postgres://u:xxxxx@db.example/parley"},
		{"postgres://u:pw@h1:5432,h2:5433/parley", "postgres://u:xxxxx@h1:5432,h2:5433/parley"},
		// Not a valid URL (an unescaped '%'): still no password.
		{"postgres://u:50%off@db.example/parley", "postgres://u:xxxxx@db.example/parley"},
		// key=value form.
		{"host=db.example user=parley password=s3cret dbname=parley",
			"host=db.example user=parley password=xxxxx dbname=parley"},
		{"host=db.example password='s3 cr\\'et' dbname=parley",
			"host=db.example password=xxxxx dbname=parley"},
		{"host=db.example password = s3cret  dbname=parley",
			"host=db.example password = xxxxx  dbname=parley"},
		{"password=a\\ b host=h", "password=xxxxx host=h"},
		{"host=h sslpassword=keypass sslkey=/k", "host=h sslpassword=xxxxx sslkey=/k"},
		{"host=h dbname=parley", "host=h dbname=parley"},
		{"host=h password=", "host=h password=xxxxx"},
		{"host=h password='unterminated", "host=h password=xxxxx"},
		{"", ""},
	}
	for _, c := range cases {
		got := RedactDSN(c.in)
		if got != c.want {
			t.Errorf("RedactDSN(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
		for _, secret := range []string{"s3cret", "s3 cr", "p%40ss", "50%off", "keypass", "a\\ b"} {
			if strings.Contains(c.in, secret) && strings.Contains(got, secret) {
				t.Errorf("RedactDSN(%q) = %q keeps the password", c.in, got)
			}
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Connection failures name the server and database, never the password,
// and are recognised as unavailability.
func TestOpenErrorHidesPassword(t *testing.T) {
	port := freePort(t)
	const secret = "Sup3rS3cret"
	for _, dsn := range []string{
		fmt.Sprintf("postgres://parley:%s@127.0.0.1:%d/parleydb?sslmode=disable", secret, port),
		fmt.Sprintf("host=127.0.0.1 port=%d user=parley password='%s' dbname=parleydb sslmode=disable", port, secret),
	} {
		for name, call := range map[string]func() error{
			"Open": func() error {
				_, err := Open(t.Context(), Config{DSN: dsn, Migrate: true, QueryTimeout: 2 * time.Second})
				return err
			},
			"Migrate": func() error { _, err := Migrate(t.Context(), dsn); return err },
			"Status":  func() error { _, err := Status(t.Context(), dsn); return err },
		} {
			start := time.Now()
			err := call()
			if err == nil {
				t.Fatalf("%s on a closed port succeeded", name)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Errorf("%s error shows the password: %s", name, msg)
			}
			if !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d", port)) || !strings.Contains(msg, "parleydb") {
				t.Errorf("%s error does not name host and database: %s", name, msg)
			}
			if !IsUnavailable(err) {
				t.Errorf("%s error is not IsUnavailable: %s", name, msg)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s took %v to fail", name, d)
			}
		}
	}
	// A DSN that does not parse: still no password.
	_, err := Open(t.Context(), Config{DSN: "postgres://parley:" + secret + "@127.0.0.1:notaport/parleydb"})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("unparsable DSN: %v", err)
	}
}

func TestIsUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &net.OpError{Err: syscall.ECONNREFUSED}}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"not found", storage.ErrNotFound, false},
		{"wrapped not found", fmt.Errorf("x: %w", storage.ErrNotFound), false},
		{"caller cancelled", context.Canceled, false},
		{"caller deadline", context.DeadlineExceeded, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"bad password", &pgconn.PgError{Code: "28P01"}, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown", &pgconn.PgError{Code: "57P02"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"wrapped admin shutdown", fmt.Errorf("q: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"refused", refused, true},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"eof", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), true},
		{"conn closed", fmt.Errorf("x: %w", pgconn.ErrConnClosed), true},
		{"pool closed", puddle.ErrClosedPool, true},
		{"query timeout", fmt.Errorf("%w: %w", ErrTimeout, context.DeadlineExceeded), true},
		{"other", errors.New("boom"), false},
	}
	for _, c := range cases {
		if got := IsUnavailable(c.err); got != c.want {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// A closed Store fails with an unavailability error, not a panic or hang.
func TestClosedStore(t *testing.T) {
	st := openTest(t)
	st.Close()
	_, err := st.AccountExists(t.Context(), "a@example.com")
	if !IsUnavailable(err) {
		t.Fatalf("AccountExists on a closed store: %v", err)
	}
}
