package pg

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// archiveIDEncoding is storage.NewArchiveID's alphabet.
var archiveIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// idLookupSlack is how far before the time in its ID a message's ts is
// looked for first. storage.NewArchiveID never puts a time before the
// message's own in an ID (when the clock steps back it keeps the last
// one), so ts < ID time + 1 ms always holds; ts is older than the ID time
// only after a clock step back, and by more than this only after a big
// one. Those rare rows are still found, by a lookup over all partitions.
const idLookupSlack = time.Hour

// idTimeBounds returns a range that holds the ts of the message with a
// storage.NewArchiveID id, so that a lookup by id touches only the one or
// two monthly partitions of that range (partition pruning) instead of
// probing every partition's index. ok is false for ids of another shape.
func idTimeBounds(id string) (from, to time.Time, ok bool) {
	if len(id) != 26 {
		return from, to, false
	}
	b, err := archiveIDEncoding.DecodeString(id)
	if err != nil || len(b) != 16 {
		return from, to, false
	}
	ms := int64(binary.BigEndian.Uint64(b[:8]) >> 16)
	t := time.UnixMilli(ms).UTC()
	return t.Add(-idLookupSlack), t.Add(time.Millisecond), true
}

// lookupTS returns the ts of owner's message id (pgx.ErrNoRows when there
// is none), first within the time range its id implies.
func lookupTS(ctx context.Context, tx pgx.Tx, owner, id string) (time.Time, error) {
	var ts time.Time
	if from, to, ok := idTimeBounds(id); ok {
		err := tx.QueryRow(ctx, `SELECT ts FROM archive WHERE owner = $1 AND id = $2 AND ts >= $3 AND ts < $4`,
			owner, id, from, to).Scan(&ts)
		if !isNoRows(err) {
			return ts, err
		}
	}
	err := tx.QueryRow(ctx, `SELECT ts FROM archive WHERE owner = $1 AND id = $2`, owner, id).Scan(&ts)
	return ts, err
}

// countsCover reports whether archive_counts answers COUNT(*) for the
// filter where: owner alone, or owner and a bare peer (where[1]), and
// nothing else (no resource, time, id or text condition).
func countsCover(where []string, withResource string) bool {
	return len(where) == 1 || (len(where) == 2 && withResource == "" && strings.HasPrefix(where[1], "with_bare = "))
}

// countSQL is the query for the size of the result set of filter: from
// archive_counts when it covers the filter, else by counting.
func countSQL(where []string, withResource, filter string) string {
	if countsCover(where, withResource) {
		return `SELECT COALESCE(SUM(n), 0) FROM archive_counts WHERE ` + filter
	}
	return `SELECT COUNT(*) FROM archive WHERE ` + filter
}

// firstIndex sets *idx to the position of the message (ts, id) in the
// result set of filter, which holds count messages. It counts the
// smaller side: first the messages from (ts, id) on, stopping at half the
// set, and only if that side is the bigger one, those before it. A page
// near the newest messages (the usual case: newest page, catching up
// after an id, paging back) so costs about the distance to the end, not
// the size of the archive.
func firstIndex(ctx context.Context, tx pgx.Tx, filter string, args params, ts time.Time, id string, count int, idx *int) error {
	half := count/2 + 1
	a := slices.Clone(args)
	bound := "(ts, id) >= (" + a.add(ts) + ", " + a.add(id) + ")"
	var after int
	if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM archive WHERE `+filter+` AND `+bound+
		` LIMIT `+a.add(int64(half))+`) s`, a...).Scan(&after); err != nil {
		return err
	}
	if after < half {
		*idx = count - after
		return nil
	}
	b := slices.Clone(args)
	return tx.QueryRow(ctx, `SELECT COUNT(*) FROM archive WHERE `+filter+
		` AND (ts, id) < (`+b.add(ts)+`, `+b.add(id)+`)`, b...).Scan(idx)
}
