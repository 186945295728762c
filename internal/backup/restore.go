package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// ErrInvalid marks an archive that is not a complete, intact backup.
var ErrInvalid = errors.New("not a valid hallmark backup")

// ErrNotEmpty is returned when the target data dir has files and Force is
// not set.
var ErrNotEmpty = errors.New("the data dir is not empty")

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Force replaces a data dir that is not empty: its old contents are
	// moved aside to <dir>.replaced-<time>, not deleted.
	Force bool
}

// Restored says what Restore did.
type Restored struct {
	Blobs    int
	Files    int
	Replaced string // where the old contents went (Force), or ""
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// Restore reads a backup (gzip-compressed or not) from r into the data dir
// dir. It extracts into a new directory next to dir, checks every blob
// against its digest and every other file against the manifest (an
// archive cut short, altered or with anything more or less is refused
// before dir is touched), restores owner-only modes (0600 for the
// database and keys, directories 0700), flushes it to disk, and only then
// puts it in place of dir.
func Restore(ctx context.Context, r io.Reader, dir string, o RestoreOptions) (Restored, error) {
	var res Restored
	dir = filepath.Clean(dir)
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && !o.Force {
		return res, fmt.Errorf("%w: %s has files; restore into a new directory, or pass --force to move them aside", ErrNotEmpty, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".restore-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp) // gone after the rename below, if it happened
	res, err = extract(ctx, r, tmp)
	if err != nil {
		return res, err
	}
	if err := syncFS(tmp); err != nil {
		return res, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		res.Replaced = fmt.Sprintf("%s.replaced-%s", dir, time.Now().UTC().Format("20060102T150405Z"))
		if err := os.Rename(dir, res.Replaced); err != nil {
			return res, err
		}
	} else if err == nil {
		if err := os.Remove(dir); err != nil {
			return res, err
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return res, err
	}
	return res, syncDir(filepath.Dir(dir))
}

// extract unpacks and checks the archive into dir (empty).
func extract(ctx context.Context, r io.Reader, dir string) (Restored, error) {
	var res Restored
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return res, invalid("gzip: %v", err)
		}
		defer zr.Close()
		in = zr
	}
	tr := tar.NewReader(in)
	seen := map[string]Entry{}
	var manifest *Manifest
	for i := 0; ; i++ {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return res, invalid("reading the archive: %v", err)
		}
		if manifest != nil {
			return res, invalid("%s is followed by %q; it must be the last file", ManifestFile, h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			return res, invalid("%q is not a regular file (type %q); backups hold only files", h.Name, h.Typeflag)
		}
		if !ValidPath(h.Name) {
			return res, invalid("file name %q", h.Name)
		}
		if h.Size < 0 {
			return res, invalid("%q has a negative size", h.Name)
		}
		if _, dup := seen[h.Name]; dup {
			return res, invalid("%q appears twice", h.Name)
		}
		switch {
		case i == 0:
			if h.Name != HeaderFile || h.Size > 4096 {
				return res, invalid("it does not start with %s", HeaderFile)
			}
			var hd Header
			if err := json.NewDecoder(io.LimitReader(tr, 4096)).Decode(&hd); err != nil {
				return res, invalid("%s: %v", HeaderFile, err)
			}
			if hd.Format != Format {
				return res, invalid("format %d; this hallmark reads format %d", hd.Format, Format)
			}
			seen[h.Name] = Entry{}
			continue
		case h.Name == HeaderFile:
			return res, invalid("%s is not the first file", HeaderFile)
		case h.Name == ManifestFile:
			if h.Size > 64<<20 {
				return res, invalid("%s is %d bytes", ManifestFile, h.Size)
			}
			manifest = new(Manifest)
			dec := json.NewDecoder(tr)
			dec.DisallowUnknownFields()
			if err := dec.Decode(manifest); err != nil {
				return res, invalid("%s: %v", ManifestFile, err)
			}
			continue
		}
		e, err := extractFile(dir, h, tr)
		if err != nil {
			return res, err
		}
		seen[h.Name] = e
		if strings.HasPrefix(h.Name, BlobsDir+"/") {
			res.Blobs++
		} else {
			res.Files++
		}
	}
	if manifest == nil {
		return res, invalid("%s is missing: the archive is incomplete", ManifestFile)
	}
	if manifest.Blobs != res.Blobs {
		return res, invalid("it holds %d blobs, its manifest says %d", res.Blobs, manifest.Blobs)
	}
	if len(manifest.Files) != res.Files {
		return res, invalid("it holds %d files besides blobs, its manifest lists %d", res.Files, len(manifest.Files))
	}
	for _, want := range manifest.Files {
		got, ok := seen[want.Path]
		if !ok || strings.HasPrefix(want.Path, BlobsDir+"/") || want.Path == HeaderFile {
			return res, invalid("%s lists %q, which the archive does not hold", ManifestFile, want.Path)
		}
		if got.Size != want.Size || got.SHA256 != want.SHA256 {
			return res, invalid("%q does not match its manifest entry (altered or damaged)", want.Path)
		}
	}
	if _, ok := seen[DatabaseFile]; !ok {
		return res, invalid("the database (%s) is missing", DatabaseFile)
	}
	return res, nil
}

// extractFile writes one file of the archive under dir and checks it: a
// blob against the digest its name carries, another file by its SHA-256
// (compared with the manifest later).
func extractFile(dir string, h *tar.Header, r io.Reader) (Entry, error) {
	e := Entry{Path: h.Name, Size: h.Size, Mode: uint32(h.Mode) & 0o700}
	var v digest.Verifier
	var sum hash.Hash
	var w io.Writer
	if rel, ok := strings.CutPrefix(h.Name, BlobsDir+"/"); ok {
		d, ok := blob.ParseBlobPath(rel)
		if !ok {
			return e, invalid("%q is not a blob path", h.Name)
		}
		v = d.Verifier()
		w = v
	} else {
		sum = sha256.New()
		w = sum
	}
	if h.Name == DatabaseFile || strings.HasPrefix(h.Name, "keys/") {
		e.Mode = 0o600
	}
	e.Mode |= 0o600 // the server must read and replace its own files
	p := filepath.Join(dir, filepath.FromSlash(h.Name))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return e, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fs.FileMode(e.Mode))
	if err != nil {
		return e, err
	}
	n, err := io.Copy(io.MultiWriter(f, w), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return e, invalid("%q is cut short", h.Name)
		}
		return e, err
	}
	if n != h.Size {
		return e, invalid("%q has %d bytes, its header says %d", h.Name, n, h.Size)
	}
	if v != nil {
		if !v.Verified() {
			return e, invalid("blob %s does not match its digest (altered or damaged)", h.Name)
		}
	} else {
		e.SHA256 = hex.EncodeToString(sum.Sum(nil))
	}
	return e, os.Chmod(p, fs.FileMode(e.Mode))
}

// syncFS flushes the filesystem holding dir (all restored files at once).
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
