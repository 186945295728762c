package metatest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// now collects everything queued up to this moment.
func now() meta.CollectOptions {
	return meta.CollectOptions{Now: time.Now(), Limit: 1000}
}

func collectBlobs(t *testing.T, s *sqlstore.Store, o meta.CollectOptions) []digest.Digest {
	t.Helper()
	b, err := s.CollectBlobs(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var out []digest.Digest
	for _, d := range b.Deleted {
		out = append(out, d.Digest)
	}
	slices.Sort(out)
	return out
}

func sorted(ds ...digest.Digest) []digest.Digest {
	return slices.Sorted(slices.Values(ds))
}

func gcPending(t *testing.T, s *sqlstore.Store) meta.GCPending {
	t.Helper()
	p, err := s.GCPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testGCBlobs(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	img := manifest(t, s, "app", "img", true, "")
	if err := s.PutManifest(ctx, img, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	loose := digest.FromString("loose")
	if err := s.PrepareBlob(ctx, loose); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkBlob(ctx, "app", loose, 5); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkBlob(ctx, "other", loose, 5); err != nil {
		t.Fatal(err)
	}
	// An object prepared whose link never came (a crash after the commit).
	orphan := digest.FromString("orphan")
	if err := s.PrepareBlob(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	if p := gcPending(t, s); p.Blobs != 4 || p.Deletions != 0 {
		t.Fatalf("pending %+v, want 4 blob reviews", p)
	}

	// Nothing is due within the grace period.
	o := now()
	o.Grace = time.Hour
	if got := collectBlobs(t, s, o); len(got) != 0 {
		t.Fatalf("collected %v within the grace period", got)
	}
	// A dry run reports and changes nothing.
	o = now()
	o.DryRun = true
	want := sorted(loose, orphan)
	if got := collectBlobs(t, s, o); !slices.Equal(got, want) {
		t.Fatalf("dry run collected %v, want %v", got, want)
	}
	if p := gcPending(t, s); p.Blobs != 4 || p.Deletions != 0 {
		t.Fatalf("pending after a dry run %+v", p)
	}
	// A dry run pages through the queue with the batches' cursor.
	o.Limit = 1
	var paged []digest.Digest
	for range 10 {
		b, err := s.CollectBlobs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if b.Reviewed == 0 {
			break
		}
		for _, d := range b.Deleted {
			paged = append(paged, d.Digest)
		}
		o.After = b.Next
	}
	if slices.Sort(paged); !slices.Equal(paged, want) {
		t.Fatalf("paged dry run collected %v, want %v", paged, want)
	}
	if n, err := s.BlobSize(ctx, "app", loose); err != nil || n != 5 {
		t.Fatalf("after a dry run: %d, %v", n, err)
	}

	// A batch is bounded by its limit.
	o = now()
	o.Limit = 1
	if b, err := s.CollectBlobs(ctx, o); err != nil || b.Reviewed != 1 {
		t.Fatalf("limited batch reviewed %d, %v", b.Reviewed, err)
	}
	b1, err := s.CollectBlobs(ctx, now())
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := s.CollectBlobs(ctx, now())
	dels := append(b1.Deleted, b2.Deleted...)
	sizes := map[digest.Digest]int64{}
	for _, d := range dels {
		sizes[d.Digest] = d.Size
	}
	// The first batch (limit 1) may have taken one of the garbage too.
	if p := gcPending(t, s); p.Blobs != 0 || p.Deletions != 2 {
		t.Fatalf("pending after collecting %+v, want 2 deletions", p)
	}
	if sz, ok := sizes[loose]; ok && sz != 5 {
		t.Errorf("size of %s = %d", loose, sz)
	}
	if sz, ok := sizes[orphan]; ok && sz != -1 {
		t.Errorf("size of the orphan = %d, want -1", sz)
	}
	for _, repo := range []string{"app", "other"} {
		if _, err := s.BlobSize(ctx, repo, loose); !errors.Is(err, meta.ErrBlobNotFound) {
			t.Errorf("%s still has the collected blob: %v", repo, err)
		}
	}
	for _, r := range img.References {
		if _, err := s.BlobSize(ctx, "app", r.Digest); err != nil {
			t.Errorf("referenced blob %s collected: %v", r.Digest, err)
		}
	}
	// While its object is deleted, the digest cannot be pushed or mounted.
	if err := s.PrepareBlob(ctx, loose); !errors.Is(err, meta.ErrBlobDeleting) {
		t.Errorf("PrepareBlob of a tombstoned blob: %v", err)
	}
	if err := s.LinkBlob(ctx, "app", loose, 5); !errors.Is(err, meta.ErrBlobDeleting) {
		t.Errorf("LinkBlob of a tombstoned blob: %v", err)
	}
	if p := gcPending(t, s); p.Blobs != 0 {
		t.Errorf("refused pushes left reviews: %+v", p)
	}
	if err := s.FinishBlobDeletions(ctx, []digest.Digest{loose, orphan}); err != nil {
		t.Fatal(err)
	}
	if err := s.PrepareBlob(ctx, loose); err != nil {
		t.Errorf("PrepareBlob after the deletion: %v", err)
	}
	if err := s.LinkBlob(ctx, "app", loose, 5); err != nil {
		t.Fatal(err)
	}
	// A mount takes the source's link in one transaction.
	if n, err := s.MountBlob(ctx, "app", "mounted", loose); err != nil || n != 5 {
		t.Fatalf("MountBlob = %d, %v", n, err)
	}
	if _, err := s.MountBlob(ctx, "nope", "mounted2", loose); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Errorf("MountBlob from a repository without it: %v", err)
	}
	if _, err := s.BlobSize(ctx, "mounted2", loose); err == nil {
		t.Error("failed mount linked the blob")
	}

	// Deleting the image queues its blobs; collected once unreferenced.
	if err := s.DeleteManifest(ctx, "app", img.Digest); err != nil {
		t.Fatal(err)
	}
	want = sorted(loose, img.References[0].Digest, img.References[1].Digest)
	if got := collectBlobs(t, s, now()); !slices.Equal(got, want) {
		t.Errorf("after the image delete collected %v, want %v", got, want)
	}
	// A blob another repository's manifest references stays.
	shared := manifest(t, s, "one", "shared", true, "")
	if err := s.PutManifest(ctx, shared, []string{"v"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range shared.References {
		if err := s.LinkBlob(ctx, "two", r.Digest, 10); err != nil {
			t.Fatal(err)
		}
		if err := s.UnlinkBlob(ctx, "two", r.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if got := collectBlobs(t, s, now()); len(got) != 0 {
		t.Errorf("collected referenced blobs %v", got)
	}
	if p := gcPending(t, s); p.Blobs != 0 {
		t.Errorf("referenced blobs left reviews: %+v", p)
	}
}

func testGCManifests(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	put := func(repo, seed string, subject digest.Digest, tags ...string) *meta.Manifest {
		t.Helper()
		m := manifest(t, s, repo, seed, true, subject)
		if err := s.PutManifest(ctx, m, tags); err != nil {
			t.Fatal(err)
		}
		return m
	}
	tagged := put("app", "tagged", "", "v1")
	untagged := put("app", "untagged", "", "v2")
	if err := s.DeleteTag(ctx, "app", "v2"); err != nil {
		t.Fatal(err)
	}
	moved := put("app", "moved", "", "v3")
	put("app", "mover", "", "v3") // v3 moves: "moved" is untagged
	byDigest := put("app", "bydigest", "")
	sbom := put("app", "sbom", tagged.Digest) // referrer of a live image
	dangling := put("app", "dangling", digest.FromString("gone"))
	child := put("app", "child", "")
	idx := &meta.Manifest{Repository: "app", MediaType: oci.MediaTypeOCIIndex, Payload: []byte(`{"index":1}`),
		References: []meta.Reference{{Digest: child.Digest, Kind: meta.RefManifest, Size: int64(len(child.Payload))}}}
	idx.Digest = digest.FromBytes(idx.Payload)
	if err := s.PutManifest(ctx, idx, []string{"multi"}); err != nil {
		t.Fatal(err)
	}
	evidence := put("app", "evidence", "")
	if p := gcPending(t, s); p.Manifests < 6 {
		t.Fatalf("pending %+v, want reviews of the untagged manifests", p)
	}
	o := now()
	o.Keep = func(_ context.Context, repo string, d digest.Digest) (bool, error) {
		return repo == "app" && d == evidence.Digest, nil
	}
	dry := o
	dry.DryRun = true
	collect := func(o meta.CollectOptions) []digest.Digest {
		t.Helper()
		b, err := s.CollectManifests(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var out []digest.Digest
		for _, m := range b.Deleted {
			out = append(out, m.Digest)
		}
		slices.Sort(out)
		return out
	}
	want := sorted(untagged.Digest, moved.Digest, byDigest.Digest, dangling.Digest)
	if got := collect(dry); !slices.Equal(got, want) {
		t.Fatalf("dry run: %v, want %v", got, want)
	}
	if _, err := s.GetManifest(ctx, "app", untagged.Digest.String()); err != nil {
		t.Fatalf("dry run deleted: %v", err)
	}
	if got := collect(o); !slices.Equal(got, want) {
		t.Fatalf("collected %v, want %v", got, want)
	}
	for _, m := range []*meta.Manifest{tagged, sbom, child, idx, evidence} {
		if _, err := s.GetManifest(ctx, "app", m.Digest.String()); err != nil {
			t.Errorf("kept manifest %s: %v", m.Digest, err)
		}
	}
	// The held one is reviewed again after another grace period; the
	// collected ones' blobs are queued.
	if p := gcPending(t, s); p.Manifests != 1 || p.Blobs < 8 {
		t.Errorf("pending %+v, want the held manifest and the collected ones' blobs", p)
	}
	// The index deleted: its child is reviewed and goes.
	if err := s.DeleteManifest(ctx, "app", idx.Digest); err != nil {
		t.Fatal(err)
	}
	o = now()
	if got, want := collect(o), sorted(child.Digest, evidence.Digest); !slices.Equal(got, want) {
		t.Errorf("after the index delete: %v, want %v", got, want)
	}
	// The image deleted: its SBOM referrer stays until reviewed.
	if err := s.DeleteManifest(ctx, "app", tagged.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "app", sbom.Digest.String()); err != nil {
		t.Errorf("SBOM referrer deleted with its image: %v", err)
	}
	if got := collect(now()); !slices.Equal(got, []digest.Digest{sbom.Digest}) {
		t.Errorf("after the image delete: %v, want the SBOM", got)
	}
}

func testDeleteImage(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	img := manifest(t, s, "app", "img", true, "")
	if err := s.PutManifest(ctx, img, []string{"v1", "latest"}); err != nil {
		t.Fatal(err)
	}
	attach := func(seed string, tags []string, subject digest.Digest, artifactType string) *meta.Manifest {
		t.Helper()
		m := manifest(t, s, "app", seed, true, subject)
		if artifactType != "" {
			m.ArtifactType = artifactType
		}
		if err := s.PutManifest(ctx, m, tags); err != nil {
			t.Fatal(err)
		}
		return m
	}
	sig := attach("sig", []string{oci.AttachmentTagName(img.Digest, oci.SignatureSuffix)}, "", "")
	att := attach("att", []string{oci.AttachmentTagName(img.Digest, oci.AttestationSuffix)}, "", "")
	bundle := attach("bundle", nil, img.Digest, oci.BundleMediaTypeV03)
	cosignRef := attach("cosignref", nil, img.Digest, oci.ArtifactTypeCosignSignature)
	sbom := attach("sbom", nil, img.Digest, "application/spdx+json")
	// A signature of the signature manifest goes too.
	sigsig := attach("sigsig", []string{oci.AttachmentTagName(sig.Digest, oci.SignatureSuffix)}, "", "")
	// Another image's attachments and a signature in another repository stay.
	other := attach("other", []string{"other"}, "", "")
	otherSig := attach("othersig", []string{oci.AttachmentTagName(other.Digest, oci.SignatureSuffix)}, "", "")
	elsewhere := manifest(t, s, "mirror", "mirrorsig", true, img.Digest)
	elsewhere.ArtifactType = oci.ArtifactTypeCosignSignature
	if err := s.PutManifest(ctx, elsewhere, nil); err != nil {
		t.Fatal(err)
	}
	records := []meta.Signature{
		{Repository: "app", Subject: img.Digest, Manifest: sig.Digest, Key: "k-sig", Kind: "cosign", Status: meta.StatusVerified, Signer: "alice"},
		{Repository: "app", Subject: img.Digest, Manifest: bundle.Digest, Key: "k-bundle", Kind: "bundle", Status: meta.StatusVerified, Signer: "alice"},
		{Repository: "app", Subject: other.Digest, Manifest: otherSig.Digest, Key: "k-other", Kind: "cosign", Status: meta.StatusVerified, Signer: "alice"},
		{Repository: "mirror", Subject: img.Digest, Manifest: elsewhere.Digest, Key: "k-mirror", Kind: "cosign", Status: meta.StatusVerified, Signer: "alice"},
	}
	if _, err := s.RecordSignatures(ctx, records); err != nil {
		t.Fatal(err)
	}

	got, err := s.DeleteImage(ctx, "app", img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 || got[0].Digest != img.Digest || got[0].Subject != "" || got[0].Repository != "app" {
		t.Fatalf("DeleteImage = %+v, the image first", got)
	}
	var gone []digest.Digest
	for _, m := range got {
		gone = append(gone, m.Digest)
		if m.Digest != img.Digest && m.Subject == "" {
			t.Errorf("attachment %s without its subject", m.Digest)
		}
	}
	slices.Sort(gone)
	if want := sorted(img.Digest, sig.Digest, att.Digest, bundle.Digest, cosignRef.Digest, sigsig.Digest); !slices.Equal(gone, want) {
		t.Errorf("deleted %v, want %v", gone, want)
	}
	for _, m := range got {
		if _, err := s.GetManifest(ctx, "app", m.Digest.String()); !errors.Is(err, meta.ErrManifestNotFound) {
			t.Errorf("%s still there: %v", m.Digest, err)
		}
	}
	for _, tag := range []string{"v1", "latest", oci.AttachmentTagName(img.Digest, oci.SignatureSuffix), oci.AttachmentTagName(img.Digest, oci.AttestationSuffix)} {
		if _, err := s.GetManifest(ctx, "app", tag); !errors.Is(err, meta.ErrManifestNotFound) {
			t.Errorf("tag %s still there: %v", tag, err)
		}
	}
	for _, m := range []*meta.Manifest{sbom, other, otherSig} {
		if _, err := s.GetManifest(ctx, "app", m.Digest.String()); err != nil {
			t.Errorf("%s deleted: %v", m.Digest, err)
		}
	}
	if _, err := s.GetManifest(ctx, "mirror", elsewhere.Digest.String()); err != nil {
		t.Errorf("another repository's signature deleted: %v", err)
	}
	// The index forgets the image's signatures (history stays behind).
	if l, _ := s.ListSignatures(ctx, "app", img.Digest); len(l) != 0 {
		t.Errorf("signatures of the deleted image listed: %+v", l)
	}
	if l, _ := s.SearchSignatures(ctx, meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldIdentity, Value: "alice"}}, Access: meta.Access{All: true}, Limit: 10}); len(l) != 2 {
		t.Errorf("search finds %d signatures, want the other image's and the mirror's", len(l))
	}
	if known, _ := s.SignatureGenerations(ctx, map[string][]string{"app": {"k-sig", "k-other"}}); hasKey(known["app"], "k-sig") || !hasKey(known["app"], "k-other") {
		t.Errorf("known keys after the delete: %v", known)
	}
	// Pushed again, the signature is listed again.
	if n, err := s.RecordSignatures(ctx, records[:1]); err != nil || n != 1 {
		t.Errorf("re-recording a deleted signature = %d, %v", n, err)
	}
	if l, _ := s.ListSignatures(ctx, "app", img.Digest); len(l) != 1 || l[0].Key != "k-sig" {
		t.Errorf("after re-recording: %+v", l)
	}
	if _, err := s.DeleteImage(ctx, "app", img.Digest); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.DeleteImage(ctx, "nope", img.Digest); !errors.Is(err, meta.ErrRepositoryNotFound) {
		t.Errorf("delete in an unknown repository: %v", err)
	}
}

func testBlobDeletionClaims(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	var ds []digest.Digest
	for i := range 3 {
		d := digest.FromString(fmt.Sprint("claim", i))
		if err := s.LinkBlob(ctx, "app", d, 1); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	if got := collectBlobs(t, s, now()); len(got) != 3 {
		t.Fatalf("collected %v", got)
	}
	// Fresh deletions are their collector's: none is stale.
	t0 := time.Now()
	if got, err := s.ClaimBlobDeletions(ctx, t0, t0.Add(-time.Minute), 10, false); err != nil || len(got) != 0 {
		t.Fatalf("claimed fresh deletions: %v, %v", got, err)
	}
	later := t0.Add(time.Hour)
	if got, err := s.ClaimBlobDeletions(ctx, later, later.Add(-time.Minute), 10, true); err != nil || len(got) != 3 {
		t.Fatalf("dry run lists %v, %v", got, err)
	}
	got, err := s.ClaimBlobDeletions(ctx, later, later.Add(-time.Minute), 2, false)
	if err != nil || len(got) != 2 {
		t.Fatalf("claimed %v, %v", got, err)
	}
	// Claimed ones are renewed: another worker takes only the third.
	again, err := s.ClaimBlobDeletions(ctx, later, later.Add(-time.Minute), 10, false)
	if err != nil || len(again) != 1 || slices.ContainsFunc(got, func(d meta.BlobDeletion) bool { return d.Digest == again[0].Digest }) {
		t.Fatalf("second claim %v (first %v), %v", again, got, err)
	}
	if err := s.FinishBlobDeletions(ctx, ds); err != nil {
		t.Fatal(err)
	}
	if p := gcPending(t, s); p.Deletions != 0 {
		t.Errorf("pending %+v", p)
	}
}

func testRetentionStore(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	if err := s.SetRetention(ctx, "group/app", `{"keep_n":1}`); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("SetRetention of an unknown project: %v", err)
	}
	mustProject(t, s, "group/app")
	mustProject(t, s, "group/app/sub")
	mustProject(t, s, "group/application")
	if pr, err := s.Retention(ctx, "group/app"); err != nil || pr.Policy != "" {
		t.Fatalf("Retention before any: %+v, %v", pr, err)
	}
	if err := s.SetRetention(ctx, "group/app", `{"keep_n":1}`); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetention(ctx, "group/app", `{"keep_n":2}`); err != nil {
		t.Fatal(err)
	}
	pr, err := s.Retention(ctx, "group/app")
	if err != nil || pr.Policy != `{"keep_n":2}` || pr.Updated.IsZero() || !pr.LastRun.IsZero() {
		t.Fatalf("Retention = %+v, %v", pr, err)
	}
	if _, err := s.Retention(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("Retention of an unknown project: %v", err)
	}
	// Claims: once per period, also with several workers.
	t0 := time.Now()
	var claims sync.Map
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			due, err := s.DueRetention(ctx, t0, t0.Add(-time.Hour), true)
			if err != nil {
				t.Error(err)
			}
			for _, d := range due {
				if _, dup := claims.LoadOrStore(d.Project, true); dup {
					t.Errorf("%s claimed twice", d.Project)
				}
			}
		})
	}
	wg.Wait()
	if _, ok := claims.Load("group/app"); !ok {
		t.Error("the policy was not claimed")
	}
	if due, _ := s.DueRetention(ctx, t0, t0.Add(-time.Hour), true); len(due) != 0 {
		t.Errorf("claimed again within the period: %+v", due)
	}
	if due, _ := s.DueRetention(ctx, t0.Add(2*time.Hour), t0.Add(time.Hour), false); len(due) != 1 || due[0].Policy != `{"keep_n":2}` {
		t.Errorf("due after the period: %+v", due)
	}

	// Tags of the project's repositories, not of a sub-project's or a
	// project whose path merely starts the same.
	for _, repo := range []string{"group/app", "group/app/x", "group/app/sub", "group/app/sub/y", "group/application", "group/app2"} {
		m := manifest(t, s, repo, repo, true, "")
		if err := s.PutManifest(ctx, m, []string{"v1", "v2"}); err != nil {
			t.Fatal(err)
		}
	}
	tags, err := s.ProjectTags(ctx, "group/app")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range tags {
		names = append(names, ti.Repository+":"+ti.Tag)
		if ti.Digest == "" || ti.Updated.IsZero() {
			t.Errorf("tag %+v", ti)
		}
	}
	if want := []string{"group/app:v1", "group/app:v2", "group/app/x:v1", "group/app/x:v2"}; !slices.Equal(names, want) {
		t.Fatalf("ProjectTags = %v, want %v", names, want)
	}
	// A tag moved after it was listed is not removed.
	moved := tags[1]
	m := manifest(t, s, "group/app", "newer", true, "")
	if err := s.PutManifest(ctx, m, []string{moved.Tag}); err != nil {
		t.Fatal(err)
	}
	removed, err := s.RemoveTags(ctx, tags[:3])
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || removed[0] != tags[0] || removed[1] != tags[2] {
		t.Errorf("removed %+v", removed)
	}
	if got, err := s.GetManifest(ctx, "group/app", moved.Tag); err != nil || got.Digest != m.Digest {
		t.Errorf("moved tag: %v", err)
	}
	// group/app's first manifest lost both tags: queued for review.
	mb, err := s.CollectManifests(ctx, now())
	if err != nil || len(mb.Deleted) != 1 || mb.Deleted[0].Digest != tags[0].Digest {
		t.Errorf("untagged by retention: %+v, %v", mb.Deleted, err)
	}
	if err := s.DeleteRetention(ctx, "group/app"); err != nil {
		t.Fatal(err)
	}
	if pr, _ := s.Retention(ctx, "group/app"); pr.Policy != "" {
		t.Errorf("after delete: %+v", pr)
	}
	if err := s.DeleteRetention(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("DeleteRetention of an unknown project: %v", err)
	}
}

// testGCConcurrentPushes: manifest pushes and blob collection at once, many
// rounds, with no grace period: a manifest the store accepted never names
// a blob whose rows a collection deleted (PostgreSQL: the collector locks
// the links the push checks FOR SHARE).
func testGCConcurrentPushes(t *testing.T, b Backend) {
	s, db := newStore(t, b)
	s2 := open(t, db) // another replica
	const rounds, pushers = 15, 4
	stored := 0 // references of manifests the store kept while collections ran, all rounds
	for round := range rounds {
		stop := make(chan struct{})
		var collectors sync.WaitGroup
		for _, st := range []*sqlstore.Store{s, s2} {
			collectors.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					b, err := st.CollectBlobs(ctx, now())
					if err != nil {
						t.Error(err)
						return
					}
					var ds []digest.Digest
					for _, d := range b.Deleted {
						ds = append(ds, d.Digest)
					}
					if err := st.FinishBlobDeletions(ctx, ds); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		var wg sync.WaitGroup
		for p := range pushers {
			wg.Go(func() {
				st := []*sqlstore.Store{s, s2}[p%2]
				repo := fmt.Sprintf("r%d", p%2)
				for i := range 10 {
					// Shared layer digests across pushers and rounds.
					m := manifest(t, st, repo, fmt.Sprintf("m%d-%d-%d", round, p, i), false, "")
					m.References[1].Digest = digest.FromString(fmt.Sprintf("shared%d", i%3))
					for _, r := range m.References {
						if err := st.LinkBlob(ctx, repo, r.Digest, 10); err != nil && !errors.Is(err, meta.ErrBlobDeleting) {
							t.Error(err)
						}
					}
					err := st.PutManifest(ctx, m, []string{fmt.Sprintf("t%d", i)})
					var miss *meta.MissingReferenceError
					if err != nil && !errors.As(err, &miss) {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		collectors.Wait()
		// Every reference of a stored manifest is a linked blob.
		rows, err := db.Raw(t).Query(`SELECT r.name, mr.child_digest FROM manifest_references mr JOIN manifests m ON m.id = mr.manifest_id
			JOIN repositories r ON r.id = m.repository_id`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var repo, d string
			if err := rows.Scan(&repo, &d); err != nil {
				t.Fatal(err)
			}
			n++
			if _, err := s.BlobSize(ctx, repo, digest.Digest(d)); err != nil {
				t.Errorf("round %d: a stored manifest of %s references %s, which was collected: %v", round, repo, d, err)
			}
		}
		rows.Close()
		stored = n
		if t.Failed() {
			return
		}
	}
	// A round can lose every push to the collectors (no grace period), but
	// not all of them: otherwise the check above looked at nothing.
	if stored == 0 {
		t.Fatalf("no manifest stored in %d rounds", rounds)
	}
	t.Logf("%d references of stored manifests checked", stored)
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}
