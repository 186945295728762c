package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// Store is what a driver offers: a blob.Store plus the janitor's purge,
// the readiness probe and what garbage collection needs (Delete, List).
type Store interface {
	blob.Store
	PurgeUploads(ctx context.Context, age time.Duration) (int, error)
	Ping(ctx context.Context) error
	Delete(ctx context.Context, ds []digest.Digest) error
	List(ctx context.Context, fn func(blob.Info) error) error
}

// Backend is one empty storage location of a driver.
type Backend struct {
	// Store returns a new Store on the location; each call is another
	// server process (replica) sharing it.
	Store func() Store
	// Objects lists everything stored, as paths relative to the location
	// (a committed blob is blobs/<algorithm>/<xx>/<hex>).
	Objects func() []string
	// Age makes upload id look untouched for d.
	Age func(id string, d time.Duration)
	// Stop makes the storage unavailable until Start; nil when the
	// backend cannot fail that way.
	Stop, Start func()
}

// Run runs the contract suite; newBackend returns a fresh location for
// each test.
func Run(t *testing.T, newBackend func(t *testing.T) *Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b *Backend)
	}{
		{"Commit", testCommit},
		{"EmptyBlob", testEmptyBlob},
		{"RangeReads", testRangeReads},
		{"Chunks", testChunks},
		{"InterruptedAppend", testInterruptedAppend},
		{"DigestMismatch", testDigestMismatch},
		{"Cancel", testCancel},
		{"Purge", testPurge},
		{"SHA512", testSHA512},
		{"Invalid", testInvalid},
		{"ConcurrentSameContent", testConcurrentSameContent},
		{"Unavailable", testUnavailable},
		{"Delete", testDelete},
		{"List", testList},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newBackend(t)) })
	}
}

var ctx = context.Background()

// RandBytes returns n random bytes.
func RandBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// ReadBlob reads blob d through Open and checks the size Open reports.
func ReadBlob(t testing.TB, s blob.Store, d digest.Digest) []byte {
	t.Helper()
	rc, size, err := s.Open(ctx, d)
	if err != nil {
		t.Fatalf("Open %s: %v", d, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", d, err)
	}
	if int64(len(b)) != size {
		t.Errorf("Open size %d, read %d", size, len(b))
	}
	return b
}

func blobPath(d digest.Digest) string {
	return "blobs/" + blob.BlobPath(d)
}

// checkObjects fails unless exactly the blobs want are stored (nothing of
// any upload is left).
func checkObjects(t *testing.T, b *Backend, want ...digest.Digest) {
	t.Helper()
	var paths []string
	for _, d := range want {
		paths = append(paths, blobPath(d))
	}
	slices.Sort(paths)
	got := b.Objects()
	slices.Sort(got)
	if !slices.Equal(got, paths) {
		t.Errorf("stored objects %q, want %q", got, paths)
	}
}

func notFound(t *testing.T, s blob.Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat %s = %v, want ErrNotFound", d, err)
	}
	if _, _, err := s.Open(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open %s = %v, want ErrNotFound", d, err)
	}
}

func testCommit(t *testing.T, b *Backend) {
	s := b.Store()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	data := RandBytes(3<<20 + 5)
	d := digest.FromBytes(data)
	up, err := s.Uploads().New(ctx, "group/app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if up.Repository() != "group/app" || up.Size() != 0 || up.Started().IsZero() || !blob.ValidUploadID(up.ID()) {
		t.Fatalf("new upload: repo %q size %d started %v id %q", up.Repository(), up.Size(), up.Started(), up.ID())
	}
	if n, err := up.Append(ctx, 0, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("Append: %d, %v", n, err)
	}
	notFound(t, s, d) // not visible before Commit
	size, err := up.Commit(ctx, d)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Commit: %d, %v", size, err)
	}
	if got, err := s.Stat(ctx, d); err != nil || got != int64(len(data)) {
		t.Fatalf("Stat: %d, %v", got, err)
	}
	if !bytes.Equal(ReadBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	checkObjects(t, b, d)
	if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("Resume after commit: %v", err)
	}
	// Another replica sees it.
	if !bytes.Equal(ReadBlob(t, b.Store(), d), data) {
		t.Fatal("content differs on another store instance")
	}
	// The same content again: content addressed, one object.
	up2, err := s.Uploads().New(ctx, "other", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	up2.Append(ctx, 0, bytes.NewReader(data))
	if size, err := up2.Commit(ctx, d); err != nil || size != int64(len(data)) {
		t.Fatalf("second Commit: %d, %v", size, err)
	}
	checkObjects(t, b, d)
}

