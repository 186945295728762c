package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Store is what the collector needs of the metadata database
// (internal/meta/sqlstore implements it).
type Store interface {
	CollectBlobs(ctx context.Context, o meta.CollectOptions) (meta.BlobBatch, error)
	FinishBlobDeletions(ctx context.Context, ds []digest.Digest) error
	ClaimBlobDeletions(ctx context.Context, now, staleBefore time.Time, limit int, dryRun bool) ([]meta.BlobDeletion, error)
	CollectManifests(ctx context.Context, o meta.CollectOptions) (meta.ManifestBatch, error)
	GCPending(ctx context.Context) (meta.GCPending, error)
	QueueUnknownBlobs(ctx context.Context, objects map[digest.Digest]time.Time, dryRun bool) (int, error)
	RetentionStore
	RecordAudit(ctx context.Context, e auth.AuditEvent) error
}

// Blobs is what the collector needs of the blob store.
type Blobs interface {
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	Delete(ctx context.Context, ds []digest.Digest) error
	List(ctx context.Context, fn func(blob.Info) error) error
}

// Quarantine says which manifests are held as evidence: garbage
// collection and retention leave them and their tags alone. (The
// quarantine itself is another package's; the server wires it.)
type Quarantine interface {
	Quarantined(ctx context.Context, repo string, d digest.Digest) (bool, error)
}

// Defaults.
const (
	// DefaultGrace is how long after the event that made something
	// unreferenced (an upload not yet referenced, an untag, a delete)
	// garbage collection waits: GitLab's default. It must exceed the
	// longest push (blobs first, the manifest last, by a slow CI job) and
	// the longest backup (which copies the blobs of its database snapshot
	// afterwards).
	DefaultGrace = 24 * time.Hour
	// DefaultBatch is the tasks one collection transaction claims. (25
	// instead was tried: the sweep took twice as long, and a push's p99
	// during it was no better: BENCHMARKS.md.)
	DefaultBatch = 100
	// DefaultRetentionEvery is how often each project's policy runs.
	DefaultRetentionEvery = time.Hour
	// deleteTimeout bounds one batch of object deletions: a collector
	// issues no delete after it, so a tombstone older than staleAfter
	// may be taken over safely.
	deleteTimeout = 20 * time.Second
	staleAfter    = 30 * time.Second
	// listed bounds the items a Result lists (its counts are complete).
	listed = 1000
)

// Config configures a Collector.
type Config struct {
	Grace             time.Duration // default DefaultGrace
	UntaggedManifests bool          // also collect untagged manifests
	Batch             int           // tasks per transaction; default DefaultBatch
	// Pause is the fraction of a batch's time the collector sleeps after
	// it, so pushes keep most of the database and the disk while a large
	// backlog is swept (default 1: at most half the time sweeping;
	// negative: no pause).
	Pause          float64
	RetentionEvery time.Duration // default DefaultRetentionEvery
	Quarantine     Quarantine    // nil: nothing is quarantined
	Now            func() time.Time
}

// Collector runs sweeps.
type Collector struct {
	store Store
	blobs Blobs
	log   *slog.Logger
	cfg   Config
}

