package router

import (
	"context"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/parley-xmpp/parley/module"
	"github.com/parley-xmpp/parley/wire"
)

// TestRoutedCounted: the pre-resolved stanzas_total children count by the
// stanza's kind and origin.
func TestRoutedCounted(t *testing.T) {
	r := New(Config{Domains: []string{"example.org"}})
	r.SetRegistry(module.NewRegistry([]string{"example.org"}, r.Sender(), r))
	count := func(kind, origin string) float64 {
		var m dto.Metric
		if err := stanzasRouted.WithLabelValues(kind, origin).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	msg, other := count("message", "server"), count("other", "local")
	r.Route(context.Background(), wire.MustParse("<message from='alice@remote.example/a' to='bob@example.org' type='chat'><body>hi</body></message>"),
		module.Origin{Kind: module.FromServer})
	r.Route(context.Background(), wire.MustParse("<foo from='example.org' to='bob@example.org'/>"), module.Origin{Kind: module.FromLocal})
	if got := count("message", "server") - msg; got != 1 {
		t.Errorf("message/server counted %v times", got)
	}
	if got := count("other", "local") - other; got != 1 {
		t.Errorf("other/local counted %v times", got)
	}
}
