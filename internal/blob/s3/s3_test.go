package s3_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	blobs3 "github.com/hallmark-dev/hallmark/internal/blob/s3"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

var ctx = context.Background()

// prefixes numbers the key prefixes tests use in one versitygw bucket.
var prefixes atomic.Int64

// backend is a fresh prefix in srv's bucket.
type backend struct {
	t      testing.TB
	srv    *testenv.S3
	prefix string
}

func newBackend(t testing.TB, srv *testenv.S3) *backend {
	return &backend{t: t, srv: srv, prefix: fmt.Sprintf("t%d/registry", prefixes.Add(1))}
}

func (b *backend) config() blobs3.Config {
	return blobs3.Config{Bucket: b.srv.Bucket, Prefix: b.prefix, Endpoint: b.srv.Endpoint, Region: b.srv.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(b.srv.AccessKey, b.srv.SecretKey, "")}
}

func (b *backend) store(mod ...func(*blobs3.Config)) *blobs3.Store {
	cfg := b.config()
	for _, m := range mod {
		m(&cfg)
	}
	s, err := blobs3.New(ctx, cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// objects lists the keys under the prefix, relative to it.
func (b *backend) objects() []string {
	var out []string
	p := s3api.NewListObjectsV2Paginator(b.srv.Client(), &s3api.ListObjectsV2Input{Bucket: &b.srv.Bucket, Prefix: aws.String(b.prefix + "/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			b.t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(*o.Key, b.prefix+"/"))
		}
	}
	return out
}

// age backdates the backend files of upload id (versitygw reports a
// file's modification time as the object's).
func (b *backend) age(id string, d time.Duration) {
	past := time.Now().Add(-d)
	root := b.srv.ObjectPath(b.prefix + "/uploads/" + id)
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, past, past)
	})
	if err != nil {
		b.t.Fatal(err)
	}
}

func TestContract(t *testing.T) {
	srv := testenv.StartS3(t)
	blobtest.Run(t, func(t *testing.T) *blobtest.Backend {
		b := newBackend(t, srv)
		return &blobtest.Backend{
			Store:   func() blobtest.Store { return b.store() },
			Objects: b.objects,
			Age:     b.age,
			Stop:    srv.Stop,
			Start:   srv.Start,
		}
	})
}

