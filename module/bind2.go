package module

import (
	"context"

	"github.com/parley-xmpp/parley/wire"
)

// XEP-0386 Bind2 lets a client bind a resource inside its SASL2
// authentication and turn on session features at once. c2s runs the
// binding; modules contribute the features they own through these hooks.

// BindInlineFunc enables, for the session being bound, what a child of the
// Bind2 <bind/> request in the feature's namespace asks for (e.g. carbons'
// <enable/>). A non-nil result goes into the <bound/> answer. It runs
// before the client gets <bound/> and before anything is delivered to the
// session.
type BindInlineFunc func(ctx context.Context, s Session, req *wire.Element) *wire.Element

// BoundFunc runs for every session bound through Bind2, before <bound/> is
// sent, whatever the client asked for (e.g. the archive's state, XEP-0386
// §2.2); a non-nil result goes into <bound/>.
type BoundFunc func(ctx context.Context, s Session) *wire.Element

// BindInline is a registered inline feature.
type BindInline struct {
	NS string // advertised as <feature var='NS'/> in the Bind2 stream feature
	F  BindInlineFunc
}

type bind2Hooks struct {
	inline []BindInline
	bound  []BoundFunc
}

// BindInline registers f for requests in namespace ns inside Bind2 <bind/>.
func (r *Registry) BindInline(ns string, f BindInlineFunc) {
	r.bind2.inline = append(r.bind2.inline, BindInline{NS: ns, F: f})
}

// OnBind2 registers f to run for every Bind2 binding.
func (r *Registry) OnBind2(f BoundFunc) { r.bind2.bound = append(r.bind2.bound, f) }

// BindInlines returns the registered inline features, for c2s.
func (r *Registry) BindInlines() []BindInline { return r.bind2.inline }

// Bind2Hooks returns the OnBind2 subscribers, for c2s.
func (r *Registry) Bind2Hooks() []BoundFunc { return r.bind2.bound }
