package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	"github.com/hallmark-dev/hallmark/internal/blob/cache"
	blobs3 "github.com/hallmark-dev/hallmark/internal/blob/s3"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

var ctx = context.Background()

// env is one test's S3 store (a prefix of the shared versitygw bucket)
// and a cache in front of it.
type env struct {
	t   *testing.T
	srv *testenv.S3
	src *blobs3.Store
	dir string
	c   *cache.Cache
	pre string
}

func newEnv(t *testing.T, srv *testenv.S3, max int64) *env {
	t.Helper()
	pre := "cache-" + filepath.Base(t.Name())
	src, err := blobs3.New(ctx, blobs3.Config{Bucket: srv.Bucket, Prefix: pre, Endpoint: srv.Endpoint, Region: srv.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, src: src, dir: filepath.Join(t.TempDir(), "cache"), pre: pre}
	if e.c, err = cache.New(src, e.dir, max, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.c.Close() })
	return e
}

// send writes blob d to w as the registry does for a GET: Start and
// WriteTo when the reader can, else a copy.
func send(c *cache.Cache, d digest.Digest, w io.Writer) (io.ReadSeekCloser, error) {
	rc, _, err := c.Open(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if wr, ok := rc.(blob.WholeReader); ok {
		if err = wr.Start(); err == nil {
			_, err = wr.WriteTo(w)
		}
	} else {
		_, err = io.Copy(w, rc)
	}
	return rc, err
}

// pull reads d whole and waits for the copy it started.
func (e *env) pull(d digest.Digest) ([]byte, io.ReadSeekCloser) {
	e.t.Helper()
	var buf bytes.Buffer
	rc, err := send(e.c, d, &buf)
	if err != nil {
		e.t.Fatalf("pull %s: %v", d, err)
	}
	e.c.WaitFills()
	return buf.Bytes(), rc
}

func (e *env) objectPath(d digest.Digest) string {
	return e.srv.ObjectPath(e.pre + "/blobs/" + blob.BlobPath(d))
}

// copyPath is where the cache keeps its copy of d.
func (e *env) copyPath(d digest.Digest) string {
	return filepath.Join(e.dir, filepath.FromSlash(blob.BlobPath(d)))
}

func (e *env) want(st cache.Stats) {
	e.t.Helper()
	got := e.c.Stats()
	if got != st {
		e.t.Fatalf("stats %+v, want %+v", got, st)
	}
}

// TestCache runs against a real S3 server (versitygw) as the source.
func TestCache(t *testing.T) {
	srv := testenv.StartS3(t)

	t.Run("FillThenHit", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		data := blobtest.RandBytes(3<<20 + 17)
		d := blobtest.Put(t, e.src, data)
		got, rc := e.pull(d)
		if !bytes.Equal(got, data) {
			t.Fatal("first pull: wrong bytes")
		}
		if _, ok := rc.(*os.File); ok {
			t.Fatal("first pull came from a file")
		}
		e.want(cache.Stats{Misses: 1, Fills: 1, Bytes: int64(len(data)), Entries: 1})
		got, rc = e.pull(d)
		if !bytes.Equal(got, data) {
			t.Fatal("second pull: wrong bytes")
		}
		if _, ok := rc.(*os.File); !ok {
			t.Fatalf("second pull: %T, want the cached *os.File", rc)
		}
		// The copy answers even with the object gone from S3.
		if err := os.Remove(e.objectPath(d)); err != nil {
			t.Fatal(err)
		}
		if got, _ = e.pull(d); !bytes.Equal(got, data) {
			t.Fatal("third pull: wrong bytes")
		}
		e.want(cache.Stats{Hits: 2, Misses: 1, Fills: 1, Bytes: int64(len(data)), Entries: 1})
	})

	t.Run("RangeReadsDoNotFill", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		data := blobtest.RandBytes(2 << 20)
		d := blobtest.Put(t, e.src, data)
		rc, _, err := e.c.Open(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Seek(1<<20, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		part := make([]byte, 100)
		if _, err := io.ReadFull(rc, part); err != nil || !bytes.Equal(part, data[1<<20:1<<20+100]) {
			t.Fatalf("range read: %v", err)
		}
		rc.Close()
		e.want(cache.Stats{Misses: 1})
		// The claim to fill was released: a whole read fills now.
		e.pull(d)
		e.want(cache.Stats{Misses: 2, Fills: 1, Bytes: int64(len(data)), Entries: 1})
	})

	t.Run("TamperedSourceNotKept", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		data := blobtest.RandBytes(1<<20 + 5)
		d := blobtest.Put(t, e.src, data)
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 1
		if err := os.WriteFile(e.objectPath(d), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		e.pull(d) // what the source sends goes out (the registry checked nothing here) ...
		e.want(cache.Stats{Misses: 1})
		// ... its copy is refused ...
		if tmp, _ := os.ReadDir(filepath.Join(e.dir, "tmp")); len(tmp) != 0 {
			t.Fatalf("left in tmp: %v", tmp)
		}
		// ... and the next read goes to the source again.
		if _, rc := e.pull(d); isFile(rc) {
			t.Fatal("a tampered copy was kept")
		}
	})

	t.Run("ClientGoneNotKept", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		data := blobtest.RandBytes(4 << 20)
		d := blobtest.Put(t, e.src, data)
		if _, err := send(e.c, d, &failingWriter{n: 1 << 20}); err == nil {
			t.Fatal("WriteTo to a failing client: no error")
		}
		e.c.WaitFills()
		e.want(cache.Stats{Misses: 1})
		if tmp, _ := os.ReadDir(filepath.Join(e.dir, "tmp")); len(tmp) != 0 {
			t.Fatalf("left in tmp: %v", tmp)
		}
		if got, _ := e.pull(d); !bytes.Equal(got, data) {
			t.Fatal("pull after a failed one: wrong bytes")
		}
		e.want(cache.Stats{Misses: 2, Fills: 1, Bytes: int64(len(data)), Entries: 1})
	})

	t.Run("EvictsLeastRecentlyUsed", func(t *testing.T) {
		e := newEnv(t, srv, 4<<20) // blobs of up to 1 MiB are kept
		var ds []digest.Digest
		for i := range 5 {
			ds = append(ds, blobtest.Put(t, e.src, blobtest.RandBytes(1<<20-i)))
		}
		for _, d := range ds[:4] {
			e.pull(d)
		}
		e.pull(ds[0]) // most recently used now: ds[1] is the oldest
		e.pull(ds[4]) // over 4 MiB: ds[1] goes
		st := e.c.Stats()
		if st.Evictions != 1 || st.Entries != 4 || st.Bytes > 4<<20 {
			t.Fatalf("stats %+v", st)
		}
		for i, d := range ds {
			_, err := os.Stat(e.copyPath(d))
			if cached := err == nil; cached != (i != 1) {
				t.Errorf("blob %d: cached %v", i, cached)
			}
		}
		// Too large for the cache (over a quarter of it): never kept.
		big := blobtest.Put(t, e.src, blobtest.RandBytes(1<<20+1))
		e.pull(big)
		if _, rc := e.pull(big); isFile(rc) {
			t.Fatal("a blob over a quarter of the cache was kept")
		}
	})

	t.Run("ForgetAndRemovedBehindItsBack", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		a, b := blobtest.RandBytes(1<<20), blobtest.RandBytes(1<<20+1)
		da, db := blobtest.Put(t, e.src, a), blobtest.Put(t, e.src, b)
		e.pull(da)
		e.pull(db)
		e.c.Forget([]digest.Digest{da})
		if _, err := os.Stat(e.copyPath(da)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("forgotten copy: %v", err)
		}
		if err := os.Remove(e.copyPath(db)); err != nil {
			t.Fatal(err)
		}
		for d, data := range map[digest.Digest][]byte{da: a, db: b} {
			if got, rc := e.pull(d); !bytes.Equal(got, data) || isFile(rc) {
				t.Fatalf("%s: from a file %v, bytes equal %v", d, isFile(rc), bytes.Equal(got, data))
			}
		}
		if _, _, err := e.c.Open(ctx, "sha256:nothex"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("invalid digest: %v", err)
		}
		if _, _, err := e.c.Open(ctx, digest.FromString("absent")); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("absent blob: %v", err)
		}
	})

	t.Run("ConcurrentMissesFillOnce", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		data := blobtest.RandBytes(2 << 20)
		d := blobtest.Put(t, e.src, data)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				var buf bytes.Buffer
				_, err := send(e.c, d, &buf)
				if err == nil && !bytes.Equal(buf.Bytes(), data) {
					err = fmt.Errorf("wrong bytes")
				}
				errs <- err
			})
		}
		wg.Wait()
		e.c.WaitFills()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if st := e.c.Stats(); st.Fills != 1 || st.Entries != 1 || st.Hits+st.Misses != 8 {
			t.Fatalf("stats %+v", st)
		}
	})

	t.Run("CloseStopsCopies", func(t *testing.T) {
		e := newEnv(t, srv, 256<<20)
		data := blobtest.RandBytes(32 << 20)
		d := blobtest.Put(t, e.src, data)
		if _, err := send(e.c, d, io.Discard); err != nil {
			t.Fatal(err)
		}
		e.c.Close() // the copy may have finished or not; nothing half-done stays
		if tmp, _ := os.ReadDir(filepath.Join(e.dir, "tmp")); len(tmp) != 0 {
			t.Fatalf("left in tmp: %v", tmp)
		}
		if st := e.c.Stats(); st.Entries > 1 || st.Entries == 1 && st.Bytes != int64(len(data)) {
			t.Fatalf("stats %+v", st)
		}
		// A closed cache starts no copies.
		other := blobtest.Put(t, e.src, blobtest.RandBytes(1<<20))
		e.pull(other)
		if st := e.c.Stats(); st.Fills > 1 {
			t.Fatalf("a copy after Close: %+v", st)
		}
	})

	t.Run("OpenEmptiesTheDirectory", func(t *testing.T) {
		e := newEnv(t, srv, 64<<20)
		d := blobtest.Put(t, e.src, blobtest.RandBytes(1<<20))
		e.pull(d)
		c2, err := cache.New(e.src, e.dir, 64<<20, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if st := c2.Stats(); st.Entries != 0 {
			t.Fatalf("reopened: %+v", st)
		}
		if _, err := os.Stat(e.copyPath(d)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a copy from before the start: %v", err)
		}
		if _, err := cache.New(e.src, e.dir, 0, slog.New(slog.DiscardHandler)); err == nil {
			t.Fatal("a cache of 0 bytes")
		}
	})
}

func isFile(rc io.ReadSeekCloser) bool {
	_, ok := rc.(*os.File)
	return ok
}

// failingWriter takes n bytes, then fails: a client that went away.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("connection reset by peer")
	}
	w.n -= len(p)
	return len(p), nil
}
