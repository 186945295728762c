package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta/postgres"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
)

// Database names the metadata database: PostgreSQL at URL (--database-url,
// env HALLMARK_DATABASE_URL), else SQLite in DataDir/hallmark.db.
type Database struct {
	DataDir string
	URL     string // holds a password: never log it
	// KEK seals the keys kept in PostgreSQL (only used with URL).
	KEK KeyEncryptionKey
}

func (d Database) sqlitePath() string { return filepath.Join(d.DataDir, "hallmark.db") }

// open opens the store, applying pending migrations under the database's
// lock (several replicas may start at once). readConns sizes SQLite's read
// pool (0: default).
func (d Database) open(ctx context.Context, readConns int) (*sqlstore.Store, error) {
	if d.URL != "" {
		return postgres.Open(ctx, postgres.Config{URL: d.URL})
	}
	return sqlite.Open(ctx, sqlite.Config{Path: d.sqlitePath(), ReadConns: readConns})
}

// checkDataDir: the admin commands work on an existing server's data.
func (d Database) checkDataDir() error {
	if d.URL != "" {
		return nil
	}
	if fi, err := os.Stat(d.DataDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("data dir %s does not exist: pass the server's --data-dir (env HALLMARK_DATA_DIR) or --database-url, or start the server once", d.DataDir)
	}
	return nil
}

// OpenAuthAdmin opens the metadata database in dataDir for the user,
// project and token management commands. The server may be running at the
// same time (SQLite in WAL mode allows it). close must be called.
func OpenAuthAdmin(ctx context.Context, dataDir string) (adm *auth.Admin, close func() error, err error) {
	return OpenAdmin(ctx, Database{DataDir: dataDir})
}

// OpenAdmin is OpenAuthAdmin for the database db names (PostgreSQL or the
// data dir's SQLite file).
func OpenAdmin(ctx context.Context, db Database) (adm *auth.Admin, close func() error, err error) {
	if err := db.checkDataDir(); err != nil {
		return nil, nil, err
	}
	store, err := db.open(ctx, 2)
	if err != nil {
		return nil, nil, err
	}
	return &auth.Admin{Store: store}, store.Close, nil
}

// Migrate returns the migrations db has not applied and, unless dryRun,
// applies them (under the same lock servers take at start) and returns
// those it applied.
func Migrate(ctx context.Context, db Database, dryRun bool) ([]sqlstore.Migration, error) {
	if err := db.checkDataDir(); err != nil {
		return nil, err
	}
	var (
		conn *sql.DB
		d    *sqlstore.Dialect
		err  error
	)
	if db.URL != "" {
		d = postgres.Dialect()
		conn, err = postgres.OpenDB(postgres.Config{URL: db.URL})
	} else {
		d = sqlite.Dialect()
		if _, serr := os.Stat(db.sqlitePath()); errors.Is(serr, os.ErrNotExist) && dryRun {
			return sqlstore.Migrations(), nil // a new database: all pending; create nothing
		}
		conn, err = sqlite.OpenDB(sqlite.Config{Path: db.sqlitePath()})
	}
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pending, err := sqlstore.Pending(ctx, conn, d)
	if err != nil || dryRun || len(pending) == 0 {
		return pending, err
	}
	return sqlstore.Migrate(ctx, conn, d)
}
