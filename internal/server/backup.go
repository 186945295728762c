package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/backup"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
)

// backupSource is a data dir's database and blob store as backup.Write
// reads them.
type backupSource struct {
	db    Database
	blobs blobStore
}

func (b backupSource) Snapshot(ctx context.Context, path string) error {
	return sqlite.Snapshot(ctx, b.db.sqlitePath(), path)
}

func (b backupSource) SnapshotBlobs(ctx context.Context, path string, fn func(d digest.Digest, size int64) error) error {
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path, ReadConns: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	return s.ListBlobs(ctx, fn)
}

func (b backupSource) Forget(ctx context.Context, path string, ds []digest.Digest) error {
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path, ReadConns: 1})
	if err != nil {
		return err
	}
	defer s.Close()
	return s.ForgetBlobs(ctx, ds)
}

func (b backupSource) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	return b.blobs.Open(ctx, d)
}

// Backup writes a backup of the data dir dataDir (SQLite database, blobs
// on the filesystem or at blobURL, keys, trust and TUF files) to w while
// a server may be running on it (`hallmark backup`).
func Backup(ctx context.Context, dataDir, blobURL string, w io.Writer, compress bool, log *slog.Logger) (backup.Stats, error) {
	db := Database{DataDir: dataDir}
	if _, err := os.Stat(db.sqlitePath()); err != nil {
		return backup.Stats{}, fmt.Errorf("%s has no database (%v): pass the server's --data-dir; a PostgreSQL deployment is backed up with PostgreSQL's tools (see the README)", dataDir, err)
	}
	cfg := config.Defaults()
	cfg.DataDir, cfg.BlobURL = dataDir, blobURL
	blobs, err := openBlobs(ctx, cfg, log)
	if err != nil {
		return backup.Stats{}, err
	}
	return backup.Write(ctx, w, backupSource{db: db, blobs: blobs}, dataDir, compress)
}

// Restore restores a backup into the data dir dir (`hallmark restore`)
// and checks that the restored database opens and is intact.
func Restore(ctx context.Context, r io.Reader, dir string, o backup.RestoreOptions) (backup.Restored, error) {
	res, err := backup.Restore(ctx, r, dir, o)
	if err != nil {
		return res, err
	}
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, backup.DatabaseFile), ReadConns: 1})
	if err != nil {
		return res, fmt.Errorf("the restored database does not open: %w", err)
	}
	defer s.Close()
	if err := s.IntegrityCheck(ctx); err != nil {
		return res, fmt.Errorf("the restored database is damaged: %w", err)
	}
	return res, nil
}
