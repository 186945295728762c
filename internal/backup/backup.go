package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	_ "github.com/hallmark-dev/hallmark/pkg/oci" // registers sha512 for go-digest
)

// Names in an archive.
const (
	// HeaderFile comes first: the format version.
	HeaderFile = "hallmark-backup.json"
	// ManifestFile comes last: every other file with its size, mode and
	// SHA-256 (blobs are named by their digest).
	ManifestFile = "MANIFEST.json"
	// DatabaseFile is the SQLite database, in the archive and the data dir.
	DatabaseFile = "hallmark.db"
	// BlobsDir is where the filesystem blob store keeps committed blobs,
	// relative to the data dir (blob/fs under <data-dir>/blobs).
	BlobsDir = "blobs/blobs"
	// Format is the archive format version.
	Format = 1
)

// maxFile bounds a file other than a blob or the database (keys, trust
// and TUF metadata are small): it is read whole.
const maxFile = 64 << 20

// Header is the archive's first file.
type Header struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
}

// Entry is one file of the archive in its manifest.
type Entry struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"`
	SHA256 string `json:"sha256"`
}

// Manifest is the archive's last file.
type Manifest struct {
	Files []Entry `json:"files"`
	Blobs int     `json:"blobs"` // blob entries, each checked against its digest
}

// Source is the running server's data: the database to snapshot and the
// blobs to copy.
type Source interface {
	// Snapshot writes a consistent copy of the database to path (the
	// server may be writing).
	Snapshot(ctx context.Context, path string) error
	// SnapshotBlobs calls fn for each blob the snapshot at path has a row
	// for.
	SnapshotBlobs(ctx context.Context, path string, fn func(d digest.Digest, size int64) error) error
	// Forget removes from the snapshot at path the rows of blobs whose
	// objects are gone (garbage collected since: no manifest references
	// them); it fails if a manifest references one.
	Forget(ctx context.Context, path string, ds []digest.Digest) error
	// Open opens a stored blob.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// Stats says what a backup holds.
type Stats struct {
	Blobs     int
	BlobBytes int64
	Files     int // other files, the database included
	Forgotten int // blob rows dropped: collected after the snapshot
	Snapshot  time.Time
}

// Write writes a backup of the data dir dataDir to w: a tar stream
// (gzip-compressed with compress) of the header, the blobs the database
// snapshot names (each checked against its digest while copied), the data
// dir's other files (keys, trust, TUF, the admin password and token) and
// the snapshot. Everything acknowledged before Write was called is in it.
func Write(ctx context.Context, w io.Writer, src Source, dataDir string, compress bool) (Stats, error) {
	var st Stats
	tmp, err := os.MkdirTemp("", "hallmark-backup-")
	if err != nil {
		return st, err
	}
	defer os.RemoveAll(tmp)
	snap := filepath.Join(tmp, DatabaseFile)
	st.Snapshot = time.Now().UTC()
	if err := src.Snapshot(ctx, snap); err != nil {
		return st, fmt.Errorf("database snapshot: %w", err)
	}
	out := w
	var zw *gzip.Writer
	if compress {
		zw = gzip.NewWriter(w)
		out = zw
	}
	tw := tar.NewWriter(out)
	var m Manifest
	hdr, _ := json.Marshal(Header{Format: Format, Created: st.Snapshot})
	if err := writeFile(tw, HeaderFile, 0o600, hdr, nil); err != nil {
		return st, err
	}
	// The blobs, copied after the snapshot: garbage collection's grace
	// period keeps every blob a manifest of the snapshot references.
	var missing []digest.Digest
	err = src.SnapshotBlobs(ctx, snap, func(d digest.Digest, size int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := copyBlob(ctx, tw, src, d, size)
		if errors.Is(err, blob.ErrNotFound) {
			missing = append(missing, d)
			return nil
		}
		st.Blobs++
		st.BlobBytes += n
		return err
	})
	if err != nil {
		return st, err
	}
	m.Blobs = st.Blobs
	if len(missing) > 0 {
		if err := src.Forget(ctx, snap, missing); err != nil {
			return st, fmt.Errorf("blobs of the snapshot are missing from the blob store: %w", err)
		}
		st.Forgotten = len(missing)
	}
	// The data dir's other files.
	err = filepath.WalkDir(dataDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dataDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case e.IsDir() && (rel == "blobs" || strings.HasPrefix(e.Name(), ".")):
			return fs.SkipDir
		case e.IsDir():
			return nil
		case !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") || strings.HasPrefix(rel, DatabaseFile) || !ValidPath(rel):
			return nil // the live database (snapshotted), temporary files
		}
		raw, mode, err := readSmall(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		st.Files++
		return writeFile(tw, rel, mode, raw, &m)
	})
	if err != nil {
		return st, fmt.Errorf("data dir: %w", err)
	}
	f, err := os.Open(snap)
	if err != nil {
		return st, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return st, err
	}
	h := sha256.New()
	if err := tw.WriteHeader(&tar.Header{Name: DatabaseFile, Mode: 0o600, Size: fi.Size(), ModTime: st.Snapshot, Typeflag: tar.TypeReg}); err != nil {
		return st, err
	}
	if _, err := io.Copy(io.MultiWriter(tw, h), f); err != nil {
		return st, err
	}
	st.Files++
	m.Files = append(m.Files, Entry{Path: DatabaseFile, Size: fi.Size(), Mode: 0o600, SHA256: hex.EncodeToString(h.Sum(nil))})
	raw, _ := json.MarshalIndent(m, "", " ")
	if err := writeFile(tw, ManifestFile, 0o600, raw, nil); err != nil {
		return st, err
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return st, err
		}
	}
	return st, nil
}