func testEmptyBlob(t *testing.T, b *Backend) {
	s := b.Store()
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := up.Append(ctx, 0, bytes.NewReader(nil)); err != nil || n != 0 {
		t.Fatalf("empty Append: %d, %v", n, err)
	}
	d := digest.FromBytes(nil)
	if size, err := up.Commit(ctx, d); err != nil || size != 0 {
		t.Fatalf("Commit empty: %d, %v", size, err)
	}
	if len(ReadBlob(t, s, d)) != 0 {
		t.Fatal("empty blob has content")
	}
	checkObjects(t, b, d)
}

// Put stores data as one blob (in repository "app").
func Put(t testing.TB, s blob.Store, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Append(ctx, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func testRangeReads(t *testing.T, b *Backend) {
	s := b.Store()
	data := RandBytes(6<<20 + 123)
	d := Put(t, s, data)
	rc, size, err := s.Open(ctx, d)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Open: %d, %v", size, err)
	}
	defer rc.Close()
	for _, tc := range []struct {
		off    int64
		whence int
		n      int
	}{{0, io.SeekStart, 10}, {5 << 20, io.SeekStart, 1 << 20}, {-100, io.SeekEnd, 100}, {-5000, io.SeekCurrent, 4000}, {1, io.SeekStart, 1}} {
		pos, err := rc.Seek(tc.off, tc.whence)
		if err != nil {
			t.Fatalf("Seek(%d, %d): %v", tc.off, tc.whence, err)
		}
		got := make([]byte, tc.n)
		if _, err := io.ReadFull(rc, got); err != nil {
			t.Fatalf("read %d at %d: %v", tc.n, pos, err)
		}
		if !bytes.Equal(got, data[pos:pos+int64(tc.n)]) {
			t.Fatalf("bytes at %d differ", pos)
		}
	}
	if _, err := rc.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read at end: %d, %v", n, err)
	}
	if _, err := rc.Seek(-1, io.SeekStart); err == nil {
		t.Error("seek before the start accepted")
	}
	// As the registry serves it: http.ServeContent with Range headers.
	for _, rng := range []string{"bytes=0-0", "bytes=100-5242979", "bytes=-7", "bytes=6291000-", "bytes=10-20,30-40"} {
		rc, _, err := s.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Range", rng)
		w := httptest.NewRecorder()
		http.ServeContent(w, req, "", time.Time{}, rc)
		rc.Close()
		if w.Code != http.StatusPartialContent {
			t.Fatalf("Range %s: status %d", rng, w.Code)
		}
		var from, to int64
		if _, err := fmt.Sscanf(w.Header().Get("Content-Range"), "bytes %d-%d/", &from, &to); err == nil && !bytes.Equal(w.Body.Bytes(), data[from:to+1]) {
			t.Fatalf("Range %s: body differs", rng)
		}
	}
}

