package metatest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
)

// sigManifest is a signature manifest of subject in repo: tagged
// "sha256-<hex>.sig" (the tag to push it with is returned).
func sigManifest(t *testing.T, s *sqlstore.Store, repo, seed string, subject digest.Digest) (*meta.Manifest, []string) {
	t.Helper()
	return manifest(t, s, repo, seed, true, ""), []string{"sha256-" + subject.Encoded() + ".sig"}
}

func pending(t *testing.T, s *sqlstore.Store, repo string, subject digest.Digest) int {
	t.Helper()
	n, err := s.PendingIndexJobs(ctx, repo, subject)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// testIndexQueue: a signature manifest's push enqueues its indexing job in
// the push's transaction (durable across a reopen: another process finds
// it); a claim holds a job until it is finished, released, or its lease
// expires; a job asked for again while claimed runs once more; finishing
// records the signatures and completes the job together.
func testIndexQueue(t *testing.T, b Backend) {
	s, db := newStore(t, b)
	img := digest.FromString("image")
	sm, tags := sigManifest(t, s, "app", "sig1", img)
	if err := s.PutManifest(ctx, manifest(t, s, "app", "plain", true, ""), []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, s, "", ""); n != 0 {
		t.Fatalf("a plain manifest enqueued %d jobs", n)
	}
	if err := s.PutManifest(ctx, sm, tags); err != nil {
		t.Fatal(err)
	}
	// The same manifest as the signature manifest of a second image.
	img2 := digest.FromString("image 2")
	if err := s.PutManifest(ctx, sm, []string{"sha256-" + img2.Encoded() + ".sig"}); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, s, "app", img2); n != 1 {
		t.Fatalf("pending for the second image = %d, want 1", n)
	}
	drainImage(t, s, "app", img2)
	// A referrer of a cosign signature type is a signature manifest too.
	ref := manifest(t, s, "app", "referrer", true, img)
	ref.ArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	if err := s.PutManifest(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, db) // another process or replica
	if n := pending(t, s2, "app", img); n != 2 {
		t.Fatalf("pending for the image = %d, want 2", n)
	}
	if n := pending(t, s2, "app", digest.FromString("other")); n != 0 {
		t.Fatalf("pending for another image = %d", n)
	}

	jobs, err := s.ClaimIndexJobs(ctx, "w1", 10, time.Minute, "", "")
	if err != nil || len(jobs) != 2 {
		t.Fatalf("claim = %+v, %v", jobs, err)
	}
	j := jobs[0]
	if j.Repository != "app" || j.Manifest != sm.Digest || j.Subject != img || j.Generation != 0 || j.ID == 0 || jobs[1].Manifest != ref.Digest {
		t.Fatalf("job %+v", j)
	}
	if more, err := s2.ClaimIndexJobs(ctx, "w2", 10, time.Minute, "", ""); err != nil || len(more) != 0 {
		t.Fatalf("claimed jobs another worker holds: %+v, %v", more, err)
	}
	// Pushed again while w1 runs it: w1's finish must not complete it.
	if err := s.PutManifest(ctx, sm, tags); err != nil {
		t.Fatal(err)
	}
	sig := meta.Signature{Repository: "app", Subject: img, Manifest: sm.Digest, Layer: digest.FromString("l"), Key: "k1", Kind: "cosign",
		Status: meta.StatusUnverified, StatusDetail: "first", Annotations: map[string]string{"a": "1"}, CertExtensions: map[string]string{"1.2": "x"}}
	if n, err := s.FinishIndexJobs(ctx, "w1", jobs, []meta.Signature{sig}); err != nil || n != 1 {
		t.Fatalf("finish = %d, %v", n, err)
	}
	if n := pending(t, s, "app", img); n != 1 {
		t.Fatalf("pending after finishing = %d, want the re-pushed job", n)
	}
	again, err := s2.ClaimIndexJobs(ctx, "w2", 10, time.Minute, "app", img)
	if err != nil || len(again) != 1 || again[0].ID != j.ID || again[0].Seq == j.Seq {
		t.Fatalf("claim of the re-pushed job = %+v, %v", again, err)
	}
	// A known signature gets the new status, detail and generation; its
	// annotations stay.
	sig.Status, sig.StatusDetail, sig.Generation, sig.Annotations = meta.StatusVerified, "second", 3, map[string]string{"b": "2"}
	if n, err := s2.FinishIndexJobs(ctx, "w2", again, []meta.Signature{sig}); err != nil || n != 0 {
		t.Fatalf("finish again = %d, %v", n, err)
	}
	if n := pending(t, s, "", ""); n != 0 {
		t.Fatalf("pending at the end = %d", n)
	}
	list, err := s.ListSignatures(ctx, "app", img)
	if err != nil || len(list) != 1 || list[0].Status != meta.StatusVerified || list[0].StatusDetail != "second" || list[0].Generation != 3 ||
		len(list[0].Annotations) != 1 || list[0].Annotations["a"] != "1" || list[0].CertExtensions["1.2"] != "x" {
		t.Fatalf("signatures %+v, %v", list, err)
	}
	if g, err := s.SignatureGenerations(ctx, map[string][]string{"app": {"k1", "k2"}}); err != nil || len(g["app"]) != 1 || g["app"]["k1"] != 3 {
		t.Errorf("SignatureGenerations = %v, %v", g, err)
	}

	// Leases and release.
	sm2, tags2 := sigManifest(t, s, "app", "sig2", img)
	if err := s.PutManifest(ctx, sm2, tags2); err != nil {
		t.Fatal(err)
	}
	if jobs, err := s.ClaimIndexJobs(ctx, "dead", 10, time.Hour, "", ""); err != nil || len(jobs) != 1 {
		t.Fatalf("claim = %+v, %v", jobs, err)
	}
	time.Sleep(2 * time.Millisecond)
	taken, err := s.ClaimIndexJobs(ctx, "w3", 10, time.Millisecond, "", "")
	if err != nil || len(taken) != 1 {
		t.Fatalf("a claim older than the lease was not taken over: %+v, %v", taken, err)
	}
	if err := s.ReleaseIndexJobs(ctx, "w3"); err != nil {
		t.Fatal(err)
	}
	if jobs, err := s.ClaimIndexJobs(ctx, "w4", 10, time.Hour, "", ""); err != nil || len(jobs) != 1 {
		t.Fatalf("released job not claimable: %+v, %v", jobs, err)
	}
	// The dead worker's late finish completes nothing it no longer holds.
	if _, err := s.FinishIndexJobs(ctx, "dead", taken, nil); err != nil {
		t.Fatal(err)
	}
	if n := pending(t, s, "", ""); n != 1 {
		t.Fatalf("a finish by a worker that lost its claim completed the job (pending %d)", n)
	}
}

