package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
	blobs3 "github.com/hallmark-dev/hallmark/internal/blob/s3"
	"github.com/hallmark-dev/hallmark/internal/config"
)

// blobStore is what the server needs of a blob driver: the store itself,
// the janitor's purge of abandoned uploads, the readiness probe and
// garbage collection's Delete and List.
type blobStore interface {
	blob.Store
	PurgeUploads(ctx context.Context, age time.Duration) (int, error)
	Ping(ctx context.Context) error
	Delete(ctx context.Context, ds []digest.Digest) error
	List(ctx context.Context, fn func(blob.Info) error) error
}

// redirectExpiry is how long a presigned blob URL (--blob-redirect) is
// valid: long enough for a slow client to start, short enough that a
// leaked URL soon stops working.
const redirectExpiry = 15 * time.Minute

// openBlobs builds the blob driver: the filesystem under the data dir, or
// S3 when --blob-url is set. An S3 store that does not answer yet is used
// anyway (readiness reports it); a bucket that answers with an error (it
// does not exist, access denied) stops the start.
func openBlobs(ctx context.Context, cfg config.Server, log *slog.Logger) (blobStore, error) {
	if cfg.BlobURL == "" {
		return blobfs.New(filepath.Join(cfg.DataDir, "blobs"))
	}
	scfg, err := blobs3.ParseURL(cfg.BlobURL)
	if err != nil {
		return nil, err
	}
	if cfg.BlobRedirect {
		scfg.Redirect = redirectExpiry
	}
	s, err := blobs3.New(ctx, scfg)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch err := s.Ping(pctx); {
	case err == nil:
		log.Info("blob store", "store", s.String(), "redirect", cfg.BlobRedirect)
	case errors.Is(err, blob.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		log.Warn("blob store does not answer yet; the server is not ready until it does", "store", s.String(), "err", err)
	default:
		return nil, fmt.Errorf("%w (check the bucket name, endpoint and credentials)", err)
	}
	return s, nil
}
