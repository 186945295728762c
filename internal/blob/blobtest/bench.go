package blobtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// benchData is 64 MiB of random bytes; larger blobs repeat it.
var benchData = sync.OnceValue(func() []byte { return RandBytes(64 << 20) })

// BenchBlob returns a reader of size bytes (random data, repeated past 64
// MiB, then an 8-byte counter so each n gives a new blob) and its digest.
func BenchBlob(size int64, n int) (func() io.Reader, digest.Digest) {
	tail := []byte(fmt.Sprintf("%08d", n))
	mk := func() io.Reader {
		var rs []io.Reader
		left := size - int64(len(tail))
		for left > 0 {
			k := min(left, int64(len(benchData())))
			rs = append(rs, bytes.NewReader(benchData()[:k]))
			left -= k
		}
		return io.MultiReader(append(rs, bytes.NewReader(tail))...)
	}
	h := sha256.New()
	io.Copy(h, mk())
	return mk, digest.NewDigest(digest.SHA256, h)
}

// untimed runs f with the benchmark timer stopped.
func untimed(b *testing.B, f func()) {
	b.StopTimer()
	f()
	b.StartTimer()
}

// BenchUpload measures a store's write path for one blob of size bytes:
// New, one Append of the whole blob (as a monolithic or docker-style
// upload), Commit. remove deletes a committed blob (untimed), so a long
// -benchtime does not fill the disk.
func BenchUpload(b *testing.B, s blob.Store, remove func(digest.Digest), size int64) {
	ctx := b.Context()
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		var mk func() io.Reader
		var d digest.Digest
		untimed(b, func() { mk, d = BenchBlob(size, i) })
		up, err := s.Uploads().New(ctx, "bench/repo", digest.SHA256)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := up.Append(ctx, 0, mk()); err != nil {
			b.Fatal(err)
		}
		if _, err := up.Commit(ctx, d); err != nil {
			b.Fatal(err)
		}
		untimed(b, func() { remove(d) })
	}
}

// BenchUploadChunked appends a blob of size bytes in chunks, each in its
// own Resume/Append/Close, as a chunked PATCH upload does.
func BenchUploadChunked(b *testing.B, s blob.Store, remove func(digest.Digest), size, chunk int) {
	ctx := b.Context()
	b.SetBytes(int64(size))
	for i := 0; b.Loop(); i++ {
		var full []byte
		var d digest.Digest
		untimed(b, func() {
			var mk func() io.Reader
			mk, d = BenchBlob(int64(size), i)
			full, _ = io.ReadAll(mk())
		})
		up, err := s.Uploads().New(ctx, "bench/repo", digest.SHA256)
		if err != nil {
			b.Fatal(err)
		}
		id := up.ID()
		up.Close()
		for off := 0; off < size; off += chunk {
			up, err := s.Uploads().Resume(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			end := min(off+chunk, size)
			if _, err := up.Append(ctx, int64(off), bytes.NewReader(full[off:end])); err != nil {
				b.Fatal(err)
			}
			if end == size {
				if _, err := up.Commit(ctx, d); err != nil {
					b.Fatal(err)
				}
			} else if err := up.Close(); err != nil {
				b.Fatal(err)
			}
		}
		untimed(b, func() { remove(d) })
	}
}

// BenchRead measures Open and a full read of a stored blob of size bytes.
func BenchRead(b *testing.B, s blob.Store, size int64) {
	ctx := b.Context()
	mk, d := BenchBlob(size, -1)
	up, err := s.Uploads().New(ctx, "bench/repo", digest.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := up.Append(ctx, 0, mk()); err != nil {
		b.Fatal(err)
	}
	if _, err := up.Commit(ctx, d); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		f, n, err := s.Open(ctx, d)
		if err != nil {
			b.Fatal(err)
		}
		// Hide WriterTo/ReaderFrom: a plain copy, as a handler without
		// sendfile does.
		if k, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil || k != n {
			b.Fatalf("read %d of %d bytes: %v", k, n, err)
		}
		f.Close()
	}
}