// testConcurrentIndexWorkers: workers of several replicas claim from one
// queue at once; every job is claimed by exactly one of them.
func testConcurrentIndexWorkers(t *testing.T, b Backend) {
	s, db := newStore(t, b)
	const jobs = 60
	img := digest.FromString("image")
	for i := 0; i < jobs; i++ {
		m, tags := sigManifest(t, s, "app", fmt.Sprint("s", i), img)
		if err := s.PutManifest(ctx, m, tags); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen = map[int64]string{}
		wg   sync.WaitGroup
	)
	errs := make(chan error, 8)
	for w := 0; w < 4; w++ {
		replica := open(t, db)
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("worker", w)
			for {
				got, err := replica.ClaimIndexJobs(ctx, owner, 3, time.Hour, "", "")
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, j := range got {
					if prev, dup := seen[j.ID]; dup {
						errs <- fmt.Errorf("job %d claimed by %s and %s", j.ID, prev, owner)
					}
					seen[j.ID] = owner
				}
				mu.Unlock()
				if _, err := replica.FinishIndexJobs(ctx, owner, got, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(seen) != jobs || pending(t, s, "", "") != 0 {
		t.Errorf("%d jobs claimed, %d pending; want all %d done once", len(seen), pending(t, s, "", ""), jobs)
	}
}

// testTrustPolicies: a project's policy is versioned; the repositories of
// a project (and of its sub-paths) follow it; setting it, creating or
// deleting the project or pinning its issuer starts a new generation and
// enqueues the signature manifests of exactly its repositories.
func testTrustPolicies(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	img := digest.FromString("image")
	var sigs []meta.Signature
	for i, repo := range []string{"grp/app", "grp/app/sub", "grp/application", "other"} {
		sigs = append(sigs, meta.Signature{Repository: repo, Subject: img, Manifest: digest.FromString(repo), Layer: digest.FromString("l"),
			Key: fmt.Sprint("k", i), Kind: "cosign", Status: meta.StatusVerified})
	}
	// One signature manifest may sign two images (its digest under both
	// images' .sig tags): one job per image.
	sigs = append(sigs, meta.Signature{Repository: "other", Subject: digest.FromString("image 2"), Manifest: digest.FromString("other"),
		Layer: digest.FromString("l"), Key: "k-other-2", Kind: "cosign", Status: meta.StatusVerified})
	if _, err := s.RecordSignatures(ctx, sigs); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SetTrustPolicy(ctx, "grp/app", []byte(`{}`), "alice"); !errors.Is(err, meta.ErrProjectNotFound) {
		t.Fatalf("policy of a missing project: %v", err)
	}
	if _, err := s.TrustPolicy(ctx, "grp/app"); !errors.Is(err, meta.ErrProjectNotFound) {
		t.Fatalf("TrustPolicy of a missing project: %v", err)
	}
	if p, err := s.TrustPolicyFor(ctx, "grp/app/sub"); err != nil || p.Project != "" || p.Version != 0 {
		t.Fatalf("TrustPolicyFor without projects = %+v, %v", p, err)
	}
	if _, err := s.CreateProject(ctx, auth.Project{Path: "grp/app", Visibility: auth.VisibilityPrivate, OIDCIssuer: "https://gitlab.example"}); err != nil {
		t.Fatal(err)
	}
	// The new project governs grp/app and grp/app/sub, not grp/application.
	if n, n2 := pending(t, s, "grp/app", ""), pending(t, s, "", ""); n != 1 || n2 != 2 {
		t.Fatalf("creating the project enqueued %d for grp/app, %d in all; want 1 and 2", n, n2)
	}
	g1, err := s.IndexGeneration(ctx)
	if err != nil || g1 < 1 {
		t.Fatalf("generation after creating a project = %d, %v", g1, err)
	}
	drain(t, s)
	p, err := s.TrustPolicy(ctx, "grp/app")
	if err != nil || p.Version != 0 || p.Document != nil || p.ProjectIssuer != "https://gitlab.example" {
		t.Fatalf("policy before any is set: %+v, %v", p, err)
	}
	p, jobs, err := s.SetTrustPolicy(ctx, "grp/app", []byte(`{"identities":[]}`), "alice")
	if err != nil || p.Version != 1 || jobs != 2 || p.UpdatedBy != "alice" {
		t.Fatalf("SetTrustPolicy = %+v, %d jobs, %v", p, jobs, err)
	}
	p, jobs, err = s.SetTrustPolicy(ctx, "grp/app", []byte(`{"identities":[1]}`), "bob")
	if err != nil || p.Version != 2 || jobs != 2 {
		t.Fatalf("SetTrustPolicy again = %+v, %d, %v", p, jobs, err)
	}
	// The jobs merged: one per manifest, of the latest generation.
	claimed, err := s.ClaimIndexJobs(ctx, "w", 10, time.Hour, "", "")
	g2, _ := s.IndexGeneration(ctx)
	if err != nil || len(claimed) != 2 || claimed[0].Generation != g2 || claimed[1].Generation != g2 || g2 <= g1 {
		t.Fatalf("claimed %+v (generation %d), %v", claimed, g2, err)
	}
	for _, repo := range []string{"grp/app", "grp/app/sub"} {
		got, err := s.TrustPolicyFor(ctx, repo)
		if err != nil || got.Project != "grp/app" || got.Version != 2 || string(got.Document) != `{"identities":[1]}` || got.UpdatedBy != "bob" || got.Updated.IsZero() {
			t.Errorf("TrustPolicyFor(%s) = %+v, %v", repo, got, err)
		}
	}
	if got, err := s.TrustPolicyFor(ctx, "grp/application"); err != nil || got.Project != "" {
		t.Errorf("TrustPolicyFor(grp/application) = %+v, %v", got, err)
	}
	if _, err := s.FinishIndexJobs(ctx, "w", claimed, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetProjectIssuer(ctx, "grp/app", ""); err != nil || pending(t, s, "", "") != 2 {
		t.Fatalf("pinning another issuer enqueued %d, %v", pending(t, s, "", ""), err)
	}
	drain(t, s)
	// A rebuild of everything, then of one project.
	if g, n, err := s.Reindex(ctx, ""); err != nil || n != 5 || g <= g2 {
		t.Fatalf("Reindex(all) = %d, %d, %v", g, n, err)
	}
	drain(t, s)
	if _, n, err := s.Reindex(ctx, "other"); err != nil || n != 2 {
		t.Fatalf("Reindex(other) = %d, %v", n, err)
	}
	drain(t, s)
	if err := s.DeleteProject(ctx, "grp/app"); err != nil || pending(t, s, "", "") != 2 {
		t.Fatalf("deleting the project enqueued %d, %v", pending(t, s, "", ""), err)
	}
	if got, err := s.TrustPolicyFor(ctx, "grp/app"); err != nil || got.Project != "" || got.Version != 0 {
		t.Errorf("the deleted project's policy remains: %+v, %v", got, err)
	}
}

// testIndexBatchReads: what the indexer reads for a batch of jobs at
// once, as the single lookups would read it: the jobs' manifests (none for
// a deleted one or one of another repository), and which of the layers
// each repository has; lists longer than one statement's.
func testIndexBatchReads(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	img, img2 := digest.FromString("image"), digest.FromString("image 2")
	put := func(repo, seed string) *meta.Manifest {
		t.Helper()
		m, tags := sigManifest(t, s, repo, seed, img)
		if err := s.PutManifest(ctx, m, tags); err != nil {
			t.Fatal(err)
		}
		return m
	}
	app, other, gone := put("app", "sig1"), put("other", "sig2"), put("app", "gone")
	if err := s.DeleteManifest(ctx, "app", gone.Digest); err != nil {
		t.Fatal(err)
	}
	jobs := []meta.IndexJob{{Repository: "app", Manifest: app.Digest, Subject: img}, {Repository: "other", Manifest: app.Digest},
		{Repository: "other", Manifest: other.Digest}, {Repository: "app", Manifest: gone.Digest}, {Repository: "nope", Manifest: app.Digest},
		{Repository: "app", Manifest: app.Digest, Subject: img2}}
	for i := range 600 {
		jobs = append(jobs, meta.IndexJob{Repository: "app", Manifest: digest.FromString(fmt.Sprint("absent ", i))})
	}
	got, err := s.JobManifests(ctx, jobs)
	if err != nil || len(got) != len(jobs) {
		t.Fatalf("JobManifests = %d manifests, %v; want %d", len(got), err, len(jobs))
	}
	for i, j := range jobs {
		want, err := s.GetManifest(ctx, j.Repository, j.Manifest.String())
		if errors.Is(err, meta.ErrManifestNotFound) {
			if got[i] != nil {
				t.Errorf("job %d (%s@%s): a manifest that GetManifest does not find: %+v", i, j.Repository, j.Manifest, got[i])
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if g == nil || g.Repository != want.Repository || g.Digest != want.Digest || g.MediaType != want.MediaType || g.ArtifactType != want.ArtifactType ||
			string(g.Payload) != string(want.Payload) || g.Subject != want.Subject || !g.Created.Equal(want.Created) {
			t.Errorf("job %d (%s@%s): %+v; GetManifest returns %+v", i, j.Repository, j.Manifest, g, want)
		}
	}
	if got[0] == nil || got[2] == nil || got[5] == nil || got[1] != nil || got[3] != nil || got[4] != nil {
		t.Errorf("JobManifests found %v", got[:6])
	}
	if got, err := s.JobManifests(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("JobManifests of no jobs = %v, %v", got, err)
	}

	// Blobs: manifest() linked "<seed>cfg" and "<seed>layer".
	blob := func(name string) digest.Digest { return digest.FromString(name) }
	if err := s.LinkBlob(ctx, "bare", blob("unrelated"), 1); err != nil {
		t.Fatal(err)
	}
	many := make([]digest.Digest, 1200)
	for i := range many {
		many[i] = blob(fmt.Sprint("absent ", i))
	}
	many[1100] = blob("sig1layer")
	want := map[string][]digest.Digest{
		"app":   append([]digest.Digest{blob("sig1layer"), blob("sig2layer"), blob("sig1cfg"), blob("sig1layer")}, many...),
		"other": {blob("sig1layer"), blob("sig2cfg")},
		"bare":  {blob("sig1layer")},
		"nope":  {blob("sig1layer")},
	}
	has, err := s.RepositoryBlobs(ctx, want)
	if err != nil || len(has) != 3 || len(has["app"]) != 2 || !has["app"][blob("sig1layer")] || !has["app"][blob("sig1cfg")] ||
		len(has["other"]) != 1 || !has["other"][blob("sig2cfg")] || has["bare"] == nil || len(has["bare"]) != 0 {
		t.Fatalf("RepositoryBlobs = %v, %v", has, err)
	}
	for repo, ds := range want {
		for _, d := range ds {
			_, err := s.BlobSize(ctx, repo, d)
			_, exists := has[repo]
			if (err == nil) != has[repo][d] || errors.Is(err, meta.ErrRepositoryNotFound) == exists {
				t.Errorf("%s@%s: RepositoryBlobs says %v (repository listed: %v), BlobSize %v", repo, d, has[repo][d], exists, err)
			}
		}
	}
	if has, err := s.RepositoryBlobs(ctx, nil); err != nil || len(has) != 0 {
		t.Errorf("RepositoryBlobs of nothing = %v, %v", has, err)
	}
}

// drainImage completes the pending jobs of one image.
func drainImage(t *testing.T, s *sqlstore.Store, repo string, subject digest.Digest) {
	t.Helper()
	jobs, err := s.ClaimIndexJobs(ctx, "drain", 1000, time.Hour, repo, subject)
	if err == nil {
		_, err = s.FinishIndexJobs(ctx, "drain", jobs, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// drain completes every pending job.
func drain(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	drainImage(t, s, "", "")
}
