package fs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
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

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// regularFiles lists regular files under dir/sub.
func regularFiles(t *testing.T, dir, sub string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dir, sub), func(p string, d iofs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func readBlob(t *testing.T, s *blobfs.Store, d digest.Digest) []byte {
	t.Helper()
	rc, size, err := s.Open(ctx, d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Errorf("Open returned %T, want *os.File (for sendfile)", rc)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != size {
		t.Errorf("Open size %d, read %d", size, len(b))
	}
	return b
}

func TestCommit(t *testing.T) {
	s, dir := newStore(t)
	data := randBytes(t, 3<<20+5)
	d := digest.FromBytes(data)
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if up.Repository() != "app" || up.Size() != 0 || up.Started().IsZero() || len(up.ID()) != 32 || !blob.ValidUploadID(up.ID()) {
		t.Fatalf("new upload: repo %q size %d started %v id %q", up.Repository(), up.Size(), up.Started(), up.ID())
	}
	for off := 0; off < len(data); off += 1 << 20 {
		end := min(off+1<<20, len(data))
		n, err := up.Append(ctx, int64(off), bytes.NewReader(data[off:end]))
		if err != nil || n != int64(end-off) {
			t.Fatalf("Append at %d: %d, %v", off, n, err)
		}
		// Not visible before Commit.
		if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("blob visible before commit: %v", err)
		}
	}
	size, err := up.Commit(ctx, d)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Commit: %d, %v", size, err)
	}
	if got, err := s.Stat(ctx, d); err != nil || got != int64(len(data)) {
		t.Fatalf("Stat: %d, %v", got, err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	if f := regularFiles(t, dir, "uploads"); len(f) != 0 {
		t.Errorf("upload files left after commit: %v", f)
	}
	want := filepath.Join("blobs", "sha256", d.Encoded()[:2], d.Encoded())
	if f := regularFiles(t, dir, "blobs"); len(f) != 1 || f[0] != want {
		t.Errorf("blob files %v, want [%s]", f, want)
	}
	if fi, _ := os.Stat(filepath.Join(dir, want)); fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("blob file mode %v is readable by others", fi.Mode())
	}
	if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("Resume after commit: %v", err)
	}

	// The same content again: content addressed, no second file.
	up2, _ := s.Uploads().New(ctx, "other", digest.SHA256)
	up2.Append(ctx, 0, bytes.NewReader(data))
	if size, err := up2.Commit(ctx, d); err != nil || size != int64(len(data)) {
		t.Fatalf("second Commit: %d, %v", size, err)
	}
	if f := regularFiles(t, dir, ""); len(f) != 1 {
		t.Errorf("files after duplicate commit: %v", f)
	}
}

func TestEmptyBlob(t *testing.T) {
	s, _ := newStore(t)
	up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	d := digest.FromBytes(nil)
	if size, err := up.Commit(ctx, d); err != nil || size != 0 {
		t.Fatalf("Commit empty: %d, %v", size, err)
	}
	if len(readBlob(t, s, d)) != 0 {
		t.Fatal("empty blob has content")
	}
}

func TestDigestMismatchLeavesNothing(t *testing.T) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			s, dir := newStore(t)
			data := randBytes(t, 100000)
			up, _ := s.Uploads().New(ctx, "app", alg)
			if _, err := up.Append(ctx, 0, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			wrong := alg.FromString("something else")
			_, err := up.Commit(ctx, wrong)
			var dm *blob.DigestMismatchError
			if !errors.As(err, &dm) {
				t.Fatalf("Commit with wrong digest: %v", err)
			}
			if dm.Want != wrong || dm.Got != alg.FromBytes(data) || dm.Size != int64(len(data)) {
				t.Errorf("mismatch error %+v", dm)
			}
			if f := regularFiles(t, dir, ""); len(f) != 0 {
				t.Errorf("files left after a digest mismatch: %v", f)
			}
			for _, d := range []digest.Digest{wrong, alg.FromBytes(data)} {
				if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
					t.Errorf("Stat %s: %v", d, err)
				}
			}
			if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Errorf("Resume after mismatch: %v", err)
			}
		})
	}
}

