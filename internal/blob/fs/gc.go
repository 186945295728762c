package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// Delete removes the blobs ds (garbage collection); a blob that is not
// there is no error. The removals are not fsynced: one a crash undoes is
// an object no database row names, which `hallmark gc --orphans` finds.
func (s *Store) Delete(ctx context.Context, ds []digest.Digest) error {
	var errs []error
	for _, d := range ds {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := s.blobPath(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %q: %w", d, err))
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List calls fn for every committed blob, in no particular order, until fn
// returns an error (which List returns). Files that are not blobs of the
// layout are skipped.
func (s *Store) List(ctx context.Context, fn func(blob.Info) error) error {
	root := filepath.Join(s.root, "blobs")
	algs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("%w: %v", blob.ErrUnavailable, err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		dirs, err := os.ReadDir(filepath.Join(root, a.Name()))
		if err != nil {
			return err
		}
		for _, two := range dirs {
			if !two.IsDir() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			files, err := os.ReadDir(filepath.Join(root, a.Name(), two.Name()))
			if err != nil {
				return err
			}
			for _, f := range files {
				d, ok := blob.ParseBlobPath(a.Name() + "/" + two.Name() + "/" + f.Name())
				if !ok || !f.Type().IsRegular() {
					continue
				}
				fi, err := f.Info()
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed since the directory was read
				}
				if err != nil {
					return err
				}
				if err := fn(blob.Info{Digest: d, Size: fi.Size(), Modified: fi.ModTime()}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
