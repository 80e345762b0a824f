package pg

import "context"

// VacuumArchive runs VACUUM (ANALYZE) on the archive and its partitions:
// what autovacuum does by itself on a production server some minutes
// after a bulk load (the visibility map lets counts skip the heap, the
// statistics steer the planner). For benchmarks and admins after a
// `parley db copy`.
func (s *Store) VacuumArchive(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `VACUUM (ANALYZE) archive`)
	return err
}