// chunked uploads data in chunks of the given sizes, each appended by a
// new store instance resuming the session (as if every PATCH reached
// another replica), and commits it with a third.
func chunked(t *testing.T, b *Backend, data []byte, sizes []int) digest.Digest {
	t.Helper()
	up, err := b.Store().Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	id, started := up.ID(), up.Started()
	up.Close()
	off := 0
	for i, n := range sizes {
		up, err := b.Store().Uploads().Resume(ctx, id)
		if err != nil {
			t.Fatalf("Resume at %d: %v", off, err)
		}
		if up.Size() != int64(off) || up.Repository() != "app" || !up.Started().Equal(started) {
			t.Fatalf("resumed at %d: size %d repo %q started %v", off, up.Size(), up.Repository(), up.Started())
		}
		// Every other chunk comes from a reader that returns its last
		// bytes together with io.EOF, as some network readers do.
		var r io.Reader = bytes.NewReader(data[off : off+n])
		if i%2 == 1 {
			r = iotest.DataErrReader(r)
		}
		if got, err := up.Append(ctx, int64(off), r); err != nil || got != int64(n) {
			t.Fatalf("Append %d at %d: %d, %v", n, off, got, err)
		}
		if err := up.Close(); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if off != len(data) {
		t.Fatalf("chunks add up to %d, not %d", off, len(data))
	}
	d := digest.FromBytes(data)
	up, err = b.Store().Uploads().Resume(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	notFound(t, b.Store(), d)
	if size, err := up.Commit(ctx, d); err != nil || size != int64(len(data)) {
		t.Fatalf("Commit: %d, %v", size, err)
	}
	return d
}

func repeat(n, size int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = size
	}
	return s
}

func testChunks(t *testing.T, b *Backend) {
	const mib = 1 << 20
	cases := []struct {
		name  string
		sizes []int
	}{
		{"tiny", append(repeat(200, 1), repeat(100, 1000)...)},
		{"below-5MiB", []int{1, 4*mib - 1, mib - 1, 1}},
		{"across-5MiB", []int{3 * mib, 3 * mib, 1, 5 * mib, 5*mib - 1, 2}},
		{"exactly-5MiB", []int{5 * mib, 5 * mib, 5 * mib}},
		{"small-then-large", append(repeat(50, 3000), 20*mib, 7, 6*mib)},
		{"growing", []int{1, 10, 100, 1000, 10000, 100000, mib, 4 * mib, 9 * mib}},
		{"64MiB-one-chunk", []int{64 * mib}},
		{"64MiB-mixed", append(append([]int{mib, 30 * mib}, repeat(16, 100)...), 33*mib-1600)},
	}
	var all []digest.Digest
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			total := 0
			for _, n := range tc.sizes {
				total += n
			}
			data := RandBytes(total)
			d := chunked(t, b, data, tc.sizes)
			if !bytes.Equal(ReadBlob(t, b.Store(), d), data) {
				t.Fatal("content differs")
			}
			all = append(all, d)
		})
	}
	if !t.Failed() {
		checkObjects(t, b, all...)
	}
}

// failingReader yields data, then fails with err.
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

func testInterruptedAppend(t *testing.T, b *Backend) {
	const mib = 1 << 20
	s := b.Store()
	data := RandBytes(30 * mib)
	d := digest.FromBytes(data)
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Append(ctx, 0, bytes.NewReader(data[:mib])); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("connection reset")
	// Chunks whose body breaks off (the client went away): small, across
	// the 5 MiB mark, and after several parts of a large chunk.
	for _, cut := range []int{mib / 2, 5 * mib, 20 * mib} {
		_, err := up.Append(ctx, mib, &failingReader{data: data[mib : mib+cut], err: boom})
		if !errors.Is(err, boom) {
			t.Fatalf("Append with a body failing after %d bytes: %v", cut, err)
		}
		if up.Size() != mib {
			t.Fatalf("size after failed chunk %d, want %d", up.Size(), mib)
		}
	}
	// A request body that ends before its declared length (the client's
	// connection broke) reads as io.ErrUnexpectedEOF: the chunk did not
	// arrive as sent, and is dropped like any other failed chunk.
	for _, cut := range []int{mib / 2, 7 * mib} {
		_, err := up.Append(ctx, mib, &failingReader{data: data[mib : mib+cut], err: io.ErrUnexpectedEOF})
		if !errors.Is(err, io.ErrUnexpectedEOF) || up.Size() != mib {
			t.Fatalf("Append of a body truncated after %d bytes: %v, size %d (want io.ErrUnexpectedEOF and size %d)", cut, err, up.Size(), mib)
		}
	}
	for _, off := range []int64{0, mib - 1, mib + 1, 1 << 30} {
		if _, err := up.Append(ctx, off, bytes.NewReader([]byte("x"))); !errors.Is(err, blob.ErrRangeMismatch) {
			t.Errorf("Append at %d: %v, want ErrRangeMismatch", off, err)
		}
	}
	up.Close()
	// Another instance sees the state before the failed chunks; the hash
	// state was not advanced by them either.
	up, err = b.Store().Uploads().Resume(ctx, up.ID())
	if err != nil || up.Size() != mib {
		t.Fatalf("Resume: %v (size %d)", err, up.Size())
	}
	if _, err := up.Append(ctx, mib, bytes.NewReader(data[mib:])); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatalf("Commit after retried chunk: %v", err)
	}
	if !bytes.Equal(ReadBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	checkObjects(t, b, d)
}

