package s3_test

import (
	"testing"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/blob/blobtest"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// benchStore is a store on a versitygw bucket (POSIX backend on the test
// machine's disk, loopback HTTP) and a function deleting a committed blob.
func benchStore(b *testing.B) (blob.Store, func(digest.Digest)) {
	srv := testenv.StartS3(b)
	be := newBackend(b, srv)
	return be.store(), func(d digest.Digest) {
		key := be.prefix + "/blobs/" + string(d.Algorithm()) + "/" + d.Encoded()[:2] + "/" + d.Encoded()
		if _, err := srv.Client().DeleteObject(b.Context(), &s3api.DeleteObjectInput{Bucket: &srv.Bucket, Key: &key}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpload: a push's blob path on S3: New, one Append of the whole
// blob (parts uploaded while hashing), Commit (server-side copy to the
// content-addressed key).
func BenchmarkUpload(b *testing.B) { blobtest.BenchUpload(b, benchStore) }

// BenchmarkUploadChunked: 64 MiB in 8 MiB chunks (a big segment each) and
// in 1 MiB chunks (below S3's part minimum: small segments merged, then
// folded into big ones).
func BenchmarkUploadChunked(b *testing.B) { blobtest.BenchUploadChunked(b, benchStore, 8<<20, 1<<20) }

// BenchmarkRead: a pull's blob path on S3: Open (HEAD) and a full read
// (one GET).
func BenchmarkRead(b *testing.B) { blobtest.BenchRead(b, benchStore) }
