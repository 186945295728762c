package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// TUFPath is where the TUF repository is served: the mirror URL clients
// initialize with (`cosign initialize --mirror <url>/tuf --root root.json`).
const TUFPath = "/tuf"

// TUFDir is the repository's directory in the data dir.
const TUFDir = "tuf"

// setupTUF publishes the trusted root and signing config as the targets of
// the server's TUF repository (creating the repository and its keys on
// first start; a changed trusted root becomes a new targets version; what
// expired while the server was down is renewed) and serves it under
// TUFPath. Run keeps its metadata fresh. It runs after setupTrust.
func (s *Server) setupTUF(ctx context.Context, mux *http.ServeMux) error {
	if s.trust == nil {
		return errors.New("the TUF repository publishes the trust material: setupTrust must run first")
	}
	var pg *sqlstore.Store
	if s.cfg.DatabaseURL != "" {
		pg, _ = s.meta.(*sqlstore.Store)
	}
	store, err := tufStore(s.cfg.DataDir, pg)
	if err != nil {
		return err
	}
	repo, err := tuf.New(store, tuf.KeystoreKeys(s.keys), s.log, tuf.Config{TimestampExpiry: s.cfg.TUFTimestampExpiry})
	if err != nil {
		return err
	}
	changed, err := repo.Publish(ctx, map[string][]byte{
		tuf.TrustedRootTarget:   s.trust.trustedRoot,
		tuf.SigningConfigTarget: s.trust.signingConfig,
	})
	if err != nil {
		return fmt.Errorf("publishing the trust material: %w", err)
	}
	root, err := repo.Root(ctx)
	if err != nil {
		return err
	}
	mux.Handle("GET "+TUFPath+"/", s.metrics.instrument("tuf", http.StripPrefix(TUFPath, repo.Handler())))
	s.tuf = repo
	sum := sha256.Sum256(root)
	mirror := s.url + TUFPath
	s.log.InfoContext(ctx, "tuf: serving the trust material as a TUF repository", "mirror", mirror, "targets_changed", changed,
		"root_sha256", hex.EncodeToString(sum[:]),
		"init", "cosign initialize --mirror "+mirror+" --root "+mirror+"/root.json --root-checksum "+hex.EncodeToString(sum[:]))
	return nil
}

// maintainTUF renews the TUF metadata until ctx is done.
func (s *Server) maintainTUF(ctx context.Context) {
	if s.tuf != nil {
		s.tuf.Maintain(ctx)
	}
}

// tufStore is where the TUF repository's files live: <data-dir>/tuf, or
// the PostgreSQL database pg (shared by the replicas) when not nil.
func tufStore(dataDir string, pg *sqlstore.Store) (tuf.Store, error) {
	if pg != nil {
		return pg.TUFFiles()
	}
	return tuf.NewFileStore(filepath.Join(dataDir, TUFDir))
}

// OpenTUF opens the TUF repository of a server's database db (the data
// dir, or PostgreSQL with the key encryption key), for `hallmark tuf`: it
// may run while the server does (changes are serialised with the
// server's, and served at once). timestampExpiry is the server's
// --tuf-timestamp-expiry (0: the default), the lifetime of a timestamp
// signed here. close must be called.
func OpenTUF(ctx context.Context, db Database, timestampExpiry time.Duration, log *slog.Logger) (repo *tuf.Repository, close func() error, err error) {
	if db.URL == "" {
		if fi, err := os.Stat(filepath.Join(db.DataDir, TUFDir)); err != nil || !fi.IsDir() {
			return nil, nil, fmt.Errorf("data dir %s holds no TUF repository: pass the server's --data-dir (env HALLMARK_DATA_DIR) or --database-url, or start the server once", db.DataDir)
		}
	}
	keys, pg, closeFn, err := db.keysOf(ctx)
	if err != nil {
		return nil, nil, err
	}
	store, err := tufStore(db.DataDir, pg)
	if err == nil {
		repo, err = tuf.New(store, tuf.KeystoreKeys(keys), log, tuf.Config{TimestampExpiry: timestampExpiry})
	}
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return repo, closeFn, nil
}