// failingReader yields n bytes, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestInterruptedAppendRollsBack(t *testing.T) {
	s, _ := newStore(t)
	data := randBytes(t, 5<<20)
	d := digest.FromBytes(data)
	up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	if _, err := up.Append(ctx, 0, bytes.NewReader(data[:1<<20])); err != nil {
		t.Fatal(err)
	}
	// A chunk whose body breaks off after 2.5 MiB (client went away).
	boom := errors.New("connection reset")
	_, err := up.Append(ctx, 1<<20, &failingReader{data: data[1<<20 : 1<<20+5<<19], err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Append with failing body: %v", err)
	}
	if up.Size() != 1<<20 {
		t.Fatalf("size after failed chunk %d, want %d", up.Size(), 1<<20)
	}
	// Out-of-order offsets are refused.
	for _, off := range []int64{0, 1<<20 - 1, 1<<20 + 1, 1 << 22} {
		if _, err := up.Append(ctx, off, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrRangeMismatch) {
			t.Errorf("Append at %d: %v, want ErrRangeMismatch", off, err)
		}
	}
	// Retry the chunk: the hash state was rolled back too.
	if _, err := up.Append(ctx, 1<<20, bytes.NewReader(data[1<<20:])); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatalf("Commit after retried chunk: %v", err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
}

// TestTruncatedChunkDropped: an HTTP body that ends before its
// Content-Length reads io.ErrUnexpectedEOF; the chunk is dropped, whether
// it broke off inside the first block or later (issue 9, defect 7).
func TestTruncatedChunkDropped(t *testing.T) {
	for _, n := range []int{50, 5 << 19} {
		s, _ := newStore(t)
		data := randBytes(t, 3<<20)
		up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
		if _, err := up.Append(ctx, 0, bytes.NewReader(data[:10])); err != nil {
			t.Fatal(err)
		}
		_, err := up.Append(ctx, 10, &failingReader{data: data[10 : 10+n], err: io.ErrUnexpectedEOF})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d bytes then ErrUnexpectedEOF: Append = %v, want it to fail with ErrUnexpectedEOF", n, err)
		}
		if up.Size() != 10 {
			t.Fatalf("%d bytes then ErrUnexpectedEOF: size %d, want 10 (the chunk dropped)", n, up.Size())
		}
		if _, err := up.Append(ctx, 10, bytes.NewReader(data[10:])); err != nil {
			t.Fatal(err)
		}
		if _, err := up.Commit(ctx, digest.FromBytes(data)); err != nil {
			t.Fatalf("Commit after the chunk was sent again: %v", err)
		}
	}
}

