package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"time"
)

// Migration is one versioned schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string // portable SQL with {{...}} type tokens
	// ByDialect, only where the SQL must differ, holds the text a dialect
	// (by Dialect.Name) runs instead of SQL; tokens expand in it too.
	ByDialect map[string]string
	// backfill, when set, runs after the SQL in the same transaction, for
	// what SQL alone cannot derive from existing rows.
	backfill func(ctx context.Context, tx conn) error
}

// Migrations returns every migration this binary knows, oldest first.
func Migrations() []Migration { return append([]Migration(nil), migrations...) }

var tokenRE = regexp.MustCompile(`\{\{[a-z]+\}\}`)

// Expand returns m's SQL as dialect d runs it. Every token must be known
// to d, so a migration cannot silently differ between dialects.
func (d *Dialect) Expand(m Migration) (string, error) {
	q := m.SQL
	if v, ok := m.ByDialect[d.Name]; ok {
		q = v
	}
	var missing []string
	out := tokenRE.ReplaceAllStringFunc(q, func(tok string) string {
		v, ok := d.Types[tok[2:len(tok)-2]]
		if !ok {
			missing = append(missing, tok)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s: migration %d uses %v, which the dialect does not define", d.Name, m.Version, missing)
	}
	return out, nil
}

const createVersions = `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`

// Pending returns the migrations db has not applied yet, without changing
// anything. A database whose schema is newer than this binary is an error.
func Pending(ctx context.Context, db *sql.DB, d *Dialect) ([]Migration, error) {
	c := conn{db, d}
	var have int
	err := c.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have)
	if err != nil {
		// No schema_migrations table: a new database. Tell that apart from
		// a database that cannot be read.
		var n int
		if err2 := c.queryRow(ctx, `SELECT 1`).Scan(&n); err2 != nil {
			return nil, fmt.Errorf("%s: read schema version: %w", d.Name, err2)
		}
		have = 0
	}
	if have > len(migrations) {
		return nil, fmt.Errorf("%s: %w", d.Name, newerError(have))
	}
	return Migrations()[have:], nil
}

func newerError(have int) error {
	return fmt.Errorf("database schema version %d is newer than this binary knows (%d); upgrade hallmark", have, len(migrations))
}

// Migrate applies the pending migrations to db and returns them. Each runs
// in its own transaction that first takes the dialect's migration lock,
// then reads the version and applies the next migration only if it is
// still missing: replicas starting at once against one database apply
// each migration exactly once, the others wait and find it done.
func Migrate(ctx context.Context, db *sql.DB, d *Dialect) ([]Migration, error) {
	var applied []Migration
	for {
		var next *Migration
		err := func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			c := conn{tx, d}
			if d.LockMigrations != "" {
				if _, err := c.exec(ctx, d.LockMigrations); err != nil {
					return fmt.Errorf("take the migration lock: %w", err)
				}
			}
			if _, err := c.exec(ctx, createVersions); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var have int
			if err := c.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
				return fmt.Errorf("read schema version: %w", err)
			}
			if have > len(migrations) {
				return newerError(have)
			}
			if have == len(migrations) {
				return tx.Commit()
			}
			m := migrations[have]
			q, err := d.Expand(m)
			if err != nil {
				return err
			}
			if _, err := c.exec(ctx, q); err != nil {
				return fmt.Errorf("apply migration %d (%s): %w", m.Version, m.Name, err)
			}
			if m.backfill != nil {
				if err := m.backfill(ctx, c); err != nil {
					return fmt.Errorf("apply migration %d (%s): %w", m.Version, m.Name, err)
				}
			}
			if _, err := c.exec(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, m.Version, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("record migration %d: %w", m.Version, err)
			}
			if err := tx.Commit(); err != nil {
				return err
			}
			next = &m
			return nil
		}()
		if err != nil {
			return applied, fmt.Errorf("%s: migrate: %w", d.Name, d.wrap(err))
		}
		if next == nil {
			return applied, nil
		}
		applied = append(applied, *next)
	}
}
