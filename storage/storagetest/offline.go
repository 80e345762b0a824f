package storagetest

import (
	"fmt"
	"testing"

	"github.com/parley-xmpp/parley/storage"
)

func wantCount(t *testing.T, st storage.Store, owner string, want int) {
	t.Helper()
	n, err := st.CountOffline(t.Context(), owner)
	must(t, "CountOffline", err)
	if n != want {
		t.Fatalf("CountOffline %s = %d, want %d", owner, n, want)
	}
}

// fill stores n messages for owner and returns their IDs.
func fill(t *testing.T, st storage.Store, owner string, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		id, err := st.StoreOffline(t.Context(), owner, fmt.Appendf(nil, "<message id='%d'/>", i), stamp(i), 0)
		must(t, "StoreOffline", err)
		ids[i] = id
	}
	return ids
}

func testOffline(t *testing.T, open opener) {
	const owner = "juliet@capulet.example"

	t.Run("Order", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		raws := [][]byte{stanza1, stanza2, vcard1, {}, []byte("<message/>")}
		ids := make([]int64, len(raws))
		for i, raw := range raws {
			id, err := st.StoreOffline(ctx, owner, raw, stamp(i*60), 0)
			must(t, "StoreOffline", err)
			if i > 0 && id <= ids[i-1] {
				t.Fatalf("StoreOffline IDs not increasing: %d after %d", id, ids[i-1])
			}
			ids[i] = id
		}
		got, err := st.OfflineMessages(ctx, owner)
		must(t, "OfflineMessages", err)
		if len(got) != len(raws) {
			t.Fatalf("OfflineMessages: %d messages, want %d", len(got), len(raws))
		}
		for i, m := range got {
			if m.ID != ids[i] || !m.Stamp.Equal(stamp(i*60)) {
				t.Fatalf("message %d = {%d %v}, want {%d %v}", i, m.ID, m.Stamp, ids[i], stamp(i*60))
			}
			wantBytes(t, fmt.Sprintf("message %d", i), m.Raw, raws[i])
		}
		wantCount(t, st, owner, len(raws))
	})

	t.Run("Quota", func(t *testing.T) {
		cases := []struct {
			name      string
			max, have int
			exceeded  bool
		}{
			{"below", 3, 2, false},
			{"at", 3, 3, true},
			{"above", 3, 5, true},
			{"one empty", 1, 0, false},
			{"one full", 1, 1, true},
			{"zero unlimited", 0, 20, false},
			{"negative unlimited", -1, 20, false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				st := open(t)
				ctx := t.Context()
				fill(t, st, owner, c.have)
				fill(t, st, "romeo@montague.example", 5) // other owners do not count
				_, err := st.StoreOffline(ctx, owner, stanza1, stamp(0), c.max)
				if c.exceeded {
					wantErr(t, "StoreOffline", err, storage.ErrQuotaExceeded)
					wantCount(t, st, owner, c.have)
				} else {
					must(t, "StoreOffline", err)
					wantCount(t, st, owner, c.have+1)
				}
			})
		}
	})

	t.Run("Delete", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		// Interleave two owners so their IDs mix.
		var mine, theirs []int64
		for range 5 {
			mine = append(mine, fill(t, st, owner, 1)...)
			theirs = append(theirs, fill(t, st, "romeo@montague.example", 1)...)
		}
		steps := []struct {
			upTo int64
			want []int64
		}{
			{0, mine},
			{mine[0] - 1, mine},
			{mine[2], mine[3:]},
			{mine[2], mine[3:]},
			{theirs[3], mine[4:]}, // an ID between mine[3] and mine[4]
			{mine[4], nil},
		}
		for i, s := range steps {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				must(t, "DeleteOffline", st.DeleteOffline(ctx, owner, s.upTo))
				got, err := st.OfflineMessages(ctx, owner)
				must(t, "OfflineMessages", err)
				var ids []int64
				for _, m := range got {
					ids = append(ids, m.ID)
				}
				if fmt.Sprint(ids) != fmt.Sprint(s.want) {
					t.Fatalf("after DeleteOffline(%d): IDs %v, want %v", s.upTo, ids, s.want)
				}
				wantCount(t, st, owner, len(s.want))
			})
		}
		wantCount(t, st, "romeo@montague.example", 5)
	})

	t.Run("IDsNotReused", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		old := fill(t, st, owner, 3)
		must(t, "DeleteOffline", st.DeleteOffline(ctx, owner, old[2]))
		// A client acknowledging up to old[2] must never delete this one.
		id, err := st.StoreOffline(ctx, owner, stanza1, stamp(0), 0)
		must(t, "StoreOffline", err)
		if id <= old[2] {
			t.Fatalf("new ID %d not above deleted ID %d", id, old[2])
		}
	})

	t.Run("EmptyQueue", func(t *testing.T) {
		st := open(t)
		ctx := t.Context()
		got, err := st.OfflineMessages(ctx, owner)
		must(t, "OfflineMessages", err)
		if len(got) != 0 {
			t.Fatalf("OfflineMessages of empty queue: %+v", got)
		}
		wantCount(t, st, owner, 0)
		must(t, "DeleteOffline on empty queue", st.DeleteOffline(ctx, owner, 1<<62))
	})
}
