package component

import (
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/router"
	"github.com/parley-xmpp/parley/wire"
)

// TestLargeStanzaAfterIdle: a stanza larger than the write buffer, sent
// to a component that was idle for longer than the write timeout, is
// written (each write has a deadline of its own; a deadline left over
// from the last flush failed the write and dropped the component).
func TestLargeStanzaAfterIdle(t *testing.T) {
	t.Parallel()
	const domain, secret = "bot.example.org", "s3cret"
	r := router.New(router.Config{Domains: []string{"example.org"}})
	reg := module.NewRegistry([]string{"example.org"}, r.Sender(), r)
	s := New(Config{Components: []Component{{Domain: domain, Secret: secret}}, Hosts: []string{"example.org"},
		Limits:       wire.Limits{MaxStanzaBytes: 1 << 20, MaxDepth: 16, MaxAttrs: 16},
		WriteTimeout: 100 * time.Millisecond}, r)
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	r.SetRegistry(reg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "<stream:stream xmlns='"+wire.NSComponent+"' xmlns:stream='"+wire.NSStream+"' to='"+domain+"'>")
	in := &bytes.Buffer{}
	readUntil := func(re *regexp.Regexp) []string {
		t.Helper()
		buf := make([]byte, 64<<10)
		for !re.Match(in.Bytes()) {
			n, err := c.Read(buf)
			in.Write(buf[:n])
			if err != nil {
				t.Fatalf("reading from the server: %v (got %q)", err, in.String())
			}
		}
		return re.FindStringSubmatch(in.String())
	}
	id := readUntil(regexp.MustCompile(`id='([^']+)'`))[1]
	io.WriteString(c, "<handshake>"+handshake(id, secret)+"</handshake>")
	readUntil(regexp.MustCompile(`<handshake/>`))

	time.Sleep(300 * time.Millisecond) // idle for longer than the write timeout
	body := strings.Repeat("x", 8<<10)
	r.Route(context.Background(), wire.MustParse("<message from='example.org' to='"+domain+"' id='big'><body>"+body+"</body></message>"),
		module.Origin{Kind: module.FromLocal})
	readUntil(regexp.MustCompile(regexp.QuoteMeta("<body>" + body + "</body></message>")))
}
