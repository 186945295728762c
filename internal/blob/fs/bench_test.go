package fs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
)

// benchStore is a store on a temp dir and a function deleting a blob file.
func benchStore(b *testing.B) (blob.Store, func(digest.Digest)) {
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

// BenchmarkUpload: New, one Append of the whole blob (hash while writing,
// fsync), Commit (rename, dir fsync).
func BenchmarkUpload(b *testing.B) { blobtest.BenchUpload(b, benchStore) }

// BenchmarkUploadChunked: 64 MiB in 8 MiB Resume/Append/Close steps.
func BenchmarkUploadChunked(b *testing.B) { blobtest.BenchUploadChunked(b, benchStore, 8<<20) }

// BenchmarkRead: Open + a full read of 64 MiB from the page cache.
func BenchmarkRead(b *testing.B) { blobtest.BenchRead(b, benchStore) }