// copyBlob writes blob d (size bytes per the snapshot) to tw, checking its
// size and digest on the way: a damaged blob fails the backup.
func copyBlob(ctx context.Context, tw *tar.Writer, src Source, d digest.Digest, size int64) (int64, error) {
	rc, n, err := src.Open(ctx, d)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if n != size {
		return 0, fmt.Errorf("blob %s has %d bytes in the store, the database says %d", d, n, size)
	}
	if err := tw.WriteHeader(&tar.Header{Name: blobPath(d), Mode: 0o600, Size: size, ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return 0, err
	}
	v := d.Verifier()
	if _, err := io.Copy(io.MultiWriter(tw, v), rc); err != nil {
		return 0, fmt.Errorf("blob %s: %w", d, err)
	}
	if !v.Verified() {
		return 0, fmt.Errorf("blob %s in the blob store does not match its digest: the store is damaged; restore it from an older backup", d)
	}
	return size, nil
}

func blobPath(d digest.Digest) string {
	return BlobsDir + "/" + blob.BlobPath(d)
}

// readSmall reads a data dir file (at most maxFile bytes) and its mode.
func readSmall(p string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, 0, err
	}
	if len(raw) > maxFile {
		return nil, 0, fmt.Errorf("%s is larger than %d bytes; it does not belong in the data dir", p, maxFile)
	}
	return raw, fi.Mode().Perm(), nil
}

// writeFile writes one small file to tw, recording it in m (if set).
func writeFile(tw *tar.Writer, name string, mode fs.FileMode, data []byte, m *Manifest) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(mode), Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if m != nil {
		sum := sha256.Sum256(data)
		m.Files = append(m.Files, Entry{Path: name, Size: int64(len(data)), Mode: uint32(mode), SHA256: hex.EncodeToString(sum[:])})
	}
	return nil
}

// ValidPath reports whether name may be a file of a backup: a clean
// relative slash path of at most 16 segments of letters, digits, '.', '_'
// and '-' (no "." or ".." segment, no hidden file), at most 512 bytes.
func ValidPath(name string) bool {
	if name == "" || len(name) > 512 || path.Clean(name) != name || strings.HasPrefix(name, "/") {
		return false
	}
	segs := strings.Split(name, "/")
	if len(segs) > 16 {
		return false
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." || strings.HasPrefix(s, ".") {
			return false
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}
