package index

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Queue processing.
const (
	// batchSize jobs are claimed at once; their records are written in
	// one transaction. A transaction's commit (SQLite: the WAL's pages and
	// an fsync, under the one writer's lock) is shared by its batch.
	batchSize = 128
	// lease is how long a claim holds a job: a worker that died gives its
	// jobs up after it (a job takes milliseconds).
	lease = 2 * time.Minute
	// idlePoll: an idle worker looks at the queue this often (jobs
	// enqueued by other replicas, or by the CLI on the database).
	idlePoll = 250 * time.Millisecond
	// settleBatches bounds the batches Settle indexes itself.
	settleBatches = 4
	// progressEvery: while there is work, a progress line is logged this
	// often.
	progressEvery = 10 * time.Second
)

// Run indexes jobs from the queue with cfg.Workers goroutines until ctx
// is done, then gives up its claims. Several replicas may run it on one
// database: each job is claimed by one worker at a time.
func (ix *Indexer) Run(ctx context.Context) {
	n := ix.cfg.Workers
	if n == 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	if n < 0 {
		ix.log.Info("index: this replica runs no index workers (--index-workers); others index the queue")
		return
	}
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { ix.work(ctx) })
	}
	wg.Go(func() { ix.progress(ctx) })
	wg.Wait()
	rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ix.store.ReleaseIndexJobs(rctx, ix.owner); err != nil {
		ix.log.Warn("index: releasing claimed jobs at shutdown; they are taken up again after their lease", "lease", lease.String(), "err", err)
	}
}

