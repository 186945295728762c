package fs_test

import (
	"bytes"
	"context"
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
)

var ctx = context.Background()

func newStore(t *testing.T) (*blobfs.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

// regularFiles lists regular files under dir/sub, relative to dir.
func regularFiles(t *testing.T, dir, sub string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, sub), func(p string, d iofs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// TestContract runs the blob store contract suite on a directory.
func TestContract(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) *blobtest.Backend {
		dir := t.TempDir()
		return &blobtest.Backend{
			Store: func() blobtest.Store {
				s, err := blobfs.New(dir)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			Objects: func() []string { return regularFiles(t, dir, "") },
			Age: func(id string, d time.Duration) {
				past := time.Now().Add(-d)
				for _, p := range []string{filepath.Join(dir, "uploads", id, "state.json"), filepath.Join(dir, "uploads", id)} {
					if err := os.Chtimes(p, past, past); err != nil {
						t.Fatal(err)
					}
				}
			},
		}
	})
}

// TestLayout checks where a blob lands, its mode, and that Open returns an
// *os.File (so HTTP handlers can use sendfile).
func TestLayout(t *testing.T) {
	s, dir := newStore(t)
	data := blobtest.RandBytes(1000)
	d := digest.FromBytes(data)
	up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	up.Append(ctx, 0, bytes.NewReader(data))
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("blobs", "sha256", d.Encoded()[:2], d.Encoded())
	if f := regularFiles(t, dir, ""); len(f) != 1 || f[0] != want {
		t.Errorf("files %v, want [%s]", f, want)
	}
	if fi, _ := os.Stat(filepath.Join(dir, want)); fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("blob file mode %v is readable by others", fi.Mode())
	}
	rc, _, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File (for sendfile)", rc)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	os.RemoveAll(filepath.Join(dir, "uploads"))
	if err := s.Ping(ctx); !errors.Is(err, blob.ErrUnavailable) {
		t.Errorf("Ping without the uploads dir: %v", err)
	}
}

func TestTornChunkDropped(t *testing.T) {
	dir := t.TempDir()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := blobtest.RandBytes(3 << 20)
	d := digest.FromBytes(data)
	up, _ := s.Uploads().New(ctx, "group/app", digest.SHA256)
	id := up.ID()
	if _, err := up.Append(ctx, 0, bytes.NewReader(data[:1<<20])); err != nil {
		t.Fatal(err)
	}
	up.Close()
	// A crash in the middle of the next chunk leaves unacknowledged bytes
	// in the data file.
	f, err := os.OpenFile(filepath.Join(dir, "uploads", id, "data"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a chunk of garbage"))
	f.Close()
	s2, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	up2, err := s2.Uploads().Resume(ctx, id)
	if err != nil || up2.Size() != 1<<20 {
		t.Fatalf("Resume: %v (size %d)", err, up2.Size())
	}
	if _, err := up2.Append(ctx, 1<<20, bytes.NewReader(data[1<<20:])); err != nil {
		t.Fatal(err)
	}
	if _, err := up2.Commit(ctx, d); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	if !bytes.Equal(blobtest.ReadBlob(t, s2, d), data) {
		t.Fatal("content differs")
	}
}

func TestResumeCorrupt(t *testing.T) {
	s, dir := newStore(t)
	// A session whose state file is damaged (e.g. a torn write after a
	// power loss) is reported as unknown, so the client starts over, and
	// does not panic.
	up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	up.Append(ctx, 0, bytes.NewReader([]byte("abc")))
	up.Close()
	for _, content := range []string{"", "{", `{"repository":"app","algorithm":"sha256","size":3,"hash":"AAAA"}`, `{"repository":"app","algorithm":"md5","size":3}`} {
		os.WriteFile(filepath.Join(dir, "uploads", up.ID(), "state.json"), []byte(content), 0o600)
		if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("Resume with state %q: %v, want ErrUploadNotFound", content, err)
		}
	}
}

func TestPurgeOrphanDir(t *testing.T) {
	s, dir := newStore(t)
	// A directory left by a crash before the state file was written.
	orphan := filepath.Join(dir, "uploads", "0123456789abcdef0123456789abcdef")
	os.Mkdir(orphan, 0o700)
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(orphan, past, past); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeUploads(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan dir survives: %v", err)
	}
}
