package pg

import "context"

// DropSchema removes a schema and everything in it (benchmarks and tests
// that work in a schema of their own).
func (s *Store) DropSchema(ctx context.Context, schema string) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, 30e9))
	defer cancel()
	_, err := s.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+quoteIdent(schema)+` CASCADE`)
	return err
}
