package s2s

import (
	"testing"

	"github.com/parley-xmpp/parley/wire"
)

// A conversation stays on one shard however the peer spells its ends, as
// long as routing takes the spellings for the same JIDs (PRECIS width and
// case mapping, IDNA): otherwise two stanzas of one conversation could be
// routed in parallel and delivered out of order.
func TestShardOfFollowsRouting(t *testing.T) {
	spellings := [][2]string{
		{"alice@remote.example/a", "user@local.example"},
		{"ALICE@Remote.Example/b", "USER@local.example"},
		{"ａｌｉｃｅ@remote.example/c", "ｕｓｅｒ@local.example"},
		{"alice@ＲＥＭＯＴＥ.example", "user@ｌｏｃａｌ.example/r"},
		{"alice@remote。example", "user@local.example"},
	}
	idn := [][2]string{
		{"bob@bücher.example", "user@local.example"},
		{"bob@xn--bcher-kva.example/x", "User@local.example"},
	}
	for _, set := range [][][2]string{spellings, idn} {
		want := shardOf(&wire.Stanza{From: set[0][0], To: set[0][1]})
		for _, p := range set[1:] {
			if got := shardOf(&wire.Stanza{From: p[0], To: p[1]}); got != want {
				t.Errorf("shardOf(from %q, to %q) = %d, want %d (as %q, %q)", p[0], p[1], got, want, set[0][0], set[0][1])
			}
		}
	}
}
