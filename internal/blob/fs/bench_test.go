package fs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
)

// benchData is 64 MiB of random bytes; larger blobs repeat it.
var benchData = sync.OnceValue(func() []byte {
	b := make([]byte, 64<<20)
	rand.Read(b)
	return b
})

// benchBlob returns a reader of size bytes (benchData repeated, then an
// 8-byte counter so each blob is new) and its digest.
func benchBlob(size int64, n int) (func() io.Reader, digest.Digest) {
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

// removeBlob deletes a committed blob file (untimed) so a long -benchtime
// does not fill the disk.
func removeBlob(b *testing.B, root string, d digest.Digest) {
	b.StopTimer()
	if err := os.Remove(filepath.Join(root, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
}

// BenchmarkUpload measures the blob store's write path: New, one Append of
// the whole blob (hash while writing, fsync), Commit (rename, dir fsync).
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			root := b.TempDir()
			s, err := blobfs.New(root)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				mk, d := benchBlob(size, i)
				b.StartTimer()
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
				removeBlob(b, root, d)
			}
		})
	}
}

// BenchmarkUploadChunked appends 8 MiB chunks, each in its own request's
// worth of Resume/Append/Close, as a chunked PATCH upload does.
func BenchmarkUploadChunked(b *testing.B) {
	const size, chunk = 64 << 20, 8 << 20
	root := b.TempDir()
	s, err := blobfs.New(root)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		_, d := benchBlob(size, i)
		tail := []byte(fmt.Sprintf("%08d", i))
		full := append(append([]byte{}, benchData()[:size-len(tail)]...), tail...)
		b.StartTimer()
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
			if _, err := up.Append(ctx, int64(off), bytes.NewReader(full[off:off+chunk])); err != nil {
				b.Fatal(err)
			}
			if off+chunk == size {
				if _, err := up.Commit(ctx, d); err != nil {
					b.Fatal(err)
				}
				removeBlob(b, root, d)
			} else if err := up.Close(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkRead measures Open + a full read of a stored blob (page cache).
func BenchmarkRead(b *testing.B) {
	const size = 64 << 20
	s, err := blobfs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	mk, d := benchBlob(size, 0)
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
		if k, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil || k != n {
			b.Fatalf("read %d of %d bytes: %v", k, n, err)
		}
		f.Close()
	}
}
