package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// KeysDir is the key directory in the data dir (embedded default).
const KeysDir = "keys"

// KeyEncryptionKey is where the key that seals the keys kept in
// PostgreSQL comes from: a file (--key-encryption-key-file) or the value
// itself (env HALLMARK_KEY_ENCRYPTION_KEY). Both are secrets: never logged.
type KeyEncryptionKey struct {
	File  string
	Value string
}

func (k KeyEncryptionKey) load() ([]byte, error) {
	switch {
	case k.File != "" && k.Value != "":
		return nil, errors.New("give the key encryption key once: --key-encryption-key-file or HALLMARK_KEY_ENCRYPTION_KEY, not both")
	case k.File != "":
		raw, err := os.ReadFile(k.File)
		if err != nil {
			return nil, fmt.Errorf("key-encryption-key-file: %w", err)
		}
		kek, err := keystore.ParseKEK(raw)
		if err != nil {
			return nil, fmt.Errorf("key-encryption-key-file %s: %w", k.File, err)
		}
		return kek, nil
	case k.Value != "":
		kek, err := keystore.ParseKEK([]byte(k.Value))
		if err != nil {
			return nil, fmt.Errorf("HALLMARK_KEY_ENCRYPTION_KEY: %w", err)
		}
		return kek, nil
	}
	return nil, errors.New("the server's keys are kept in the PostgreSQL database, sealed with a key encryption key: give --key-encryption-key-file FILE (env HALLMARK_KEY_ENCRYPTION_KEY_FILE) or HALLMARK_KEY_ENCRYPTION_KEY, the same on every replica (make one with: openssl rand -base64 32)")
}

// openKeys returns where the server's keys live: <data-dir>/keys, or with
// PostgreSQL the database's key store sealed with the key encryption key
// (so that every replica uses the same keys, created once).
func (d Database) openKeys(ctx context.Context, store *sqlstore.Store, log *slog.Logger) (keystore.Store, error) {
	dir := filepath.Join(d.DataDir, KeysDir)
	if d.URL == "" {
		return keystore.Open(dir)
	}
	kek, err := d.KEK.load()
	if err != nil {
		return nil, err
	}
	ks, err := keystore.NewSealed(store.Keys(), kek)
	if err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && log != nil {
		log.WarnContext(ctx, "the data dir has a key directory, which is not used with --database-url: the keys are in the database", "dir", dir)
	}
	return ks, nil
}

// keysOf opens the key store of an existing server's database, for the
// key commands (hallmark ca rotate, hallmark tuf): <data-dir>/keys, or the
// PostgreSQL database (returned too; nil for the data dir) with the key
// encryption key. close must be called.
func (d Database) keysOf(ctx context.Context) (keystore.Store, *sqlstore.Store, func() error, error) {
	if d.URL == "" {
		dir := filepath.Join(d.DataDir, KeysDir)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, nil, nil, fmt.Errorf("data dir %s holds no keys: pass the server's --data-dir (env HALLMARK_DATA_DIR) or --database-url, or start the server once", d.DataDir)
		}
		ks, err := keystore.Open(dir)
		return ks, nil, func() error { return nil }, err
	}
	store, err := d.open(ctx, 0)
	if err != nil {
		return nil, nil, nil, err
	}
	ks, err := d.openKeys(ctx, store, nil)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	return ks, store, store.Close, nil
}

// sharedSecret returns the generated secret called name (the admin token,
// the bootstrap admin password), the same on every replica. The embedded
// default keeps it in <data-dir>/name (0600), created by whoever comes
// first. With PostgreSQL the database's key store holds it (sealed), and
// <data-dir>/name is a copy for the commands run on this machine: written
// when missing, replaced when it differs (replace) or else an error.
// candidate is the secret stored when there is none yet.
func (s *Server) sharedSecret(ctx context.Context, name string, candidate func() (string, error), replace bool) (string, error) {
	path := filepath.Join(s.cfg.DataDir, name)
	if s.cfg.DatabaseURL == "" {
		v, err := readSecret(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return v, err
		}
		if v, err = candidate(); err != nil {
			return "", err
		}
		if err := keystore.WriteFile(path, []byte(v+"\n")); errors.Is(err, fs.ErrExist) {
			return readSecret(path) // another server sharing the data dir was first
		} else if err != nil {
			return "", err
		}
		return v, nil
	}
	it, err := keystore.LoadOrCreateItem(ctx, s.keys, name, func() ([]byte, error) {
		v, err := candidate()
		return []byte(v), err
	})
	if err != nil {
		return "", err
	}
	v := string(it.Data)
	local, err := readSecret(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := keystore.WriteFile(path, []byte(v+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	case err != nil && !replace:
		return "", err
	case local != v && !replace:
		return "", fmt.Errorf("%s differs from the one the replicas share in the database: give every replica the same file, or none (it is then written from the database)", path)
	case local != v:
		s.log.WarnContext(ctx, "replacing a local copy that differs from the secret the replicas share in the database", "file", path)
		if err := root.WriteFileAtomic(path, []byte(v+"\n"), 0o600); err != nil {
			return "", err
		}
	}
	return v, nil
}

// readSecret reads a one-line secret file; an empty file is an error.
func readSecret(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := string(bytes.TrimSpace(raw))
	if v == "" || strings.ContainsAny(v, "\r\n") {
		return "", fmt.Errorf("%s must hold one non-empty line", path)
	}
	return v, nil
}