func TestInterruptedUploadInvisibleAndResumable(t *testing.T) {
	dir := t.TempDir()
	s, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(t, 3<<20)
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
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("interrupted upload visible: %v", err)
	}

	// "Restart": a new store on the same directory resumes the session.
	s2, err := blobfs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	up2, err := s2.Uploads().Resume(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if up2.Size() != 1<<20 || up2.Repository() != "group/app" || up2.ID() != id {
		t.Fatalf("resumed: size %d repo %q", up2.Size(), up2.Repository())
	}
	if !up2.Started().Equal(up.Started()) {
		t.Errorf("Started %v, want %v", up2.Started(), up.Started())
	}
	if _, err := up2.Append(ctx, 1<<20, bytes.NewReader(data[1<<20:2<<20])); err != nil {
		t.Fatal(err)
	}
	up2.Close()
	up3, err := s2.Uploads().Resume(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up3.Append(ctx, 2<<20, bytes.NewReader(data[2<<20:])); err != nil {
		t.Fatal(err)
	}
	if _, err := up3.Commit(ctx, d); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	if !bytes.Equal(readBlob(t, s2, d), data) {
		t.Fatal("content differs")
	}
}

func TestResumeUnknownAndCorrupt(t *testing.T) {
	s, dir := newStore(t)
	for _, id := range []string{"", "x", "../../etc/passwd", "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdeg", "0123456789ABCDEF0123456789ABCDEF"} {
		if _, err := s.Uploads().Resume(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("Resume(%q) = %v, want ErrUploadNotFound", id, err)
		}
	}
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

func TestCancel(t *testing.T) {
	s, dir := newStore(t)
	up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	up.Append(ctx, 0, bytes.NewReader([]byte("abc")))
	if err := up.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if f := regularFiles(t, dir, ""); len(f) != 0 {
		t.Errorf("files after cancel: %v", f)
	}
	if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("Resume after cancel: %v", err)
	}
	if err := up.Close(); err != nil {
		t.Errorf("Close after Cancel: %v", err)
	}
}

func TestPurgeUploads(t *testing.T) {
	s, dir := newStore(t)
	old, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	old.Append(ctx, 0, bytes.NewReader([]byte("old")))
	old.Close()
	fresh, _ := s.Uploads().New(ctx, "app", digest.SHA256)
	fresh.Append(ctx, 0, bytes.NewReader([]byte("fresh")))
	fresh.Close()
	// A directory left by a crash before the state file was written.
	orphan := filepath.Join(dir, "uploads", "0123456789abcdef0123456789abcdef")
	os.Mkdir(orphan, 0o700)
	past := time.Now().Add(-48 * time.Hour)
	for _, p := range []string{filepath.Join(dir, "uploads", old.ID(), "state.json"), orphan} {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PurgeUploads(24 * time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("PurgeUploads = %d, %v; want 2", n, err)
	}
	if _, err := s.Uploads().Resume(ctx, old.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("old upload survives: %v", err)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("orphan dir survives: %v", err)
	}
	up, err := s.Uploads().Resume(ctx, fresh.ID())
	if err != nil || up.Size() != 5 {
		t.Fatalf("fresh upload: %v", err)
	}
	up.Close()
	if n, _ := s.PurgeUploads(24 * time.Hour); n != 0 {
		t.Errorf("second purge removed %d", n)
	}
}

func TestSHA512(t *testing.T) {
	s, dir := newStore(t)
	data := randBytes(t, 70000)
	d := digest.SHA512.FromBytes(data)
	up, _ := s.Uploads().New(ctx, "app", digest.SHA512)
	up.Append(ctx, 0, bytes.NewReader(data[:1000]))
	up.Close()
	up, err := s.Uploads().Resume(ctx, up.ID()) // sha512 hash state survives
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 1000, bytes.NewReader(data[1000:]))
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha512", d.Encoded()[:2], d.Encoded())); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	// A sha256 session committed under a sha512 digest (and vice versa).
	data2 := randBytes(t, 1234)
	for _, tc := range []struct{ session, want digest.Algorithm }{{digest.SHA256, digest.SHA512}, {digest.SHA512, digest.SHA256}} {
		up, _ := s.Uploads().New(ctx, "app", tc.session)
		up.Append(ctx, 0, bytes.NewReader(data2))
		if _, err := up.Commit(ctx, tc.want.FromBytes(data2)); err != nil {
			t.Fatalf("%s session, %s digest: %v", tc.session, tc.want, err)
		}
		if !bytes.Equal(readBlob(t, s, tc.want.FromBytes(data2)), data2) {
			t.Fatal("content differs")
		}
	}
}

func TestStatOpenInvalid(t *testing.T) {
	s, _ := newStore(t)
	for _, d := range []digest.Digest{"", "sha256:abc", "sha256:../../../../etc/passwd", "md5:d41d8cd98f00b204e9800998ecf8427e", digest.FromString("absent")} {
		if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Stat(%q) = %v", d, err)
		}
		if _, _, err := s.Open(ctx, d); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%q) = %v", d, err)
		}
	}
	if _, err := s.Uploads().New(ctx, "app", "md5"); err == nil {
		t.Error("New with md5 accepted")
	}
}

func TestConcurrentUploadsOfSameContent(t *testing.T) {
	s, _ := newStore(t)
	data := randBytes(t, 1<<20)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			up, err := s.Uploads().New(ctx, "app", digest.SHA256)
			if err == nil {
				_, err = up.Append(ctx, 0, bytes.NewReader(data))
			}
			if err == nil {
				_, err = up.Commit(ctx, d)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
}
