package s3

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// listed is one object of a listing.
type listed struct {
	key      string
	modified time.Time
}

// list returns the objects whose keys start with prefix.
func (s *Store) list(ctx context.Context, prefix string) ([]listed, error) {
	var out []listed
	p := s3api.NewListObjectsV2Paginator(s.client, &s3api.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap(err, "list objects")
		}
		for _, o := range page.Contents {
			out = append(out, listed{key: aws.ToString(o.Key), modified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

// deleteKeys removes keys, up to 1000 per request.
func (s *Store) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		ids := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.client.DeleteObjects(ctx, &s3api.DeleteObjectsInput{Bucket: &s.cfg.Bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return s.wrap(err, "delete objects")
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				return s.wrap(&deleteError{key: aws.ToString(e.Key), code: aws.ToString(e.Code), msg: aws.ToString(e.Message)}, "delete objects")
			}
		}
		keys = keys[n:]
	}
	return nil
}

type deleteError struct{ key, code, msg string }

func (e *deleteError) Error() string { return "delete " + e.key + ": " + e.code + ": " + e.msg }

// deletePrefix removes every object under prefix. Unless strict, failures
// are ignored (the caller has nothing left to do about them).
func (s *Store) deletePrefix(ctx context.Context, prefix string, strict bool) error {
	objs, err := s.list(ctx, prefix)
	if err == nil {
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = o.key
		}
		err = s.deleteKeys(ctx, keys)
	}
	if !strict {
		return nil
	}
	return err
}

// PurgeUploads removes upload sessions not touched for longer than age
// (their state and segments, and multipart uploads of segments left by a
// crash in the middle of a chunk) and returns how many sessions it removed.
func (s *Store) PurgeUploads(ctx context.Context, age time.Duration) (int, error) {
	cutoff := s.cfg.Now().Add(-age)
	root := s.key("uploads/")
	objs, err := s.list(ctx, root)
	if err != nil {
		return 0, err
	}
	type session struct {
		keys   []string
		newest time.Time
	}
	sessions := map[string]*session{}
	for _, o := range objs {
		id, _, _ := strings.Cut(strings.TrimPrefix(o.key, root), "/")
		ss := sessions[id]
		if ss == nil {
			ss = &session{}
			sessions[id] = ss
		}
		ss.keys = append(ss.keys, o.key)
		if o.modified.After(ss.newest) {
			ss.newest = o.modified
		}
	}
	var keys []string
	n := 0
	for _, ss := range sessions {
		if ss.newest.Before(cutoff) {
			keys = append(keys, ss.keys...)
			n++
		}
	}
	if err := s.deleteKeys(ctx, keys); err != nil {
		return 0, err
	}
	p := s3api.NewListMultipartUploadsPaginator(s.client, &s3api.ListMultipartUploadsInput{Bucket: &s.cfg.Bucket, Prefix: &root})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return n, s.wrap(err, "list multipart uploads")
		}
		for _, u := range page.Uploads {
			if aws.ToTime(u.Initiated).Before(cutoff) {
				s.abort(ctx, aws.ToString(u.Key), u.UploadId)
			}
		}
	}
	return n, nil
}