// New returns a collector.
func New(store Store, blobs Blobs, log *slog.Logger, cfg Config) (*Collector, error) {
	if store == nil || blobs == nil {
		return nil, errors.New("gc: a metadata store and a blob store are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Pause == 0 {
		cfg.Pause = 1
	}
	if cfg.RetentionEvery <= 0 {
		cfg.RetentionEvery = DefaultRetentionEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Collector{store: store, blobs: blobs, log: log, cfg: cfg}, nil
}

// Result is what one sweep did, or in a dry run would do. The counts are
// complete; the lists hold the first 1000 items each.
type Result struct {
	DryRun            bool
	BlobsDeleted      int
	BytesFreed        int64
	Blobs             []meta.BlobDeletion
	ManifestsDeleted  int
	Manifests         []meta.DeletedManifest
	TagsRemoved       int
	Tags              []meta.RetentionTag
	DeletionsFinished int // blob deletions a crashed collector left, finished
	OrphansQueued     int
	Pending           meta.GCPending // after the sweep
	Errors            []string       // per-project retention failures (the sweep went on)
}

// Sweep runs one collection: it finishes blob deletions left by a crashed
// collector, runs the retention policies that are due, collects due
// untagged manifests (if configured), then due blobs, until no review is
// due. With dryRun it changes nothing and reports what it would do (blobs
// a manifest deletion would free are due only a grace period later, so
// it does not report them).
func (c *Collector) Sweep(ctx context.Context, dryRun bool) (*Result, error) {
	r := &Result{DryRun: dryRun}
	if err := c.finishStale(ctx, r); err != nil {
		return r, fmt.Errorf("gc: finishing interrupted deletions: %w", err)
	}
	if err := c.retention(ctx, r); err != nil {
		return r, fmt.Errorf("gc: retention: %w", err)
	}
	if c.cfg.UntaggedManifests {
		if err := c.manifests(ctx, r); err != nil {
			return r, fmt.Errorf("gc: manifests: %w", err)
		}
	}
	if err := c.collectBlobs(ctx, r); err != nil {
		return r, fmt.Errorf("gc: blobs: %w", err)
	}
	p, err := c.store.GCPending(ctx)
	if err != nil {
		return r, err
	}
	r.Pending = p
	return r, nil
}

func (c *Collector) options(dryRun bool) meta.CollectOptions {
	o := meta.CollectOptions{Now: c.cfg.Now(), Grace: c.cfg.Grace, Limit: c.cfg.Batch, DryRun: dryRun}
	if q := c.cfg.Quarantine; q != nil {
		o.Keep = q.Quarantined
	}
	return o
}

// pause sleeps after a batch that took since, per Config.Pause.
func (c *Collector) pause(ctx context.Context, since time.Time) error {
	if c.cfg.Pause < 0 {
		return ctx.Err()
	}
	t := time.NewTimer(time.Duration(float64(time.Since(since)) * c.cfg.Pause))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FinishInterrupted finishes the blob deletions a crashed (or stuck)
// collector left: what every sweep does first. It returns how many.
func (c *Collector) FinishInterrupted(ctx context.Context) (int, error) {
	r := &Result{}
	err := c.finishStale(ctx, r)
	return r.DeletionsFinished, err
}

// finishStale takes over blob deletions whose collector is gone.
func (c *Collector) finishStale(ctx context.Context, r *Result) error {
	for {
		now := c.cfg.Now()
		dels, err := c.store.ClaimBlobDeletions(ctx, now, now.Add(-staleAfter), c.cfg.Batch, r.DryRun)
		if err != nil || len(dels) == 0 {
			return err
		}
		if r.DryRun {
			r.DeletionsFinished += len(dels)
			return nil // listing only: the same ones would come again
		}
		if err := c.deleteObjects(ctx, dels); err != nil {
			return err
		}
		r.DeletionsFinished += len(dels)
		if len(dels) < c.cfg.Batch {
			return nil
		}
	}
}

// deleteObjects deletes the objects of tombstoned blobs, within
// deleteTimeout, then their tombstones. On failure the tombstones stay and
// a later sweep finishes them.
func (c *Collector) deleteObjects(ctx context.Context, dels []meta.BlobDeletion) error {
	ds := make([]digest.Digest, len(dels))
	for i, d := range dels {
		ds[i] = d.Digest
	}
	dctx, cancel := context.WithTimeout(ctx, deleteTimeout)
	err := c.blobs.Delete(dctx, ds)
	cancel()
	if err != nil {
		return fmt.Errorf("deleting %d blob objects (a later sweep retries): %w", len(ds), err)
	}
	return c.store.FinishBlobDeletions(ctx, ds)
}

// collectBlobs runs blob batches until none is due.
func (c *Collector) collectBlobs(ctx context.Context, r *Result) error {
	o := c.options(r.DryRun)
	for {
		start := time.Now()
		b, err := c.store.CollectBlobs(ctx, o)
		if err != nil || b.Reviewed == 0 {
			return err
		}
		var bytes int64
		n := 0
		for i, d := range b.Deleted {
			if d.Size < 0 {
				// No row named it: an object whose link never came, or
				// nothing at all.
				size, err := c.blobs.Stat(ctx, d.Digest)
				if errors.Is(err, blob.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				b.Deleted[i].Size = size
			}
			n++
			bytes += b.Deleted[i].Size
			if len(r.Blobs) < listed {
				r.Blobs = append(r.Blobs, b.Deleted[i])
			}
		}
		if !r.DryRun && len(b.Deleted) > 0 {
			if err := c.deleteObjects(ctx, b.Deleted); err != nil {
				return err
			}
			c.audit(ctx, auth.AuditEvent{Action: AuditBlobs, Detail: fmt.Sprintf("deleted %d unreferenced blobs (%d bytes)%s", n, bytes, sample(b.Deleted, func(d meta.BlobDeletion) string { return d.Digest.String() }))})
		}
		r.BlobsDeleted += n
		r.BytesFreed += bytes
		if b.Reviewed < o.Limit {
			return nil
		}
		if r.DryRun {
			o.After = b.Next
		}
		if err := c.pause(ctx, start); err != nil {
			return err
		}
	}
}

// manifests runs manifest batches until none is due.
func (c *Collector) manifests(ctx context.Context, r *Result) error {
	o := c.options(r.DryRun)
	for {
		start := time.Now()
		b, err := c.store.CollectManifests(ctx, o)
		if err != nil || b.Reviewed == 0 {
			return err
		}
		for _, m := range b.Deleted {
			if len(r.Manifests) < listed {
				r.Manifests = append(r.Manifests, m)
			}
		}
		r.ManifestsDeleted += len(b.Deleted)
		if !r.DryRun && len(b.Deleted) > 0 {
			c.audit(ctx, auth.AuditEvent{Action: AuditManifests, Detail: fmt.Sprintf("deleted %d untagged manifests with their signatures%s", len(b.Deleted),
				sample(b.Deleted, func(m meta.DeletedManifest) string { return m.Repository + "@" + m.Digest.String() }))})
		}
		if b.Reviewed < o.Limit {
			return nil
		}
		if r.DryRun {
			o.After = b.Next
		}
		if err := c.pause(ctx, start); err != nil {
			return err
		}
	}
}

// Audit actions of garbage collection and retention (actor "gc").
const (
	AuditBlobs     = "gc.blobs"
	AuditManifests = "gc.manifests"
	AuditRetention = "retention"
	AuditPolicy    = "retention.policy" // a policy set or removed
	actor          = "gc"
)

// audit records e as the collector's; a failure is logged (the deletion
// it records has happened).
func (c *Collector) audit(ctx context.Context, e auth.AuditEvent) {
	if e.Actor == "" {
		e.Actor, e.ActorKind = actor, "system"
	}
	e.Time = c.cfg.Now()
	if err := c.store.RecordAudit(context.WithoutCancel(ctx), e); err != nil {
		c.log.ErrorContext(ctx, "recording a garbage collection audit event", "action", e.Action, "err", err)
	}
	c.log.InfoContext(ctx, "gc: "+e.Detail, "action", e.Action, "repository", e.Repository)
}

// sample renders the first few of xs for an audit detail.
func sample[T any](xs []T, name func(T) string) string {
	const n = 5
	var parts []string
	for _, x := range xs[:min(n, len(xs))] {
		parts = append(parts, name(x))
	}
	s := ": " + strings.Join(parts, ", ")
	if len(xs) > n {
		s += fmt.Sprintf(", and %d more", len(xs)-n)
	}
	return s
}

// ScanOrphans lists the blob store and queues a review for every object
// no blob row, review or deletion names, due a grace period after its
// modification time. It returns how many it found (with dryRun it queues
// none).
func (c *Collector) ScanOrphans(ctx context.Context, dryRun bool) (int, error) {
	queued := 0
	page := map[digest.Digest]time.Time{}
	flush := func() error {
		n, err := c.store.QueueUnknownBlobs(ctx, page, dryRun)
		queued += n
		clear(page)
		return err
	}
	err := c.blobs.List(ctx, func(i blob.Info) error {
		page[i.Digest] = i.Modified
		if len(page) >= c.cfg.Batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return queued, err
}
