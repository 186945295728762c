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

// BenchStore returns a new, empty store for a benchmark and a function
// that deletes a committed blob from it (so a long -benchtime does not
// fill the disk).
type BenchStore func(b *testing.B) (blob.Store, func(digest.Digest))

// benchPut stores the blob r yields under d.
func benchPut(b *testing.B, s blob.Store, r io.Reader, d digest.Digest) {
	ctx := b.Context()
	up, err := s.Uploads().New(ctx, "bench/repo", digest.SHA256)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := up.Append(ctx, 0, r); err != nil {
		b.Fatal(err)
	}
	if _, err := up.Commit(ctx, d); err != nil {
		b.Fatal(err)
	}
}

// BenchUpload measures a store's write path for blobs of 1, 64 and 512
// MiB: New, one Append of the whole blob (as a monolithic or docker-style
// upload), Commit.
func BenchUpload(b *testing.B, newStore BenchStore) {
	for _, size := range []int64{1 << 20, 64 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			s, remove := newStore(b)
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				var mk func() io.Reader
				var d digest.Digest
				untimed(b, func() { mk, d = BenchBlob(size, i) })
				benchPut(b, s, mk(), d)
				untimed(b, func() { remove(d) })
			}
		})
	}
}

// BenchUploadChunked appends a 64 MiB blob in chunks of each of the given
// sizes, each chunk in its own Resume/Append/Close, as a chunked PATCH
// upload does.
func BenchUploadChunked(b *testing.B, newStore BenchStore, chunks ...int) {
	const size = 64 << 20
	for _, chunk := range chunks {
		b.Run(fmt.Sprintf("%dMiB", chunk>>20), func(b *testing.B) {
			s, remove := newStore(b)
			ctx := b.Context()
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				var full []byte
				var d digest.Digest
				untimed(b, func() {
					mk, dd := BenchBlob(size, i)
					full, _ = io.ReadAll(mk())
					d = dd
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
		})
	}
}

// BenchRead measures Open and a full read of a stored 64 MiB blob.
func BenchRead(b *testing.B, newStore BenchStore) {
	const size = 64 << 20
	s, _ := newStore(b)
	mk, d := BenchBlob(size, -1)
	benchPut(b, s, mk(), d)
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	for b.Loop() {
		f, n, err := s.Open(b.Context(), d)
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
