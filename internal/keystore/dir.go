package keystore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Dir is a Store in a directory: each item is the file of its name
// (mode 0600), its creation time the file's modification time.
type Dir struct{ path string }

var _ Store = (*Dir)(nil)

// Open returns the key directory at path, creating it (0700) if needed.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("keystore: create %s: %w", path, err)
	}
	return &Dir{path: path}, nil
}

// Path is the directory's path.
func (d *Dir) Path() string { return d.path }

// file is the path of item name; names are file names, never paths.
func (d *Dir) file(name string) (string, error) {
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("keystore: %q is not an item name", name)
	}
	return filepath.Join(d.path, name), nil
}

// Where implements Store: the item's file.
func (d *Dir) Where(name string) string { return filepath.Join(d.path, filepath.Base(name)) }

// Get implements Store.
func (d *Dir) Get(_ context.Context, name string) (Item, error) {
	p, err := d.file(name)
	if err != nil {
		return Item{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return Item{}, fmt.Errorf("keystore: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Item{}, fmt.Errorf("keystore: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return Item{}, fmt.Errorf("keystore: %w", err)
	}
	return Item{Name: name, Data: data, Created: fi.ModTime()}, nil
}

// Create implements Store: the file is written atomically, refusing to
// replace one that exists.
func (d *Dir) Create(_ context.Context, it Item) error {
	p, err := d.file(it.Name)
	if err != nil {
		return err
	}
	return writeFile(p, it.Data, it.Created)
}

// Delete implements Store.
func (d *Dir) Delete(_ context.Context, name string) error {
	p, err := d.file(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keystore: %w", err)
	}
	return nil
}

// List implements Store.
func (d *Dir) List(ctx context.Context, prefix string) ([]Item, error) {
	entries, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("keystore: read %s: %w", d.path, err)
	}
	var out []Item
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		it, err := d.Get(ctx, e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// WriteFile writes data to path atomically (temp file, fsync, link, fsync
// of the directory) with mode 0600. It refuses to replace an existing file
// (the error wraps fs.ErrExist).
func WriteFile(path string, data []byte) error { return writeFile(path, data, time.Time{}) }

// writeFile is WriteFile, with the file's modification time set to mtime
// (when not zero) before it appears under its name.
func writeFile(path string, data []byte, mtime time.Time) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keystore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keystore: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keystore: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			return fmt.Errorf("keystore: %w", err)
		}
	}
	// Link, not rename: fails if another process created the file first,
	// so two servers starting together cannot end up with different keys.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keystore: %s was created concurrently: %w", path, err)
		}
		return fmt.Errorf("keystore: install %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