func (ix *Indexer) work(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := ix.runBatch(ctx, ix.owner, "", "")
		switch {
		case err != nil && ctx.Err() == nil:
			ix.log.Error("index: running jobs; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		case n == batchSize:
			ix.wake() // more work: let another worker take part
			continue
		case n > 0:
			continue
		}
		select {
		case <-ctx.Done():
		case <-ix.kick:
		case <-time.After(idlePoll):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// progress logs what the workers did while the queue is not empty.
func (ix *Indexer) progress(ctx context.Context) {
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	last := ix.Stats()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := ix.Stats()
		pending, err := ix.store.PendingIndexJobs(ctx, "", "")
		if err != nil || (pending == 0 && now.Jobs == last.Jobs) {
			continue
		}
		ix.log.Info("index: progress", "jobs_done", now.Jobs-last.Jobs, "signatures", now.Signatures-last.Signatures,
			"per_second", float64(now.Signatures-last.Signatures)/progressEvery.Seconds(), "pending_jobs", pending)
		last = now
	}
}

// runBatch claims up to batchSize jobs as owner (with repo, only of that
// image), indexes them and completes them with their records in one
// transaction. It returns how many jobs it claimed. A job that fails
// stays claimed and is run again when its lease ends.
func (ix *Indexer) runBatch(ctx context.Context, owner, repo string, subject digest.Digest) (int, error) {
	jobs, err := ix.store.ClaimIndexJobs(ctx, owner, batchSize, lease, repo, subject)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	// The generation is read before the policies: a status decided with
	// a policy older than the generation it records cannot happen.
	gen, err := ix.store.IndexGeneration(ctx)
	if err != nil {
		return len(jobs), err
	}
	b := newBatch(gen)
	ms, err := ix.store.JobManifests(ctx, jobs)
	if err != nil {
		return len(jobs), err
	}
	sms := make([]*sigManifest, len(jobs)) // nil: the manifest is gone
	for i, j := range jobs {
		if ms[i] != nil {
			sms[i] = parseSigManifest(ms[i], j.Subject, j.Generation)
		}
	}
	ix.read(ctx, b, sms)
	var sigs []meta.Signature
	done := jobs[:0:0]
	for i, j := range jobs {
		s, err := ix.indexJob(ctx, j, sms[i], b)
		if err != nil {
			if ctx.Err() != nil {
				return len(jobs), ctx.Err()
			}
			ix.stats.failures.Add(1)
			ix.log.Warn("index: job failed; it runs again after its lease", "repository", j.Repository, "manifest", j.Manifest, "lease", lease.String(), "err", err)
			continue
		}
		sigs = append(sigs, s...)
		done = append(done, j)
	}
	// A deleted manifest's signature that another manifest of the batch
	// carries was decided again from that one, whichever job came first.
	sigs = slices.DeleteFunc(sigs, func(s meta.Signature) bool {
		return s.StatusDetail == goneDetail && b.decided[s.Repository+"\x00"+s.Key]
	})
	added, err := ix.store.FinishIndexJobs(ctx, owner, done, sigs)
	if err != nil {
		return len(jobs), err
	}
	ix.stats.jobs.Add(int64(len(done)))
	if len(sigs) > 0 {
		ix.log.Debug("index: jobs done", "jobs", len(done), "signatures", len(sigs), "new", added, "generation", gen)
	}
	return len(jobs), nil
}

// indexJob returns the records of job j, whose manifest is sm (nil: it
// is gone), decided in b.
func (ix *Indexer) indexJob(ctx context.Context, j meta.IndexJob, sm *sigManifest, b *batch) ([]meta.Signature, error) {
	if sm == nil {
		return ix.gone(ctx, j)
	}
	pol := b.policies[j.Repository]
	if pol == nil {
		var err error
		if pol, err = ix.policy(ctx, j.Repository); err != nil {
			return nil, err
		}
		b.policies[j.Repository] = pol
	}
	return ix.indexManifest(ctx, sm, pol, b), nil
}

// goneDetail is the status detail of a signature whose manifest was
// deleted before it could be judged again.
const goneDetail = "its signature manifest was deleted, so it was not judged again under the current trust policy"

// gone handles the job of a deleted signature manifest: nothing to index
// for a push; a re-evaluation cannot read its signatures again, so they
// become unverified (keeping their generation: a manifest that still
// carries one of them decides it again).
func (ix *Indexer) gone(ctx context.Context, j meta.IndexJob) ([]meta.Signature, error) {
	if j.Generation == 0 {
		return nil, nil
	}
	list, err := ix.store.ListSignatures(ctx, j.Repository, j.Subject)
	if err != nil {
		return nil, err
	}
	var out []meta.Signature
	for _, s := range list {
		if s.Manifest != j.Manifest || s.Generation >= j.Generation || s.Status == meta.StatusInvalid {
			continue
		}
		s.Status = meta.StatusUnverified
		s.StatusDetail = goneDetail
		out = append(out, s)
	}
	return out, nil
}

// Pending counts the signature manifests of an image not indexed yet (or
// waiting to be judged again).
func (ix *Indexer) Pending(ctx context.Context, repo string, subject digest.Digest) (int, error) {
	return ix.store.PendingIndexJobs(ctx, repo, subject)
}

// Settle indexes the pending jobs of one image now, in the caller's
// goroutine (at most settleBatches batches), then waits for those other
// workers hold, until none is pending or ctx ends. A check that needs the
// verdict on signatures pushed a moment ago, such as a pull that requires
// a verified signature, calls it (with a deadline) before looking.
func (ix *Indexer) Settle(ctx context.Context, repo string, subject digest.Digest) error {
	owner := ix.owner + "/settle"
	for i := 0; ; i++ {
		if i < settleBatches {
			n, err := ix.runBatch(ctx, owner, repo, subject)
			if err != nil {
				return err
			}
			if n > 0 {
				continue
			}
		}
		p, err := ix.store.PendingIndexJobs(ctx, repo, subject)
		if err != nil || p == 0 {
			return err
		}
		sleep(ctx, 20*time.Millisecond)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%d signature manifests of %s@%s are still being indexed: %w", p, repo, subject, err)
		}
	}
}

// PolicyView is a project's trust policy as the API and the CLI show it.
type PolicyView struct {
	Project   string     `json:"project"`
	Version   int64      `json:"version"` // 0: never set, the default applies
	Updated   *time.Time `json:"updated,omitempty"`
	UpdatedBy string     `json:"updatedBy,omitempty"`
	// Policy is the document as set ({} when never set).
	Policy *Policy `json:"policy"`
	// Effective is how it applies, defaults filled in.
	Effective Effective `json:"effective"`
	// Reevaluating is, after a change, how many signature manifests were
	// queued to be judged again.
	Reevaluating int `json:"reevaluating,omitempty"`
}

func (ix *Indexer) view(tp meta.TrustPolicy) (PolicyView, error) {
	p, e, err := ix.effective(tp, tp.Project)
	if err != nil {
		return PolicyView{}, err
	}
	v := PolicyView{Project: tp.Project, Version: tp.Version, UpdatedBy: tp.UpdatedBy, Policy: p, Effective: e}
	if tp.Version > 0 {
		u := tp.Updated.UTC()
		v.Updated = &u
	}
	return v, nil
}

// Policy returns project's trust policy (meta.ErrProjectNotFound when
// there is no such project).
func (ix *Indexer) Policy(ctx context.Context, project string) (PolicyView, error) {
	tp, err := ix.store.TrustPolicy(ctx, project)
	if err != nil {
		return PolicyView{}, err
	}
	return ix.view(tp)
}

// SetPolicy validates p and stores it as project's next version; the
// project's signatures are then judged again in the background (the
// queue). by names who set it (for the record).
func (ix *Indexer) SetPolicy(ctx context.Context, project string, p *Policy, by string) (PolicyView, error) {
	if err := p.Validate(); err != nil {
		return PolicyView{}, err
	}
	if ix.cfg.Roots != nil {
		for _, n := range p.Roots {
			if _, ok := ix.cfg.Roots[n]; !ok {
				return PolicyView{}, fmt.Errorf("%w: root %q is not a trust root of this server (it has: %s; import one with --trusted-root NAME=FILE)",
					ErrInvalidPolicy, n, strings.Join(slices.Sorted(maps.Keys(ix.cfg.Roots)), ", "))
			}
		}
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return PolicyView{}, err
	}
	tp, n, err := ix.store.SetTrustPolicy(ctx, project, doc, by)
	if err != nil {
		return PolicyView{}, err
	}
	ix.log.Info("index: trust policy set; re-evaluating the project's signatures", "project", project, "version", tp.Version, "by", by, "manifests", n)
	ix.wake()
	v, err := ix.view(tp)
	v.Reevaluating = n
	return v, err
}

// Rebuild judges again every indexed signature of the repositories under
// path ("": all) in the background: the same work as a fresh index,
// idempotent. It returns the new generation and how many signature
// manifests were queued.
func (ix *Indexer) Rebuild(ctx context.Context, path string) (int64, int, error) {
	gen, n, err := ix.store.Reindex(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	ix.log.Info("index: rebuild queued", "path", path, "generation", gen, "manifests", n)
	ix.wake()
	return gen, n, nil
}
