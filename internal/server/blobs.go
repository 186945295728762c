package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/blob/cache"
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

// cachedBlobs is an S3 store behind this replica's blob cache
// (--blob-cache-size): Open answers from the local disk when it can.
type cachedBlobs struct {
	blobStore
	cache *cache.Cache
}

func (c cachedBlobs) Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error) {
	return c.cache.Open(ctx, d)
}

// Delete removes the blobs from the store and their local copies.
func (c cachedBlobs) Delete(ctx context.Context, ds []digest.Digest) error {
	err := c.blobStore.Delete(ctx, ds)
	c.cache.Forget(ds)
	return err
}

// setupBlobCache puts the server's S3 blobs behind a local cache when
// --blob-cache-size asks for one (only the server: `hallmark gc` and
// backups read the store itself), with its metrics.
func (s *Server) setupBlobCache(reg prometheus.Registerer) error {
	n, err := s.cfg.BlobCacheBytes()
	if err != nil || n == 0 {
		return err
	}
	dir := s.cfg.BlobCacheDir
	if dir == "" {
		dir = filepath.Join(s.cfg.DataDir, "blob-cache")
	}
	c, err := cache.New(s.blobs, dir, n, s.log)
	if err != nil {
		return err
	}
	s.blobs = cachedBlobs{blobStore: s.blobs, cache: c}
	s.log.Info("blob cache", "dir", dir, "bytes", n)
	counter := func(name, help string, f func(cache.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(c.Stats())) })
	}
	reg.MustRegister(
		counter("hallmark_blob_cache_hits_total", "Blob reads this replica answered from its local blob cache.", func(st cache.Stats) int64 { return st.Hits }),
		counter("hallmark_blob_cache_misses_total", "Blob reads this replica's blob cache sent to object storage.", func(st cache.Stats) int64 { return st.Misses }),
		counter("hallmark_blob_cache_fills_total", "Blobs copied into the local blob cache while they were served.", func(st cache.Stats) int64 { return st.Fills }),
		counter("hallmark_blob_cache_evictions_total", "Blobs removed from the local blob cache to stay within --blob-cache-size.", func(st cache.Stats) int64 { return st.Evictions }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hallmark_blob_cache_bytes", Help: "Bytes held in the local blob cache."},
			func() float64 { return float64(c.Stats().Bytes) }),
	)
	return nil
}