func putObject(t *testing.T, srv *testenv.S3, key string, body []byte) {
	t.Helper()
	if _, err := srv.Client().PutObject(ctx, &s3api.PutObjectInput{Bucket: &srv.Bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
}

// TestS3Specific covers what the contract cannot say for every driver:
// damaged session state, multipart uploads left by a crash, presigned
// redirects, copies of segments above the per-request copy limit.
func TestS3Specific(t *testing.T) {
	srv := testenv.StartS3(t)
	t.Run("CorruptState", func(t *testing.T) {
		b := newBackend(t, srv)
		s := b.store()
		up, err := s.Uploads().New(ctx, "app", digest.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Append(ctx, 0, bytes.NewReader([]byte("abc"))); err != nil {
			t.Fatal(err)
		}
		key := b.prefix + "/uploads/" + up.ID() + "/state.json"
		raw, err := srv.Client().GetObject(ctx, &s3api.GetObjectInput{Bucket: &srv.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		good, _ := io.ReadAll(raw.Body)
		raw.Body.Close()
		var st map[string]any
		if err := json.Unmarshal(good, &st); err != nil {
			t.Fatal(err)
		}
		edit := func(k string, v any) []byte {
			m := maps.Clone(st)
			m[k] = v
			out, _ := json.Marshal(m)
			return out
		}
		for name, body := range map[string][]byte{
			"empty":            nil,
			"torn":             good[:len(good)/2],
			"md5":              edit("algorithm", "md5"),
			"bad hash":         edit("hash", "AAAA"),
			"segment path":     edit("segments", []any{map[string]any{"name": "../../blobs/x", "size": 3}}),
			"sizes":            edit("size", 4),
			"negative":         edit("segments", []any{map[string]any{"name": "seg-0123456789abcdef", "size": -3}}),
			"order":            edit("segments", []any{map[string]any{"name": "seg-0123456789abcdef", "size": 1}, map[string]any{"name": "seg-0123456789abcdee", "size": 2}}),
			"huge tail":        edit("segments", []any{map[string]any{"name": "seg-0123456789abcdef", "size": 3 << 20}, map[string]any{"name": "seg-0123456789abcdee", "size": 3 << 20}}),
			"oversized object": append(good, bytes.Repeat([]byte(" "), 5<<20)...),
		} {
			putObject(t, srv, key, body)
			if _, err := s.Uploads().Resume(ctx, up.ID()); !errors.Is(err, blob.ErrUploadNotFound) {
				t.Errorf("Resume with %s state: %v, want ErrUploadNotFound", name, err)
			}
		}
	})
	t.Run("RacingReplicas", func(t *testing.T) {
		// Two servers append different chunks to one session at the same
		// offset (a misbehaving client, or a retry racing the original).
		// Whichever state is saved last wins; the session then commits
		// exactly the bytes its hash state has seen, or is reported lost.
		// It never stores one content under another's digest.
		b := newBackend(t, srv)
		prefix := blobtest.RandBytes(6<<20 + 1000) // a big segment and a small tail
		for round, sizes := range [][2]int{{1000, 2000}, {3000, 6 << 20}, {7 << 20, 6 << 20}} {
			up, err := b.store().Uploads().New(ctx, "app", digest.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := up.Append(ctx, 0, bytes.NewReader(prefix[:6<<20])); err != nil {
				t.Fatal(err)
			}
			if _, err := up.Append(ctx, 6<<20, bytes.NewReader(prefix[6<<20:])); err != nil {
				t.Fatal(err)
			}
			chunks := [2][]byte{blobtest.RandBytes(sizes[0]), blobtest.RandBytes(sizes[1])}
			var wg sync.WaitGroup
			for _, c := range chunks {
				wg.Go(func() {
					if u, err := b.store().Uploads().Resume(ctx, up.ID()); err == nil {
						u.Append(ctx, int64(len(prefix)), bytes.NewReader(c))
					}
				})
			}
			wg.Wait()
			u, err := b.store().Uploads().Resume(ctx, up.ID())
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for _, c := range chunks {
				if u.Size() == int64(len(prefix)+len(c)) {
					want = append(slices.Clone(prefix), c...)
				}
			}
			if want == nil {
				t.Fatalf("round %d: size %d after the race matches neither chunk", round, u.Size())
			}
			d := digest.FromBytes(want)
			_, err = u.Commit(ctx, d)
			if errors.Is(err, blob.ErrUploadNotFound) {
				t.Logf("round %d: the session lost a segment to the other request: %v", round, err)
				continue
			}
			if err != nil {
				t.Fatalf("round %d: Commit: %v", round, err)
			}
			if !bytes.Equal(blobtest.ReadBlob(t, b.store(), d), want) {
				t.Fatalf("round %d: the blob's content is not what its digest says", round)
			}
		}
	})
	t.Run("WholeReads", func(t *testing.T) {
		// A pull: Start, then WriteTo an HTTP response, as the registry
		// does. A large blob on a plain-HTTP endpoint is read on its own
		// presigned connection; a small one with the SDK.
		b := newBackend(t, srv)
		endpoint, traffic := srv.CountingProxy(t)
		s := b.store(func(c *blobs3.Config) { c.Endpoint = endpoint })
		if !blobs3.Direct(s, 1<<20) || blobs3.Direct(s, 1<<20-1) {
			t.Error("a plain-HTTP endpoint: blobs from 1 MiB up are read directly, smaller ones not")
		}
		if tls := b.store(func(c *blobs3.Config) { c.Endpoint = "https://s3.example.com" }); blobs3.Direct(tls, 64<<20) {
			t.Error("a TLS endpoint is read with the SDK")
		}
		// put stores size random bytes.
		put := func(size int) ([]byte, digest.Digest) {
			data := blobtest.RandBytes(size)
			d := digest.FromBytes(data)
			up, err := s.Uploads().New(ctx, "app", digest.SHA256)
			if err == nil {
				_, err = up.Append(ctx, 0, bytes.NewReader(data))
			}
			if err == nil {
				_, err = up.Commit(ctx, d)
			}
			if err != nil {
				t.Fatal(err)
			}
			return data, d
		}
		serve := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc, size, err := s.Open(r.Context(), digest.Digest(r.URL.Query().Get("d")))
			if err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
				return
			}
			defer rc.Close()
			wr := rc.(blob.WholeReader)
			if err := wr.Start(); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			if n, err := wr.WriteTo(w); err != nil || n != size {
				t.Errorf("WriteTo: %d of %d bytes, %v", n, size, err)
			}
		}))
		defer serve.Close()
		for _, size := range []int{0, 1000, 1<<20 - 1, 1 << 20, 5<<20 + 7} {
			data, d := put(size)
			r0 := traffic.Requests.Load()
			res, err := http.Get(serve.URL + "/?d=" + d.String())
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != 200 || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes: %s, %d bytes back (equal %v), %v", size, res.Status, len(got), bytes.Equal(got, data), err)
			}
			if reqs, want := traffic.Requests.Load()-r0, min(size+1, 2); reqs != int64(want) {
				t.Errorf("%d bytes: %d requests to S3, want %d (HEAD, GET unless empty)", size, reqs, want)
			}
		}
		// Deleted between Open and Start: not found, before any answer.
		for _, size := range []int{1000, 2 << 20} {
			_, d := put(size)
			rc, _, err := s.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, []digest.Digest{d}); err != nil {
				t.Fatal(err)
			}
			if err := rc.(blob.WholeReader).Start(); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("%d bytes deleted after Open: Start gave %v, want ErrNotFound", size, err)
			}
			rc.Close()
		}
		// The client goes away, or the request ends, while the body is
		// being written: WriteTo returns with an error.
		data, d := put(32 << 20)
		start := func(rctx context.Context) blob.WholeReader {
			rc, _, err := s.Open(rctx, d)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rc.Close() })
			wr := rc.(blob.WholeReader)
			if err := wr.Start(); err != nil {
				t.Fatal(err)
			}
			return wr
		}
		pr, pw := io.Pipe()
		go func() {
			io.ReadFull(pr, make([]byte, 1<<20))
			pr.CloseWithError(errors.New("client gone"))
		}()
		if n, err := start(ctx).WriteTo(pw); err == nil || n >= int64(len(data)) {
			t.Errorf("WriteTo to a client gone after 1 MiB: %d bytes, %v", n, err)
		}
		rctx, cancel := context.WithCancel(ctx)
		w := &endingWriter{after: 1 << 20, end: cancel}
		if n, err := start(rctx).WriteTo(w); err == nil || n >= int64(len(data)) {
			t.Errorf("WriteTo in a request that ended after 1 MiB: %d bytes, %v", n, err)
		}
	})
	t.Run("RangedReads", func(t *testing.T) {
		// A pull is one GET; a short range downloads about its size, not
		// the rest of the blob; a long read from an offset takes a few
		// growing windows.
		b := newBackend(t, srv)
		endpoint, traffic := srv.CountingProxy(t)
		s := b.store(func(c *blobs3.Config) { c.Endpoint = endpoint })
		data := blobtest.RandBytes(40 << 20)
		d := digest.FromBytes(data)
		up, _ := s.Uploads().New(ctx, "app", digest.SHA256)
		up.Append(ctx, 0, bytes.NewReader(data))
		if _, err := up.Commit(ctx, d); err != nil {
			t.Fatal(err)
		}
		read := func(off, n int64) (requests, received int64) {
			r0, b0 := traffic.Requests.Load(), traffic.Received.Load()
			rc, _, err := s.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rc.Seek(off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, n)
			if _, err := io.ReadFull(rc, got); err != nil {
				t.Fatalf("read %d at %d: %v", n, off, err)
			}
			rc.Close()
			if !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("read %d at %d: bytes differ", n, off)
			}
			return traffic.Requests.Load() - r0, traffic.Received.Load() - b0
		}
		if reqs, _ := read(0, int64(len(data))); reqs != 2 {
			t.Errorf("full read: %d requests, want 2 (HEAD, GET)", reqs)
		}
		n0 := len(traffic.Ranges())
		if _, got := read(20<<20, 10); got > 2<<20 {
			t.Errorf("10-byte range: %d bytes downloaded", got)
		}
		if rs := traffic.Ranges()[n0:]; len(rs) != 1 || rs[0] != fmt.Sprintf("bytes=%d-%d", 20<<20, 21<<20-1) {
			t.Errorf("10-byte range read asked S3 for %q, want one 1 MiB window", rs)
		}
		if reqs, got := read(1, int64(len(data))-1); reqs > 8 || got > int64(len(data))+(1<<20) {
			t.Errorf("read from byte 1 to the end: %d requests, %d bytes", reqs, got)
		}
	})
	t.Run("DamagedSegment", func(t *testing.T) {
		// A segment object that is not what the state says (someone
		// wrote into the bucket): the session is refused, not committed.
		b := newBackend(t, srv)
		s := b.store()
		up, err := s.Uploads().New(ctx, "app", digest.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		data := blobtest.RandBytes(3000)
		if _, err := up.Append(ctx, 0, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		var seg string
		for _, o := range b.objects() {
			if strings.Contains(o, "/seg-") {
				seg = o
			}
		}
		putObject(t, srv, b.prefix+"/"+seg, blobtest.RandBytes(4000))
		if _, err := up.Append(ctx, 3000, bytes.NewReader(data)); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("Append after the segment was replaced: %v", err)
		}
		if _, err := up.Commit(ctx, digest.SHA512.FromBytes(data)); !errors.Is(err, blob.ErrUploadNotFound) {
			t.Errorf("Commit (re-reading) after the segment was replaced: %v", err)
		}
	})
	t.Run("PurgeCrashedChunk", func(t *testing.T) {
		// A server died in the middle of a large chunk: a multipart
		// upload of a segment stays open in S3.
		b := newBackend(t, srv)
		s := b.store()
		up, err := s.Uploads().New(ctx, "app", digest.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		key := b.prefix + "/uploads/" + up.ID() + "/seg-0123456789abcdef"
		mpu, err := srv.Client().CreateMultipartUpload(ctx, &s3api.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &key})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.Client().UploadPart(ctx, &s3api.UploadPartInput{Bucket: &srv.Bucket, Key: &key, UploadId: mpu.UploadId,
			PartNumber: aws.Int32(1), Body: bytes.NewReader(blobtest.RandBytes(5 << 20))}); err != nil {
			t.Fatal(err)
		}
		open := func() int {
			out, err := srv.Client().ListMultipartUploads(ctx, &s3api.ListMultipartUploadsInput{Bucket: &srv.Bucket, Prefix: aws.String(b.prefix + "/")})
			if err != nil {
				t.Fatal(err)
			}
			return len(out.Uploads)
		}
		if n, err := s.PurgeUploads(ctx, 24*time.Hour); err != nil || n != 0 || open() != 1 {
			t.Fatalf("purge of a fresh session: %d, %v; %d multipart uploads open", n, err, open())
		}
		later := b.store(func(c *blobs3.Config) { c.Now = func() time.Time { return time.Now().Add(48 * time.Hour) } })
		if n, err := later.PurgeUploads(ctx, 24*time.Hour); err != nil || n != 1 {
			t.Fatalf("purge two days later: %d, %v", n, err)
		}
		if n := open(); n != 0 {
			t.Errorf("%d multipart uploads still open", n)
		}
		if objs := b.objects(); len(objs) != 0 {
			t.Errorf("objects left: %v", objs)
		}
	})
	t.Run("Redirect", func(t *testing.T) {
		b := newBackend(t, srv)
		data := blobtest.RandBytes(1000)
		d := digest.FromBytes(data)
		up, _ := b.store().Uploads().New(ctx, "app", digest.SHA256)
		up.Append(ctx, 0, bytes.NewReader(data))
		if _, err := up.Commit(ctx, d); err != nil {
			t.Fatal(err)
		}
		if u, err := b.store().RedirectURL(ctx, d); u != "" || err != nil {
			t.Errorf("RedirectURL without redirects: %q, %v", u, err)
		}
		s := b.store(func(c *blobs3.Config) { c.Redirect = time.Minute })
		u, err := s.RedirectURL(ctx, d)
		if err != nil || !strings.Contains(u, "X-Amz-Expires=60") || strings.Contains(u, srv.SecretKey) {
			t.Fatalf("RedirectURL: %q, %v", u, err)
		}
		res, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !bytes.Equal(body, data) {
			t.Errorf("GET presigned URL: %d, bytes equal %v", res.StatusCode, bytes.Equal(body, data))
		}
		if _, err := s.RedirectURL(ctx, "sha256:../x"); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("RedirectURL of an invalid digest: %v", err)
		}
	})
	t.Run("OneBuffer", func(t *testing.T) {
		// All requests share one part buffer: they wait for each other,
		// none deadlocks, and large chunks go up with the one they have.
		b := newBackend(t, srv)
		s := b.store(func(c *blobs3.Config) { c.Buffers = 1 })
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				data := blobtest.RandBytes(20<<20 + i)
				d := digest.FromBytes(data)
				up, err := s.Uploads().New(ctx, "app", digest.SHA256)
				if err != nil {
					t.Error(err)
					return
				}
				// A small chunk, then the rest in one (multipart) chunk.
				if _, err := up.Append(ctx, 0, bytes.NewReader(data[:1000])); err != nil {
					t.Error(err)
					return
				}
				if _, err := up.Append(ctx, 1000, bytes.NewReader(data[1000:])); err != nil {
					t.Error(err)
					return
				}
				if _, err := up.Commit(ctx, d); err != nil {
					t.Error(err)
					return
				}
				if !bytes.Equal(blobtest.ReadBlob(t, s, d), data) {
					t.Error("content differs")
				}
			})
		}
		wg.Wait()
	})
	t.Run("MultipartCopy", func(t *testing.T) {
		// Segments above the copy limit are copied in ranges; 10 MiB
		// stands in for S3's 5 GiB.
		b := newBackend(t, srv)
		for _, sizes := range [][]int{{64 << 20}, {12 << 20, 23<<20 + 1, 3}, {25 << 20, 1}} {
			s := b.store()
			blobs3.SetCopyPartSize(s, 10<<20)
			total := 0
			for _, n := range sizes {
				total += n
			}
			data := blobtest.RandBytes(total)
			d := digest.FromBytes(data)
			up, err := s.Uploads().New(ctx, "app", digest.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			off := 0
			for _, n := range sizes {
				if _, err := up.Append(ctx, int64(off), bytes.NewReader(data[off:off+n])); err != nil {
					t.Fatal(err)
				}
				off += n
			}
			if _, err := up.Commit(ctx, d); err != nil {
				t.Fatalf("sizes %v: %v", sizes, err)
			}
			if !bytes.Equal(blobtest.ReadBlob(t, s, d), data) {
				t.Fatalf("sizes %v: content differs", sizes)
			}
		}
	})
}

// endingWriter takes every byte; once it has taken after bytes, it calls
// end (a request's cancel) and gives it a moment to take effect.
type endingWriter struct {
	after, n int
	end      func()
}

func (w *endingWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	if w.n >= w.after && w.end != nil {
		w.end()
		w.end = nil
		time.Sleep(100 * time.Millisecond)
	}
	return len(p), nil
}
