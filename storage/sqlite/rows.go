package sqlite

import (
	"context"
	"database/sql"

	"github.com/parley-xmpp/parley/storage"
)

// scanner is a row to scan: *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// queryAll runs q and scans every row with scan.
func queryAll[T any](ctx context.Context, db *sql.DB, q string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// oneRow turns "no row affected" into ErrNotFound.
func oneRow(res sql.Result, err error) error {
	return affectedOr(res, err, storage.ErrNotFound)
}

// affectedOr returns none when the statement affected no row.
func affectedOr(res sql.Result, err, none error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return none
	}
	return nil
}
