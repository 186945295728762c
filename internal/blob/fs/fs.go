package fs

import (
	"context"
	"crypto/rand"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	_ "github.com/hallmark-dev/hallmark/pkg/oci" // registers sha256/sha512 for go-digest
)

// Store is a blob.Store on a local directory.
type Store struct {
	root string
}

var _ blob.Store = (*Store)(nil)

// New returns a store rooted at dir, creating its directories.
func New(dir string) (*Store, error) {
	for _, d := range []string{"blobs", "uploads"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	return &Store{root: dir}, nil
}

func (s *Store) blobPath(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("%w: %v", blob.ErrNotFound, err)
	}
	return filepath.Join(s.root, "blobs", filepath.FromSlash(blob.BlobPath(d))), nil
}

// Stat implements blob.Store.
func (s *Store) Stat(_ context.Context, d digest.Digest) (int64, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, blob.ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open implements blob.Store; the reader is an *os.File.
func (s *Store) Open(_ context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	p, err := s.blobPath(d)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, blob.ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// Uploads implements blob.Store.
func (s *Store) Uploads() blob.Uploads { return uploads{s} }

// Ping checks that the store's directories are there (for readiness
// probes).
func (s *Store) Ping(context.Context) error {
	for _, d := range []string{"blobs", "uploads"} {
		if _, err := os.Stat(filepath.Join(s.root, d)); err != nil {
			return fmt.Errorf("%w: %v", blob.ErrUnavailable, err)
		}
	}
	return nil
}

// PurgeUploads removes upload sessions not touched for longer than age and
// returns how many it removed.
func (s *Store) PurgeUploads(_ context.Context, age time.Duration) (int, error) {
	dir := filepath.Join(s.root, "uploads")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	cutoff := time.Now().Add(-age)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(filepath.Join(p, "state.json"))
		if err != nil {
			fi, err = os.Stat(p)
		}
		if err != nil || fi.ModTime().After(cutoff) {
			continue
		}
		if os.RemoveAll(p) == nil {
			n++
		}
	}
	return n, nil
}

type uploads struct{ s *Store }

type state struct {
	Repository string    `json:"repository"`
	Algorithm  string    `json:"algorithm"`
	Size       int64     `json:"size"`
	Hash       []byte    `json:"hash"`
	Started    time.Time `json:"started"`
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (u uploads) New(_ context.Context, repo string, alg digest.Algorithm) (blob.Upload, error) {
	if !alg.Available() {
		return nil, fmt.Errorf("digest algorithm %q is not available", alg)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	id := hex.EncodeToString(b[:])
	dir := filepath.Join(u.s.root, "uploads", id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	up := &upload{store: u.s, id: id, dir: dir, f: f, h: alg.Hash(),
		st: state{Repository: repo, Algorithm: string(alg), Started: time.Now().UTC()}}
	if err := up.saveState(); err != nil {
		up.f.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return up, nil
}

func (u uploads) Resume(_ context.Context, id string) (blob.Upload, error) {
	if !validID(id) {
		return nil, blob.ErrUploadNotFound
	}
	dir := filepath.Join(u.s.root, "uploads", id)
	raw, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, blob.ErrUploadNotFound
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		// A torn state file: the session cannot be continued safely;
		// report it as unknown so the client starts a new upload.
		return nil, fmt.Errorf("%w: upload %s has corrupt state: %v", blob.ErrUploadNotFound, id, err)
	}
	alg := digest.Algorithm(st.Algorithm)
	if !alg.Available() {
		return nil, fmt.Errorf("%w: upload %s has unknown algorithm %q", blob.ErrUploadNotFound, id, st.Algorithm)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, blob.ErrUploadNotFound
	}
	if err != nil {
		return nil, err
	}
	up := &upload{store: u.s, id: id, dir: dir, f: f, h: alg.Hash(), st: st}
	if err := up.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: upload %s has corrupt hash state: %v", blob.ErrUploadNotFound, id, err)
	}
	// Bytes beyond the recorded size were never acknowledged (a crash in the
	// middle of a chunk): drop them.
	if err := f.Truncate(st.Size); err != nil {
		f.Close()
		return nil, err
	}
	return up, nil
}

type upload struct {
	store *Store
	id    string
	dir   string
	f     *os.File
	h     hash.Hash
	st    state
	done  bool
}

func (up *upload) ID() string         { return up.id }
func (up *upload) Repository() string { return up.st.Repository }
func (up *upload) Size() int64        { return up.st.Size }
func (up *upload) Started() time.Time { return up.st.Started }

func (up *upload) saveState() error {
	hs, err := up.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	up.st.Hash = hs
	b, err := json.Marshal(up.st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(up.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(up.dir, "state.json"))
}

func (up *upload) Append(_ context.Context, offset int64, r io.Reader) (int64, error) {
	if offset != up.st.Size {
		return 0, blob.ErrRangeMismatch
	}
	// Read, hash and write overlap; see write.go.
	n, rerr := appendData(up.f, offset, r, up.h)
	if rerr == nil {
		rerr = up.f.Sync()
	}
	if rerr != nil {
		// Roll back to the last acknowledged state: this chunk never happened.
		if err := up.f.Truncate(offset); err != nil {
			return 0, errors.Join(rerr, err)
		}
		if err := up.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(up.st.Hash); err != nil {
			return 0, errors.Join(rerr, err)
		}
		return 0, rerr
	}
	up.st.Size += n
	if err := up.saveState(); err != nil {
		return 0, err
	}
	return n, nil
}

func (up *upload) Commit(ctx context.Context, want digest.Digest) (int64, error) {
	err := blob.Verify(want, digest.Algorithm(up.st.Algorithm), up.h, up.st.Size, func(w io.Writer) error {
		if _, err := up.f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(w, io.LimitReader(up.f, up.st.Size))
		return err
	}, func() error { return up.Cancel(ctx) })
	if err != nil {
		return 0, err
	}
	target, err := up.store.blobPath(want)
	if err != nil {
		return 0, err
	}
	if err := up.f.Close(); err != nil {
		return 0, err
	}
	up.done = true
	if _, err := os.Stat(target); err == nil {
		// Already stored (content addressed): nothing to move.
		return up.st.Size, os.RemoveAll(up.dir)
	}
	parent := filepath.Dir(target)
	if err := mkdirDurable(parent); err != nil {
		return 0, err
	}
	if err := os.Rename(filepath.Join(up.dir, "data"), target); err != nil {
		return 0, err
	}
	if err := syncDir(parent); err != nil {
		return 0, err
	}
	return up.st.Size, os.RemoveAll(up.dir)
}

func (up *upload) Cancel(context.Context) error {
	if !up.done {
		up.f.Close()
		up.done = true
	}
	return os.RemoveAll(up.dir)
}

func (up *upload) Close() error {
	if up.done {
		return nil
	}
	up.done = true
	return up.f.Close()
}

// mkdirDurable creates dir and its missing parents, fsyncing the directory
// that holds each one it creates, so that the path of a newly committed blob
// survives a power loss and not only its last directory entry.
func mkdirDurable(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