func testDigestMismatch(t *testing.T, b *Backend) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(string(alg), func(t *testing.T) {
			s := b.Store()
			data := RandBytes(6 << 20)
			up, err := s.Uploads().New(ctx, "app", alg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Append(ctx, 0, bytes.NewReader(data[:100])); err != nil {
				t.Fatal(err)
			}
			if _, err := up.Append(ctx, 100, bytes.NewReader(data[100:])); err != nil {
				t.Fatal(err)
			}
			wrong := alg.FromString("something else")
			_, err = up.Commit(ctx, wrong)
			var dm *blob.DigestMismatchError
			if !errors.As(err, &dm) {
				t.Fatalf("Commit with wrong digest: %v", err)
			}
			if dm.Want != wrong || dm.Got != alg.FromBytes(data) || dm.Size != int64(len(data)) {
				t.Errorf("mismatch error %+v", dm)
			}
			checkObjects(t, b)
			notFound(t, s, wrong)
			notFound(t, s, alg.FromBytes(data))
			if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Errorf("Resume after mismatch: %v", err)
			}
		})
	}
}

func testCancel(t *testing.T, b *Backend) {
	s := b.Store()
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 0, bytes.NewReader([]byte("abc")))
	up.Append(ctx, 3, bytes.NewReader(RandBytes(6<<20)))
	up.Close()
	up, err = b.Store().Uploads().Resume(ctx, up.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	checkObjects(t, b)
	if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("Resume after cancel: %v", err)
	}
	if err := up.Close(); err != nil {
		t.Errorf("Close after Cancel: %v", err)
	}
}

func testPurge(t *testing.T, b *Backend) {
	s := b.Store()
	old, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	old.Append(ctx, 0, bytes.NewReader([]byte("old")))
	old.Append(ctx, 3, bytes.NewReader(RandBytes(6<<20)))
	old.Close()
	fresh, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	fresh.Append(ctx, 0, bytes.NewReader([]byte("fresh")))
	fresh.Close()
	b.Age(old.ID(), 48*time.Hour)
	n, err := b.Store().PurgeUploads(ctx, 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v; want 1", n, err)
	}
	if _, err := s.Uploads().Resume(ctx, old.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
		t.Errorf("old upload survives: %v", err)
	}
	up, err := s.Uploads().Resume(ctx, fresh.ID())
	if err != nil || up.Size() != 5 {
		t.Fatalf("fresh upload: %v", err)
	}
	if n, _ := s.PurgeUploads(ctx, 24*time.Hour); n != 0 {
		t.Errorf("second purge removed %d", n)
	}
	if err := up.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	checkObjects(t, b)
}

