package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/gc"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
)

// gcMetrics are the collector's Prometheus metrics.
type gcMetrics struct {
	blobs, bytes, manifests, tags *prometheus.CounterVec
	sweeps                        *prometheus.CounterVec
	pending                       *prometheus.GaugeVec
	duration                      prometheus.Gauge
}

func newGCMetrics(reg prometheus.Registerer) *gcMetrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &gcMetrics{
		blobs:     counter("hallmark_gc_blobs_deleted_total", "Blobs garbage collection deleted (no manifest referenced them for --gc-grace)."),
		bytes:     counter("hallmark_gc_bytes_freed_total", "Bytes of the blobs garbage collection deleted."),
		manifests: counter("hallmark_gc_manifests_deleted_total", "Manifests garbage collection deleted (untagged, with their signatures)."),
		tags:      counter("hallmark_gc_tags_removed_total", "Tags retention policies removed."),
		sweeps:    counter("hallmark_gc_sweeps_total", "Garbage collection sweeps, by result (ok, error).", "result"),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hallmark_gc_tasks_pending",
			Help: "Garbage collection tasks waiting after the last sweep, by queue: blob and manifest reviews (due or not) and blob deletions not finished."}, []string{"queue"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "hallmark_gc_last_sweep_seconds", Help: "How long the last garbage collection sweep took."}),
	}
	reg.MustRegister(m.blobs, m.bytes, m.manifests, m.tags, m.sweeps, m.pending, m.duration)
	return m
}

func (m *gcMetrics) record(r *gc.Result, err error, took time.Duration) {
	if r != nil {
		m.blobs.WithLabelValues().Add(float64(r.BlobsDeleted))
		m.bytes.WithLabelValues().Add(float64(r.BytesFreed))
		m.manifests.WithLabelValues().Add(float64(r.ManifestsDeleted))
		m.tags.WithLabelValues().Add(float64(r.TagsRemoved))
	}
	m.duration.Set(took.Seconds())
	if err != nil {
		m.sweeps.WithLabelValues("error").Inc()
		return
	}
	m.sweeps.WithLabelValues("ok").Inc()
	m.pending.WithLabelValues("blobs").Set(float64(r.Pending.Blobs))
	m.pending.WithLabelValues("manifests").Set(float64(r.Pending.Manifests))
	m.pending.WithLabelValues("deletions").Set(float64(r.Pending.Deletions))
}

// gcConfig is the collector's configuration from the server's.
func gcConfig(cfg config.Server) gc.Config {
	return gc.Config{Grace: cfg.GCGrace, UntaggedManifests: cfg.GCUntaggedManifests}
}

// setupGC builds the collector and returns the retention API (served
// under gc.RetentionPath).
func (s *Server) setupGC(store *sqlstore.Store, reg prometheus.Registerer) (http.Handler, error) {
	gcfg := gcConfig(s.cfg)
	gcfg.Quarantine = store // quarantined evidence stays
	c, err := gc.New(store, s.blobs, s.log, gcfg)
	if err != nil {
		return nil, err
	}
	s.gc, s.gcMetrics = c, newGCMetrics(reg)
	var authz gc.Authorizer
	if s.auth != nil {
		authz = s.auth.APIAuthorizer()
	}
	return gc.NewAPI(store, c, authz, s.log), nil
}

// collect runs the garbage collection worker: a sweep every --gc-interval
// (none when it is 0), and, whatever the interval, blob deletions a
// crashed collector left are finished at start and hourly (pushes of
// their digests wait for them).
func (s *Server) collect(ctx context.Context) {
	every := s.cfg.GCInterval
	if every <= 0 {
		s.log.Warn("garbage collection worker is off (--gc-interval 0): run hallmark gc to collect")
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	first := true
	for {
		if s.cfg.GCInterval > 0 && !first {
			s.sweep(ctx)
		} else if n, err := s.gc.FinishInterrupted(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("gc: finishing interrupted blob deletions", "err", err)
		} else if n > 0 {
			s.log.Info("gc: finished interrupted blob deletions", "count", n)
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sweep(ctx context.Context) {
	start := time.Now()
	r, err := s.gc.Sweep(ctx, false)
	s.gcMetrics.record(r, err, time.Since(start))
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("gc: sweep failed; the next one retries", "err", err)
		}
		return
	}
	lv := slog.LevelDebug
	if r.BlobsDeleted+r.ManifestsDeleted+r.TagsRemoved+r.DeletionsFinished > 0 {
		lv = slog.LevelInfo
	}
	s.log.Log(ctx, lv, "gc: sweep done", "blobs", r.BlobsDeleted, "bytes", r.BytesFreed, "manifests", r.ManifestsDeleted,
		"tags", r.TagsRemoved, "finished_deletions", r.DeletionsFinished, "pending_blobs", r.Pending.Blobs,
		"pending_manifests", r.Pending.Manifests, "took", time.Since(start).Round(time.Millisecond).String())
	for _, e := range r.Errors {
		s.log.Warn("gc: retention policy failed", "err", e)
	}
}

// GCOptions are `hallmark gc`'s.
type GCOptions struct {
	Database
	BlobURL           string // "": the filesystem under DataDir
	Grace             time.Duration
	UntaggedManifests bool
	DryRun            bool
	Orphans           bool // first list the storage for objects no row names
}

// GCStore is the metadata database OpenGC opens (policies are read and
// stored through it).
type GCStore = sqlstore.Store

// OpenGC opens the metadata database and the blob store of a server's
// configuration for the garbage collection and retention commands (the
// server may be running: the collector is safe alongside it). close must
// be called.
func OpenGC(ctx context.Context, db Database, blobURL string, cfg gc.Config, log *slog.Logger) (c *gc.Collector, store *sqlstore.Store, close func() error, err error) {
	if err := db.checkDataDir(); err != nil {
		return nil, nil, nil, err
	}
	scfg := config.Defaults()
	scfg.DataDir, scfg.BlobURL = db.DataDir, blobURL
	blobs, err := openBlobs(ctx, scfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err = db.open(ctx, 2)
	if err != nil {
		return nil, nil, nil, err
	}
	if cfg.Quarantine == nil {
		cfg.Quarantine = store // quarantined evidence stays
	}
	c, err = gc.New(store, blobs, log, cfg)
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	return c, store, store.Close, nil
}

// RunGC runs one sweep (`hallmark gc`): with Orphans it first queues the
// stored objects no row names (Result.OrphansQueued; a dry run only
// counts them).
func RunGC(ctx context.Context, o GCOptions, log *slog.Logger) (*gc.Result, error) {
	c, _, closeFn, err := OpenGC(ctx, o.Database, o.BlobURL, gc.Config{Grace: o.Grace, UntaggedManifests: o.UntaggedManifests}, log)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	orphans := 0
	if o.Orphans {
		if orphans, err = c.ScanOrphans(ctx, o.DryRun); err != nil {
			return nil, fmt.Errorf("scanning the blob store for orphans: %w", err)
		}
	}
	r, err := c.Sweep(ctx, o.DryRun)
	if r != nil {
		r.OrphansQueued = orphans
	}
	return r, err
}
