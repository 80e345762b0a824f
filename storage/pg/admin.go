package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// connectSchema opens a single connection for the migration commands,
// with schema (when not "") as the only schema on the search_path (""
// keeps the DSN's); create makes the schema first if it is missing.
func connectSchema(ctx context.Context, dsn, schema string, create bool) (*pgx.Conn, error) {
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, openError(dsn, nil, err)
	}
	// Without connect_timeout in the DSN, an unreachable host must not
	// hold the command until the operating system gives up.
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultQueryTimeout
	}
	if schema != "" && !create {
		cc.RuntimeParams["search_path"] = quoteIdent(schema)
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, openError(dsn, &cc.Config, err)
	}
	if schema != "" && create {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+quoteIdent(schema)); err != nil &&
			!isSQLState(err, "23505") && !isSQLState(err, "42P06") {
			conn.Close(context.WithoutCancel(ctx))
			return nil, openError(dsn, &cc.Config, fmt.Errorf("create schema %s: %w", schema, err))
		}
		if _, err := conn.Exec(ctx, `SELECT set_config('search_path', $1, false)`, quoteIdent(schema)); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, openError(dsn, &cc.Config, err)
		}
	}
	return conn, nil
}

// MigrateSchema is Migrate with the migrations applied in schema (created
// when missing) instead of the DSN's search_path; schema "" is Migrate.
func MigrateSchema(ctx context.Context, dsn, schema string) ([]string, error) {
	conn, err := connectSchema(ctx, dsn, schema, true)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	applied, err := migrate(ctx, conn, embeddedMigrations())
	if err != nil {
		return applied, openError(dsn, &conn.Config().Config, err)
	}
	return applied, nil
}

// StatusSchema is Status for the migrations of schema instead of the
// DSN's search_path; schema "" is Status.
func StatusSchema(ctx context.Context, dsn, schema string) ([]MigrationStatus, error) {
	conn, err := connectSchema(ctx, dsn, schema, false)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := readStatus(ctx, conn, embeddedMigrations())
	if err != nil {
		return nil, openError(dsn, &conn.Config().Config, err)
	}
	return st, nil
}
