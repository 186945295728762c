package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/periodic"
)

// Config configures the SQLite store.
type Config struct {
	// Path of the database file; its directory is created if missing.
	Path string
	// ReadConns is the size of the read connection pool (default 8).
	ReadConns int
}

// Store is the SQLite store (the shared implementation).
type Store = sqlstore.Store

// TlogStore is the transparency log's storage in the database.
type TlogStore = sqlstore.TlogStore

// Dialect is SQLite's: ? placeholders, INTEGER PRIMARY KEY (rowid) keys,
// BLOB columns; BEGIN IMMEDIATE on the single writer connection holds the
// file's write lock for every write transaction, so migrations and the
// log's sequencing need no further lock.
func Dialect() *sqlstore.Dialect {
	return &sqlstore.Dialect{
		Name: "sqlite",
		Types: map[string]string{
			"id":       "INTEGER PRIMARY KEY",
			"intkey":   "INTEGER PRIMARY KEY",
			"bytes":    "BLOB",
			"bytewise": "", // BINARY, SQLite's default collation
		},
	}
}

// OpenDB opens the database file's single writer connection (BEGIN
// IMMEDIATE transactions) without migrating it: for `hallmark migrate`.
func OpenDB(cfg Config) (*sql.DB, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: database path is empty")
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create database directory: %w", err)
	}
	if err := privateFiles(cfg.Path); err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "temp_store(MEMORY)",
		// Up to 256 MiB of page cache for the writer (SQLite's default is
		// 2 MiB; pages are allocated as they are used): a batch of new
		// signatures touches the B-trees of the signatures, their
		// annotations, extensions and facts and every index on them, at
		// places spread over the whole index; with 2 MiB, pages were
		// written out and read back within one transaction. First index of
		// 100,000 signatures: 929/s with 64 MiB, 1,027/s with 256 MiB
		// (BENCHMARKS.md).
		"cache_size(-262144)",
		// The background checkpointer (startCheckpoints) copies the WAL;
		// the writer checkpoints itself only past 40 MiB of WAL; a WAL
		// that grew larger is cut back to 64 MiB when it starts over.
		"wal_autocheckpoint(" + strconv.Itoa(writerAutocheckpoint) + ")", "journal_size_limit(67108864)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", "file:"+cfg.Path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	if err := firstConnect(w); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	return w, nil
}

// firstConnect opens the writer's connection. Switching a new database to
// WAL (the journal_mode pragma each connection runs) fails at once with
// SQLITE_BUSY, without waiting for busy_timeout, while another process
// holds a lock on the file, e.g. a replica starting at the same moment
// and migrating; it is tried again for up to ten seconds.
func firstConnect(w *sql.DB) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := w.Ping()
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Open opens (creating and migrating if needed) the database at cfg.Path.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = 8
	}
	w, err := OpenDB(cfg)
	if err != nil {
		return nil, err
	}
	rq := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "query_only(1)"} {
		rq.Add("_pragma", p)
	}
	r, err := sql.Open("sqlite", "file:"+cfg.Path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	s, err := sqlstore.Open(ctx, Dialect(), w, r)
	if err != nil {
		return nil, err
	}
	s.OnClose(startCheckpoints(cfg.Path))
	return s, nil
}

// writerAutocheckpoint is the WAL size, in pages, past which a commit of
// the writer checkpoints (SQLite's default is 1,000): the background
// checkpointer does that work unless it falls behind.
const writerAutocheckpoint = 10000

// checkpointEvery is how often the background checkpointer copies the
// WAL's committed pages into the database file.
const checkpointEvery = 100 * time.Millisecond

// startCheckpoints copies committed pages from the WAL into the database
// file in the background, on a connection of its own, and returns the
// function that stops it. A PASSIVE checkpoint runs beside the writer
// instead of inside the commit that crossed the WAL's autocheckpoint size
// (SQLite's default), where every writer waited for it: on the first index
// of many signatures, that was a sixth of the writer's time. The writer's
// own autocheckpoint stays as the fallback (it finds little left to copy,
// and after it the WAL starts over from its beginning).
func startCheckpoints(path string) (stop func()) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(1000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return func() {}
	}
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		periodic.Every(ctx, checkpointEvery, func(ctx context.Context) {
			// Errors (busy, a closed file) are left to the next tick
			// and to the writer's own checkpoints.
			var busy, frames, copied int
			_ = db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		})
	}()
	return func() {
		cancel()
		<-done
		db.Close()
	}
}

// privateFiles makes the database's files readable by their owner only:
// they hold password and token hashes and the audit log. SQLite creates
// the -wal and -shm files with the mode of the database file, so creating
// that one 0600 covers all three; files an earlier version left readable
// by others are tightened.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&0o600); err != nil {
				return fmt.Errorf("sqlite: %s is readable by other users (mode %04o) and cannot be made private: %w", p, perm, err)
			}
		}
	}
	return nil
}

// Snapshot writes a consistent copy of the database at path to dst (a new
// file; give it a private directory: it is made 0600 once written) with
// VACUUM INTO, while servers may be writing: it reads one snapshot of the
// WAL database, and the copy is compact and has no WAL.
func Snapshot(ctx context.Context, path, dst string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("sqlite: snapshot of %s: %w", path, err)
	}
	return os.Chmod(dst, 0o600)
}