func testSHA512(t *testing.T, b *Backend) {
	s := b.Store()
	data := RandBytes(70000)
	d := digest.SHA512.FromBytes(data)
	up, err := s.Uploads().New(ctx, "app", digest.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 0, bytes.NewReader(data[:1000]))
	up.Close()
	up, err = b.Store().Uploads().Resume(ctx, up.ID()) // sha512 hash state survives
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 1000, bytes.NewReader(data[1000:]))
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ReadBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	// A session committed under the other algorithm's digest.
	data2 := RandBytes(6<<20 + 1234)
	want := []digest.Digest{d}
	for _, tc := range []struct{ session, want digest.Algorithm }{{digest.SHA256, digest.SHA512}, {digest.SHA512, digest.SHA256}} {
		up, err := s.Uploads().New(ctx, "app", tc.session)
		if err != nil {
			t.Fatal(err)
		}
		up.Append(ctx, 0, bytes.NewReader(data2[:10]))
		up.Append(ctx, 10, bytes.NewReader(data2[10:]))
		if _, err := up.Commit(ctx, tc.want.FromBytes(data2)); err != nil {
			t.Fatalf("%s session, %s digest: %v", tc.session, tc.want, err)
		}
		if !bytes.Equal(ReadBlob(t, s, tc.want.FromBytes(data2)), data2) {
			t.Fatal("content differs")
		}
		want = append(want, tc.want.FromBytes(data2))
	}
	checkObjects(t, b, want...)
}

func testInvalid(t *testing.T, b *Backend) {
	s := b.Store()
	for _, d := range []digest.Digest{"", "sha256:abc", "sha256:../../../../etc/passwd", "md5:d41d8cd98f00b204e9800998ecf8427e", digest.FromString("absent")} {
		notFound(t, s, d)
	}
	if _, err := s.Uploads().New(ctx, "app", "md5"); err == nil {
		t.Error("New with md5 accepted")
	}
	for _, id := range []string{"", "x", "../../etc/passwd", "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdeg", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcdef/../x"} {
		if _, err := s.Uploads().Resume(ctx, id); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("Resume(%q) = %v, want ErrUploadNotFound", id, err)
		}
	}
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 0, bytes.NewReader([]byte("abc")))
	for _, bad := range []digest.Digest{"", "sha256:abc", "nope"} {
		if _, err := up.Commit(ctx, bad); err == nil {
			t.Errorf("Commit(%q) accepted", bad)
		}
	}
	up.Cancel(ctx)
}

func testConcurrentSameContent(t *testing.T, b *Backend) {
	data := RandBytes(6<<20 + 17)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s := b.Store()
			up, err := s.Uploads().New(ctx, "app", digest.SHA256)
			if err == nil {
				_, err = up.Append(ctx, 0, bytes.NewReader(data))
			}
			if err == nil {
				_, err = up.Commit(ctx, d)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if !bytes.Equal(ReadBlob(t, b.Store(), d), data) {
		t.Fatal("content differs")
	}
	checkObjects(t, b, d)
}

func testUnavailable(t *testing.T, b *Backend) {
	if b.Stop == nil {
		t.Skip("this backend cannot be made unavailable")
	}
	s := b.Store()
	data := RandBytes(7 << 20)
	d := digest.FromBytes(data)
	stored := Put(t, s, data[:1000])
	up, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Append(ctx, 0, bytes.NewReader(data[:1<<20])); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	unavailable := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, blob.ErrUnavailable) {
			t.Errorf("%s with the storage down: %v, want ErrUnavailable", what, err)
		}
	}
	unavailable("Ping", s.Ping(ctx))
	_, err = s.Stat(ctx, stored)
	unavailable("Stat", err)
	_, _, err = s.Open(ctx, stored)
	unavailable("Open", err)
	_, err = s.Uploads().New(ctx, "app", digest.SHA256)
	unavailable("New", err)
	_, err = s.Uploads().Resume(ctx, up.ID())
	unavailable("Resume", err)
	for _, n := range []int{1000, 6 << 20} { // a small and a large chunk
		_, err = up.Append(ctx, 1<<20, bytes.NewReader(data[1<<20:1<<20+n]))
		unavailable(fmt.Sprintf("Append of %d bytes", n), err)
		if up.Size() != 1<<20 {
			t.Fatalf("size after a failed Append: %d", up.Size())
		}
	}
	_, err = s.PurgeUploads(ctx, time.Hour)
	unavailable("PurgeUploads", err)
	_, err = up.Commit(ctx, digest.FromBytes(data[:1<<20]))
	unavailable("Commit", err)
	b.Start()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	if !bytes.Equal(ReadBlob(t, s, stored), data[:1000]) {
		t.Fatal("stored blob differs after restart")
	}
	// The same session object continues (its hash state was rolled back).
	if _, err := up.Append(ctx, 1<<20, bytes.NewReader(data[1<<20:])); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ReadBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	checkObjects(t, b, stored, d)
}

