package fs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
)

// benchStore is a store on a temp dir and a function deleting a blob file.
func benchStore(b *testing.B) (*blobfs.Store, func(digest.Digest)) {
	root := b.TempDir()
	s, err := blobfs.New(root)
	if err != nil {
		b.Fatal(err)
	}
	return s, func(d digest.Digest) {
		if err := os.Remove(filepath.Join(root, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload measures the write path: New, one Append of the whole
// blob (hash while writing, fsync), Commit (rename, dir fsync).
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			s, remove := benchStore(b)
			blobtest.BenchUpload(b, s, remove, size)
		})
	}
}

// BenchmarkUploadChunked appends 64 MiB in 8 MiB chunks, each in its own
// Resume/Append/Close, as a chunked PATCH upload does.
func BenchmarkUploadChunked(b *testing.B) {
	s, remove := benchStore(b)
	blobtest.BenchUploadChunked(b, s, remove, 64<<20, 8<<20)
}

// BenchmarkRead measures Open + a full read of a stored blob (page cache).
func BenchmarkRead(b *testing.B) {
	s, _ := benchStore(b)
	blobtest.BenchRead(b, s, 64<<20)
}
