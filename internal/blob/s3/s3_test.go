package s3_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

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
