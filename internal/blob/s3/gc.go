package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// Delete removes the blobs ds (garbage collection), up to 1000 keys per
// request; a blob that is not there is no error. On a bucket with
// versioning the objects become delete markers and their versions stay
// until the bucket's lifecycle rules expire them.
func (s *Store) Delete(ctx context.Context, ds []digest.Digest) error {
	keys := make([]string, 0, len(ds))
	var errs []error
	for _, d := range ds {
		k, err := s.blobKey(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %q: %w", d, err))
			continue
		}
		keys = append(keys, k)
	}
	return errors.Join(append(errs, s.deleteKeys(ctx, keys))...)
}

// List calls fn for every committed blob, in key order, until fn returns
// an error (which List returns). It reads one listing page (1000 keys) at
// a time.
func (s *Store) List(ctx context.Context, fn func(blob.Info) error) error {
	root := s.key("blobs/")
	p := s3api.NewListObjectsV2Paginator(s.client, &s3api.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &root})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.wrap(err, "list blobs")
		}
		for _, o := range page.Contents {
			d, ok := blob.ParseBlobPath(strings.TrimPrefix(aws.ToString(o.Key), root))
			if !ok {
				continue
			}
			if err := fn(blob.Info{Digest: d, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}
