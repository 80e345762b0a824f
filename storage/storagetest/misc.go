package storagetest

import (
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

func testVCards(t *testing.T, open opener) {
	const owner = "juliet@capulet.example"
	cases := []struct {
		name string
		sets [][]byte
	}{
		{"set", [][]byte{vcard1}},
		{"replace", [][]byte{vcard1, vcard2}},
		{"replace with smaller", [][]byte{vcard2, []byte("<vCard xmlns='vcard-temp'/>")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := open(t)
			ctx := t.Context()
			_, err := st.VCard(ctx, owner)
			wantErr(t, "VCard before SetVCard", err, storage.ErrNotFound)
			for _, raw := range c.sets {
				must(t, "SetVCard", st.SetVCard(ctx, owner, raw))
			}
			got, err := st.VCard(ctx, owner)
			must(t, "VCard", err)
			wantBytes(t, "VCard", got, c.sets[len(c.sets)-1])
			_, err = st.VCard(ctx, "romeo@montague.example")
			wantErr(t, "VCard of another owner", err, storage.ErrNotFound)
		})
	}
}

func testBlocklist(t *testing.T, open opener) {
	const owner = "juliet@capulet.example"
	type step struct {
		block   bool
		jids    []string
		wantSet []string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"block", []step{
			{true, []string{"a@example.com", "example.net"}, []string{"a@example.com", "example.net"}},
		}},
		{"idempotent", []step{
			{true, []string{"a@example.com", "b@example.com"}, []string{"a@example.com", "b@example.com"}},
			{true, []string{"b@example.com", "c@example.com", "c@example.com"}, []string{"a@example.com", "b@example.com", "c@example.com"}},
			{true, []string{"a@example.com"}, []string{"a@example.com", "b@example.com", "c@example.com"}},
		}},
		{"full JIDs and non-ASCII", []step{
			{true, []string{"tybalt@capulet.example/sword", "тибальт@капулетти.example"}, []string{"tybalt@capulet.example/sword", "тибальт@капулетти.example"}},
		}},
		{"unblock some", []step{
			{true, []string{"a@example.com", "b@example.com", "c@example.com"}, []string{"a@example.com", "b@example.com", "c@example.com"}},
			{false, []string{"b@example.com", "never-blocked@example.com"}, []string{"a@example.com", "c@example.com"}},
		}},
		{"unblock all nil", []step{
			{true, []string{"a@example.com", "b@example.com"}, []string{"a@example.com", "b@example.com"}},
			{false, nil, nil},
		}},
		{"unblock all empty", []step{
			{true, []string{"a@example.com", "b@example.com"}, []string{"a@example.com", "b@example.com"}},
			{false, []string{}, nil},
			{true, []string{"b@example.com"}, []string{"b@example.com"}},
		}},
		{"unblock on empty list", []step{
			{false, nil, nil},
			{false, []string{"a@example.com"}, nil},
		}},
		{"block nothing", []step{
			{true, nil, nil},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := open(t)
			ctx := t.Context()
			must(t, "Block for bystander", st.Block(ctx, "romeo@montague.example", []string{"a@example.com"}))
			for i, s := range c.steps {
				if s.block {
					must(t, "Block", st.Block(ctx, owner, s.jids))
				} else {
					must(t, "Unblock", st.Unblock(ctx, owner, s.jids))
				}
				got, err := st.BlockList(ctx, owner)
				must(t, "BlockList", err)
				if len(got) != len(s.wantSet) || !sameSet(got, s.wantSet) {
					t.Fatalf("step %d: BlockList = %q, want %q (any order, no duplicates)", i, got, s.wantSet)
				}
			}
			other, err := st.BlockList(ctx, "romeo@montague.example")
			must(t, "BlockList bystander", err)
			if !sameSet(other, []string{"a@example.com"}) {
				t.Fatalf("bystander's BlockList changed: %q", other)
			}
		})
	}
}
