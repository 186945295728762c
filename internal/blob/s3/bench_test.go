package s3_test

import (
	"fmt"
	"testing"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	blobs3 "github.com/hallmark-dev/hallmark/internal/blob/s3"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// benchStore is a store on a fresh prefix of a versitygw bucket (POSIX
// backend on the test machine's disk, loopback HTTP) and a function
// deleting a committed blob.
func benchStore(b *testing.B) (*blobs3.Store, func(digest.Digest)) {
	srv := testenv.StartS3(b)
	be := newBackend(b, srv)
	s := be.store()
	return s, func(d digest.Digest) {
		key := be.prefix + "/blobs/" + string(d.Algorithm()) + "/" + d.Encoded()[:2] + "/" + d.Encoded()
		if _, err := srv.Client().DeleteObject(b.Context(), &s3api.DeleteObjectInput{Bucket: &srv.Bucket, Key: &key}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload measures a push's blob path on S3: New, one Append of
// the whole blob (parts uploaded while hashing), Commit (server-side copy
// to the content-addressed key).
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int64{1 << 20, 64 << 20, 512 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			s, remove := benchStore(b)
			blobtest.BenchUpload(b, s, remove, size)
		})
	}
}

// BenchmarkUploadChunked appends 64 MiB in chunks, each in its own
// Resume/Append/Close: 8 MiB chunks (one big segment each) and 1 MiB
// chunks (below S3's part minimum: small segments merged, then folded into
// big ones).
func BenchmarkUploadChunked(b *testing.B) {
	for _, chunk := range []int{8 << 20, 1 << 20} {
		b.Run(fmt.Sprintf("%dMiB", chunk>>20), func(b *testing.B) {
			s, remove := benchStore(b)
			blobtest.BenchUploadChunked(b, s, remove, 64<<20, chunk)
		})
	}
}

// BenchmarkRead measures a pull's blob path on S3: Open (HEAD) and a full
// read (one GET).
func BenchmarkRead(b *testing.B) {
	s, _ := benchStore(b)
	blobtest.BenchRead(b, s, 64<<20)
}