func testDelete(t *testing.T, b *Backend) {
	s := b.Store()
	keep := Put(t, s, RandBytes(100))
	gone := []digest.Digest{Put(t, s, RandBytes(200)), Put(t, s, RandBytes(6<<20+3)), digest.SHA512.FromBytes([]byte("x"))}
	// A sha512 blob too.
	up, err := s.Uploads().New(ctx, "app", digest.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 0, bytes.NewReader([]byte("x")))
	if _, err := up.Commit(ctx, gone[2]); err != nil {
		t.Fatal(err)
	}
	// An open upload is not a blob: Delete leaves it alone.
	open, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	open.Append(ctx, 0, bytes.NewReader([]byte("open")))
	open.Close()
	absent := digest.FromString("never stored")
	if err := b.Store().Delete(ctx, append(gone, absent)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, d := range append(gone, absent) {
		notFound(t, s, d)
	}
	if got := ReadBlob(t, s, keep); len(got) != 100 {
		t.Fatalf("kept blob has %d bytes", len(got))
	}
	// Deleting again, or nothing, is no error.
	if err := s.Delete(ctx, gone); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := s.Delete(ctx, nil); err != nil {
		t.Errorf("Delete(nil): %v", err)
	}
	// An invalid digest is an error, and the valid ones are still deleted.
	other := Put(t, s, RandBytes(10))
	if err := s.Delete(ctx, []digest.Digest{"sha256:../../x", other}); err == nil {
		t.Error("Delete of an invalid digest: no error")
	}
	notFound(t, s, other)
	// The upload goes on and commits.
	up, err = s.Uploads().Resume(ctx, open.ID())
	if err != nil {
		t.Fatalf("open upload after Delete: %v", err)
	}
	if _, err := up.Commit(ctx, digest.FromString("open")); err != nil {
		t.Fatal(err)
	}
	checkObjects(t, b, keep, digest.FromString("open"))
	// A blob deleted and pushed again is there.
	again := RandBytes(200)
	copy(again, "again")
	d := Put(t, s, again)
	if err := s.Delete(ctx, []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	if Put(t, s, again) != d || !bytes.Equal(ReadBlob(t, s, d), again) {
		t.Fatal("blob pushed again after Delete differs")
	}
}

func testList(t *testing.T, b *Backend) {
	s := b.Store()
	if err := s.List(ctx, func(i blob.Info) error { return fmt.Errorf("empty store lists %s", i.Digest) }); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	want := map[digest.Digest]int64{}
	for _, n := range []int{0, 1, 1000, 6<<20 + 1} {
		data := RandBytes(n)
		want[Put(t, s, data)] = int64(n)
	}
	data := RandBytes(77)
	d512 := digest.SHA512.FromBytes(data)
	up, err := s.Uploads().New(ctx, "app", digest.SHA512)
	if err != nil {
		t.Fatal(err)
	}
	up.Append(ctx, 0, bytes.NewReader(data))
	if _, err := up.Commit(ctx, d512); err != nil {
		t.Fatal(err)
	}
	want[d512] = 77
	open, err := s.Uploads().New(ctx, "app", digest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	open.Append(ctx, 0, bytes.NewReader([]byte("not a blob yet")))
	open.Close()
	got := map[digest.Digest]int64{}
	err = b.Store().List(ctx, func(i blob.Info) error {
		if _, dup := got[i.Digest]; dup {
			t.Errorf("%s listed twice", i.Digest)
		}
		got[i.Digest] = i.Size
		if i.Modified.Before(start) || i.Modified.After(time.Now().Add(time.Minute)) {
			t.Errorf("%s modified %v", i.Digest, i.Modified)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	// fn's error stops the listing and is returned.
	stop := errors.New("stop")
	calls := 0
	if err := s.List(ctx, func(blob.Info) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with a failing fn: %v after %d calls", err, calls)
	}
}
