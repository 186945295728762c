package index_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// benchBatch is the number of jobs a worker claims at once (batchSize).
const benchBatch = 128

// queueManifest stores a signature manifest of subject in repo with the
// given signature layers (their blobs already linked), queueing its job.
func (e *env) queueManifest(repo string, subject digest.Digest, layers ...oci.Descriptor) {
	e.t.Helper()
	m := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeOCIManifest,
		Config: &oci.Descriptor{MediaType: oci.MediaTypeOCIConfig, Digest: digest.FromString("{}"), Size: 2}, Layers: layers}
	raw, _ := json.Marshal(m)
	mm := &meta.Manifest{Repository: repo, Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
	if err := e.store.PutManifest(context.Background(), mm, []string{"sha256-" + subject.Encoded() + ".sig"}); err != nil {
		e.t.Fatal(err)
	}
}

// runQueuedBatch indexes one batch of benchBatch queued jobs (timed;
// the process's CPU time added to cpu), then stops the timer and checks
// that each image of repos (repo of each) and subjects has one verified
// signature.
func (e *env) runQueuedBatch(b *testing.B, cpu *time.Duration, repos []string, subjects []digest.Digest) {
	ctx := context.Background()
	before := processCPU(b)
	if n, err := e.ix.RunBatch(ctx); err != nil || n != benchBatch {
		b.Fatalf("RunBatch = %d, %v; want a full batch", n, err)
	}
	*cpu += processCPU(b) - before
	b.StopTimer()
	for i, repo := range repos {
		sigs, err := e.store.ListSignatures(ctx, repo, subjects[i])
		if err != nil || len(sigs) != 1 || sigs[0].Status != meta.StatusVerified {
			b.Fatalf("%s@%s: %+v, %v", repo, subjects[i], sigs, err)
		}
	}
	b.StartTimer()
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBatches times e's indexing of full batches, and reports the wall
// and CPU time per signature: queue stores job i of a round (its
// signature manifest, its layers' blobs linked) and returns its image.
func (e *env) benchBatches(b *testing.B, queue func(round, i int) (repo string, subject digest.Digest)) {
	round := 0
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		round++
		repos, subjects := make([]string, benchBatch), make([]digest.Digest, benchBatch)
		for i := range benchBatch {
			repos[i], subjects[i] = queue(round, i)
		}
		runtime.GC() // the setup's garbage is not the batch's
		b.StartTimer()
		e.runQueuedBatch(b, &cpu, repos, subjects)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/sig")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*benchBatch), "cpu-ns/sig")
}

// BenchmarkIndexBatch measures a worker's first index of a full batch of
// signature manifests through a real SQLite store and blob store: the
// reads of the manifests, of the signatures already recorded and of the
// payload blobs, the verification, and the transaction that records them
// (ns/sig and cpu-ns/sig, the process's CPU time, are the costs of one
// signature). keyed: one repository, each image signed with a trusted key
// and the eleven GitLab CI annotations (the bench harness's shape, with a
// key instead of a certificate); keyless: cosign's real keyless
// signature, in a repository of its own per job (the project's policy),
// chain, SCT and SET checked.
func BenchmarkIndexBatch(b *testing.B) {
	b.Run("keyed", func(b *testing.B) {
		e := newEnv(b, true)
		e.benchBatches(b, func(round, i int) (string, digest.Digest) {
			subject := digest.FromString(fmt.Sprint("image ", round, " ", i))
			l := e.signedLayer(subject, ciAnnotations(subject.Encoded()[:40]))
			d := e.putBlob(l.payload)
			e.queueManifest("group/app", subject, oci.Descriptor{MediaType: sign.SimpleSigningMediaType, Digest: d, Size: int64(len(l.payload)), Annotations: l.ann})
			return "group/app", subject
		})
	})
	b.Run("keyless", func(b *testing.B) {
		r := loadRealKeyless(b)
		e := newEnv(b, false, r.trust)
		if _, err := e.store.CreateProject(context.Background(), auth.Project{Path: "grp/app", Visibility: auth.VisibilityPrivate}); err != nil {
			b.Fatal(err)
		}
		e.benchBatches(b, func(round, i int) (string, digest.Digest) {
			repo := fmt.Sprintf("grp/app/r%d-%d", round, i)
			e.putBlobIn(repo, r.payload)
			e.queueManifest(repo, r.subject, r.layer)
			return repo, r.subject
		})
	})
}

// TestBatchAcrossRepositories: one batch's manifests, signatures and
// layers are read at once for all its repositories, with each job's
// result what it would be alone: a layer the job's repository lacks (only
// another has it) is not read, a deleted manifest's push job records
// nothing, and a signature already recorded in one repository does not
// hide it in another.
func TestBatchAcrossRepositories(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	subject := digest.FromString("image")
	desc := func(l layer, d digest.Digest) oci.Descriptor {
		return oci.Descriptor{MediaType: sign.SimpleSigningMediaType, Digest: d, Size: int64(len(l.payload)), Annotations: l.ann}
	}
	shared := e.signedLayer(subject, map[string]string{"tag": "v1"})
	d := e.putBlobIn("a/app", shared.payload)
	e.putBlobIn("b/app", shared.payload)
	// Already recorded in a/app (an earlier batch): not decided again there.
	e.queueManifest("a/app", subject, desc(shared, d))
	if n, err := e.ix.RunBatch(ctx); err != nil || n != 1 {
		t.Fatalf("RunBatch = %d, %v", n, err)
	}
	foreign := e.signedLayer(subject, map[string]string{"tag": "v2"})
	fd := e.putBlobIn("a/app", foreign.payload) // only a/app has it
	e.queueManifest("a/app", subject, desc(shared, d), desc(foreign, fd))
	e.queueManifest("b/app", subject, desc(shared, d))
	e.queueManifest("c/app", subject, desc(foreign, fd))
	deleted := e.signedLayer(subject, map[string]string{"tag": "v3"})
	dd := e.putBlobIn("d/app", deleted.payload)
	e.queueManifest("d/app", subject, desc(deleted, dd))
	m, err := e.store.GetManifest(ctx, "d/app", "sha256-"+subject.Encoded()+".sig")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteManifest(ctx, "d/app", m.Digest); err != nil {
		t.Fatal(err)
	}
	reads := e.ix.Stats().BlobReads
	if n, err := e.ix.RunBatch(ctx); err != nil || n != 4 {
		t.Fatalf("RunBatch = %d, %v; want the 4 jobs", n, err)
	}
	if got := e.ix.Stats().BlobReads - reads; got != 2 {
		t.Errorf("%d blobs read, want 2 (the new layer in a/app, the shared one in b/app)", got)
	}
	want := map[string][]string{
		"a/app": {meta.StatusVerified, meta.StatusVerified},
		"b/app": {meta.StatusVerified},
		"c/app": {meta.StatusInvalid},
		"d/app": nil,
	}
	for repo, statuses := range want {
		sigs, err := e.store.ListSignatures(ctx, repo, subject)
		if err != nil || len(sigs) != len(statuses) {
			t.Fatalf("%s: %+v, %v; want %d signatures", repo, sigs, err, len(statuses))
		}
		for i, s := range sigs {
			if s.Status != statuses[i] {
				t.Errorf("%s: signature %d is %s (%s), want %s", repo, i, s.Status, s.StatusDetail, statuses[i])
			}
		}
	}
	sigs, _ := e.store.ListSignatures(ctx, "c/app", subject)
	if want := "signature layer " + fd.String() + " is not in repository c/app: blob not linked to repository"; sigs[0].StatusDetail != want {
		t.Errorf("layer of another repository: %q, want %q", sigs[0].StatusDetail, want)
	}
}
