package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
)

var ctx = context.Background()

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "sub", "hallmark.db")
	return open(t, p), p
}

// manifest returns an image manifest in repo referencing the given blobs
// (linked first unless link is false).
func manifest(t *testing.T, s *sqlite.Store, repo, seed string, link bool, subject digest.Digest) *meta.Manifest {
	t.Helper()
	cfg, layer := digest.FromString(seed+"cfg"), digest.FromString(seed+"layer")
	if link {
		for _, d := range []digest.Digest{cfg, layer} {
			if err := s.LinkBlob(ctx, repo, d, 10); err != nil {
				t.Fatal(err)
			}
		}
	}
	payload := []byte(`{"schemaVersion":2,"seed":"` + seed + `"}`)
	return &meta.Manifest{
		Repository:   repo,
		Digest:       digest.FromBytes(payload),
		MediaType:    "application/vnd.oci.image.manifest.v1+json",
		ArtifactType: "application/vnd.oci.image.config.v1+json",
		Payload:      payload,
		Subject:      subject,
		References:   []meta.Reference{{Digest: cfg, Kind: meta.RefBlob, Size: 10}, {Digest: layer, Kind: meta.RefBlob, Size: 10}},
	}
}

func TestOpenMigrateReopen(t *testing.T) {
	s, path := newStore(t)
	m := manifest(t, s, "app", "a", true, "")
	if err := s.PutManifest(ctx, m, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopening applies no migration twice and keeps the data.
	s2 := open(t, path)
	got, err := s2.GetManifest(ctx, "app", "v1")
	if err != nil || string(got.Payload) != string(m.Payload) {
		t.Fatalf("after reopen: %v", err)
	}
	s2.Close()
	// A database from a newer binary is refused.
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s3, err := sqlite.Open(ctx, sqlite.Config{Path: path}); err == nil {
		s3.Close()
		t.Fatal("opened a database with a newer schema")
	}
	if _, err := sqlite.Open(ctx, sqlite.Config{}); err == nil {
		t.Fatal("opened with an empty path")
	}
}

func TestBlobs(t *testing.T) {
	s, _ := newStore(t)
	d := digest.FromString("blob")
	if _, err := s.BlobSize(ctx, "app", d); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Fatalf("BlobSize before link: %v", err)
	}
	if err := s.LinkBlob(ctx, "app", d, 42); err != nil {
		t.Fatal(err)
	}
	if err := s.LinkBlob(ctx, "app", d, 42); err != nil { // idempotent
		t.Fatal(err)
	}
	if n, err := s.BlobSize(ctx, "app", d); err != nil || n != 42 {
		t.Fatalf("BlobSize = %d, %v", n, err)
	}
	if _, err := s.BlobSize(ctx, "other", d); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Fatalf("BlobSize in other repo: %v", err)
	}
	if err := s.LinkBlob(ctx, "other", d, 42); err != nil {
		t.Fatal(err)
	}
	if err := s.UnlinkBlob(ctx, "app", d); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BlobSize(ctx, "app", d); !errors.Is(err, meta.ErrBlobNotFound) {
		t.Fatalf("BlobSize after unlink: %v", err)
	}
	if n, err := s.BlobSize(ctx, "other", d); err != nil || n != 42 {
		t.Fatalf("other repo lost its link: %d, %v", n, err)
	}
	for _, repo := range []string{"app", "nope"} {
		if err := s.UnlinkBlob(ctx, repo, d); !errors.Is(err, meta.ErrBlobNotFound) {
			t.Errorf("UnlinkBlob(%s) again: %v", repo, err)
		}
	}
}

func TestManifestsAndTags(t *testing.T) {
	s, _ := newStore(t)
	m1 := manifest(t, s, "group/app", "one", true, "")
	m1.Annotations = map[string]string{"a": "b"}
	m1.Created = time.Unix(1700000000, 123)
	if err := s.PutManifest(ctx, m1, []string{"v1", "latest"}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"v1", "latest", m1.Digest.String()} {
		got, err := s.GetManifest(ctx, "group/app", ref)
		if err != nil {
			t.Fatalf("GetManifest(%s): %v", ref, err)
		}
		if got.Digest != m1.Digest || string(got.Payload) != string(m1.Payload) || got.MediaType != m1.MediaType ||
			got.ArtifactType != m1.ArtifactType || got.Repository != "group/app" || !got.Created.Equal(m1.Created) {
			t.Errorf("GetManifest(%s) = %+v", ref, got)
		}
	}
	for _, ref := range []string{"v2", digest.FromString("x").String(), "sha256:bad"} {
		if _, err := s.GetManifest(ctx, "group/app", ref); !errors.Is(err, meta.ErrManifestNotFound) {
			t.Errorf("GetManifest(%s): %v", ref, err)
		}
	}
	if _, err := s.GetManifest(ctx, "other", "v1"); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("GetManifest in other repo: %v", err)
	}
	tags, err := s.TagsOf(ctx, "group/app", m1.Digest)
	if err != nil || !slices.Equal(tags, []string{"latest", "v1"}) {
		t.Errorf("TagsOf = %v, %v", tags, err)
	}

	// Tag move.
	m2 := manifest(t, s, "group/app", "two", true, "")
	if err := s.PutManifest(ctx, m2, []string{"latest"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetManifest(ctx, "group/app", "latest"); got.Digest != m2.Digest {
		t.Fatalf("latest -> %s after move, want %s", got.Digest, m2.Digest)
	}
	if tags, _ := s.TagsOf(ctx, "group/app", m1.Digest); !slices.Equal(tags, []string{"v1"}) {
		t.Errorf("m1 tags after move: %v", tags)
	}
	// Re-putting the same manifest is idempotent.
	if err := s.PutManifest(ctx, m1, nil); err != nil {
		t.Fatal(err)
	}

	// Delete tag.
	if err := s.DeleteTag(ctx, "group/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "group/app", "v1"); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("deleted tag: %v", err)
	}
	if _, err := s.GetManifest(ctx, "group/app", m1.Digest.String()); err != nil {
		t.Errorf("manifest gone with its tag: %v", err)
	}
	if err := s.DeleteTag(ctx, "group/app", "v1"); !errors.Is(err, meta.ErrTagNotFound) {
		t.Errorf("DeleteTag again: %v", err)
	}
	// Delete manifest: its tags go with it.
	if err := s.PutManifest(ctx, m1, []string{"t1", "t2"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteManifest(ctx, "group/app", m1.Digest); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"t1", "t2", m1.Digest.String()} {
		if _, err := s.GetManifest(ctx, "group/app", ref); !errors.Is(err, meta.ErrManifestNotFound) {
			t.Errorf("after DeleteManifest, %s: %v", ref, err)
		}
	}
	if tags, _, _ := s.ListTags(ctx, "group/app", "", 100); !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("tags after delete: %v", tags)
	}
	if err := s.DeleteManifest(ctx, "group/app", m1.Digest); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("DeleteManifest again: %v", err)
	}
}

func TestMissingReferences(t *testing.T) {
	s, _ := newStore(t)
	m := manifest(t, s, "app", "x", false, "")
	err := s.PutManifest(ctx, m, []string{"v1"})
	var mr *meta.MissingReferenceError
	if !errors.As(err, &mr) || mr.Kind != meta.RefBlob || mr.Digest != m.References[0].Digest {
		t.Fatalf("PutManifest with missing blobs: %v", err)
	}
	// Nothing of it was stored, not even the repository.
	if repos, _, _ := s.ListRepositories(ctx, "", 10); len(repos) != 0 {
		t.Errorf("repositories after failed put: %v", repos)
	}
	// Blobs of another repository do not count.
	for _, r := range m.References {
		s.LinkBlob(ctx, "other", r.Digest, 10)
	}
	if err := s.PutManifest(ctx, m, nil); !errors.As(err, &mr) {
		t.Fatalf("PutManifest with blobs in another repo: %v", err)
	}
	// Index children must be manifests of the repository.
	child := manifest(t, s, "app", "child", true, "")
	idx := &meta.Manifest{Repository: "app", Digest: digest.FromString("idx"), MediaType: "application/vnd.oci.image.index.v1+json",
		Payload: []byte("idx"), References: []meta.Reference{{Digest: child.Digest, Kind: meta.RefManifest, Size: int64(len(child.Payload))}}}
	if err := s.PutManifest(ctx, idx, nil); !errors.As(err, &mr) || mr.Kind != meta.RefManifest {
		t.Fatalf("index with missing child: %v", err)
	}
	if err := s.PutManifest(ctx, child, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.PutManifest(ctx, idx, []string{"multi"}); err != nil {
		t.Fatalf("index after its child: %v", err)
	}
}

// TestOptionalReferences: an Optional reference (a sparse manifest) may be
// absent; it is recorded like a present one, a present one is still
// checked for its size, and a reference that is not Optional still has to
// be there.
func TestOptionalReferences(t *testing.T) {
	s, path := newStore(t)
	present := manifest(t, s, "app", "amd64", true, "")
	if err := s.PutManifest(ctx, present, nil); err != nil {
		t.Fatal(err)
	}
	child := manifest(t, s, "app", "arm64", true, "") // built, not pushed yet
	absent := child.Digest
	missingLayer := digest.FromString("layer, not pushed")
	index := func(seed string, refs ...meta.Reference) *meta.Manifest {
		return &meta.Manifest{Repository: "app", Digest: digest.FromString(seed), MediaType: "application/vnd.oci.image.index.v1+json",
			Payload: []byte(seed), References: refs}
	}
	presentRef := meta.Reference{Digest: present.Digest, Kind: meta.RefManifest, Size: int64(len(present.Payload)), Optional: true}
	absentRef := meta.Reference{Digest: absent, Kind: meta.RefManifest, Size: int64(len(child.Payload)), Optional: true}
	blobRef := meta.Reference{Digest: missingLayer, Kind: meta.RefBlob, Size: 175, Optional: true}

	sparse := index("sparse", presentRef, absentRef, blobRef)
	if err := s.PutManifest(ctx, sparse, []string{"sparse"}); err != nil {
		t.Fatalf("PutManifest with optional absent references: %v", err)
	}
	if got, err := s.GetManifest(ctx, "app", "sparse"); err != nil || got.Digest != sparse.Digest {
		t.Fatalf("GetManifest(sparse) = %v, %v", got, err)
	}
	if _, err := s.GetManifest(ctx, "app", absent.String()); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("absent child: %v, want ErrManifestNotFound", err)
	}
	// Every reference is recorded, present or not.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT r.child_digest, r.kind FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
		WHERE m.digest = ? ORDER BY r.child_digest`, sparse.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	for rows.Next() {
		var d, k string
		if err := rows.Scan(&d, &k); err != nil {
			t.Fatal(err)
		}
		recorded[d] = k
	}
	rows.Close()
	want := map[string]string{present.Digest.String(): "manifest", absent.String(): "manifest", missingLayer.String(): "blob"}
	if fmt.Sprint(recorded) != fmt.Sprint(want) {
		t.Errorf("recorded references %v, want %v", recorded, want)
	}

	// A present optional reference must still have the declared size.
	wrong := presentRef
	wrong.Size++
	var sm *meta.SizeMismatchError
	if err := s.PutManifest(ctx, index("wrong size", wrong, absentRef), []string{"bad"}); !errors.As(err, &sm) || sm.Digest != present.Digest {
		t.Errorf("optional present reference with a wrong size: %v, want *SizeMismatchError", err)
	}
	// A reference that is not optional is still required next to optional ones.
	required := absentRef
	required.Optional = false
	var mr *meta.MissingReferenceError
	if err := s.PutManifest(ctx, index("required", presentRef, required), []string{"bad"}); !errors.As(err, &mr) || mr.Digest != absent {
		t.Errorf("required absent reference: %v, want *MissingReferenceError", err)
	}
	if _, err := s.GetManifest(ctx, "app", "bad"); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("a rejected manifest was stored: %v", err)
	}

	// The absent child can be pushed later; deleting the sparse index
	// takes its references with it and leaves the children.
	if err := s.PutManifest(ctx, child, nil); err != nil {
		t.Fatalf("pushing a child after its sparse index: %v", err)
	}
	if err := s.DeleteManifest(ctx, "app", sparse.Digest); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := db.QueryRow(`SELECT COUNT(*) FROM manifest_references WHERE child_digest IN (?, ?, ?)`, present.Digest.String(), absent.String(), missingLayer.String()).Scan(&left); err != nil || left != 0 {
		t.Errorf("references left after deleting the index: %d, %v", left, err)
	}
	for _, d := range []digest.Digest{present.Digest, absent} {
		if _, err := s.GetManifest(ctx, "app", d.String()); err != nil {
			t.Errorf("child %s after deleting its index: %v", d, err)
		}
	}
}

// TestReferenceSizes: a reference must declare the size of the content it
// names, blob or child manifest (issue 9, defect 10).
func TestReferenceSizes(t *testing.T) {
	s, _ := newStore(t)
	child := manifest(t, s, "app", "child", true, "")
	if err := s.PutManifest(ctx, child, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ref  meta.Reference
		have int64
	}{
		{"blob larger", meta.Reference{Digest: child.References[0].Digest, Kind: meta.RefBlob, Size: 999999}, 10},
		{"blob smaller", meta.Reference{Digest: child.References[0].Digest, Kind: meta.RefBlob, Size: 9}, 10},
		{"blob empty", meta.Reference{Digest: child.References[1].Digest, Kind: meta.RefBlob, Size: 0}, 10},
		{"child manifest", meta.Reference{Digest: child.Digest, Kind: meta.RefManifest, Size: int64(len(child.Payload)) + 1}, int64(len(child.Payload))},
	} {
		m := &meta.Manifest{Repository: "app", Digest: digest.FromString(tc.name), MediaType: "application/vnd.oci.image.index.v1+json",
			Payload: []byte(tc.name), References: []meta.Reference{tc.ref}}
		err := s.PutManifest(ctx, m, []string{"bad"})
		var sm *meta.SizeMismatchError
		if !errors.As(err, &sm) || sm.Digest != tc.ref.Digest || sm.Kind != tc.ref.Kind || sm.Declared != tc.ref.Size || sm.Have != tc.have {
			t.Errorf("%s: PutManifest = %v, want a *SizeMismatchError declaring %d, having %d", tc.name, err, tc.ref.Size, tc.have)
		}
		if _, err := s.GetManifest(ctx, "app", "bad"); !errors.Is(err, meta.ErrManifestNotFound) {
			t.Errorf("%s: the manifest was stored anyway: %v", tc.name, err)
		}
	}
}

func TestReferrers(t *testing.T) {
	s, _ := newStore(t)
	subject := digest.FromString("subject")
	base := time.Unix(1700000000, 0)
	var want []digest.Digest
	for i, at := range []string{"application/a", "application/b", "application/a"} {
		m := manifest(t, s, "app", fmt.Sprint("ref", i), true, subject)
		m.ArtifactType = at
		m.Annotations = map[string]string{"i": fmt.Sprint(i), "org.example": "x"}
		m.Created = base.Add(time.Duration(i) * time.Second)
		if err := s.PutManifest(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.Digest)
	}
	other := manifest(t, s, "other", "ref-other", true, subject)
	s.PutManifest(ctx, other, nil)
	plain := manifest(t, s, "app", "plain", true, "")
	s.PutManifest(ctx, plain, nil)

	list, err := s.Referrers(ctx, "app", subject, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d referrers, want 3: %+v", len(list), list)
	}
	for i, d := range list {
		if d.Digest != want[i] {
			t.Errorf("referrer %d = %s, want %s (oldest first)", i, d.Digest, want[i])
		}
		if d.Annotations["i"] != fmt.Sprint(i) || d.Size == 0 || d.MediaType == "" {
			t.Errorf("referrer %d: %+v", i, d)
		}
	}
	list, _ = s.Referrers(ctx, "app", subject, "application/a")
	if len(list) != 2 || list[0].Digest != want[0] || list[1].Digest != want[2] {
		t.Errorf("filtered: %+v", list)
	}
	if list, err := s.Referrers(ctx, "app", digest.FromString("none"), ""); err != nil || len(list) != 0 {
		t.Errorf("unknown subject: %v, %v", list, err)
	}
	if list, err := s.Referrers(ctx, "nope", subject, ""); err != nil || len(list) != 0 {
		t.Errorf("unknown repo: %v, %v", list, err)
	}
	// Deleting a referrer drops it.
	s.DeleteManifest(ctx, "app", want[1])
	if list, _ := s.Referrers(ctx, "app", subject, ""); len(list) != 2 {
		t.Errorf("after delete: %d", len(list))
	}
	// sha512 subject.
	sub512 := digest.SHA512.FromString("subject")
	m := manifest(t, s, "app", "r512", true, sub512)
	s.PutManifest(ctx, m, nil)
	if list, _ := s.Referrers(ctx, "app", sub512, ""); len(list) != 1 {
		t.Errorf("sha512 subject: %d", len(list))
	}
}

func TestSHA512Manifest(t *testing.T) {
	s, _ := newStore(t)
	m := manifest(t, s, "app", "x", true, "")
	m.Digest = digest.SHA512.FromBytes(m.Payload)
	if err := s.PutManifest(ctx, m, []string{"v"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetManifest(ctx, "app", m.Digest.String())
	if err != nil || got.Digest != m.Digest {
		t.Fatalf("GetManifest by sha512 digest: %v", err)
	}
	if err := s.DeleteManifest(ctx, "app", m.Digest); err != nil {
		t.Fatal(err)
	}
}

func TestListing(t *testing.T) {
	s, _ := newStore(t)
	if _, _, err := s.ListTags(ctx, "app", "", 10); !errors.Is(err, meta.ErrRepositoryNotFound) {
		t.Fatalf("ListTags unknown repo: %v", err)
	}
	if _, _, err := s.ListTags(ctx, "app", "", 0); !errors.Is(err, meta.ErrRepositoryNotFound) {
		t.Fatalf("ListTags unknown repo n=0: %v", err)
	}
	m := manifest(t, s, "app", "x", true, "")
	tags := []string{"b", "a", "C", "a1", "_z", "10", "9"}
	if err := s.PutManifest(ctx, m, tags); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(tags)
	slices.Sort(sorted)
	all, more, err := s.ListTags(ctx, "app", "", 100)
	if err != nil || more || !slices.Equal(all, sorted) {
		t.Fatalf("ListTags = %v, %v, %v; want %v", all, more, err, sorted)
	}
	for n := 1; n <= len(tags)+1; n++ {
		var got []string
		last := ""
		for {
			page, more, err := s.ListTags(ctx, "app", last, n)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > n || (more && len(page) != n) {
				t.Fatalf("n=%d: page %v more=%v", n, page, more)
			}
			got = append(got, page...)
			if !more {
				break
			}
			last = page[len(page)-1]
		}
		if !slices.Equal(got, sorted) {
			t.Errorf("n=%d: %v", n, got)
		}
	}
	if page, more, _ := s.ListTags(ctx, "app", sorted[len(sorted)-1], 5); len(page) != 0 || more {
		t.Errorf("after last: %v %v", page, more)
	}
	if page, _, _ := s.ListTags(ctx, "app", "a0", 2); !slices.Equal(page, []string{"a1", "b"}) {
		t.Errorf("last not a tag: %v", page)
	}
	// Repositories, created by blob links as well as by manifests.
	for _, r := range []string{"z", "b/c", "a/b/c", "b"} {
		s.LinkBlob(ctx, r, digest.FromString(r), 1)
	}
	wantRepos := []string{"a/b/c", "app", "b", "b/c", "z"}
	var got []string
	last := ""
	for {
		page, more, err := s.ListRepositories(ctx, last, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if !more {
			break
		}
		last = page[len(page)-1]
	}
	if !slices.Equal(got, wantRepos) {
		t.Errorf("repositories %v, want %v", got, wantRepos)
	}
}

// TestPutManifestIsAtomic injects a failure in the middle of PutManifest
// (a trigger that aborts on one tag) and checks that nothing of the
// transaction is visible: not the manifest, not the other tags, not a tag
// move.
func TestPutManifestIsAtomic(t *testing.T) {
	s, path := newStore(t)
	old := manifest(t, s, "app", "old", true, "")
	if err := s.PutManifest(ctx, old, []string{"latest"}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER boom BEFORE INSERT ON tags WHEN NEW.name = 'boom'
		BEGIN SELECT RAISE(ABORT, 'injected failure'); END`); err != nil {
		t.Fatal(err)
	}
	m := manifest(t, s, "app", "new", true, "")
	err = s.PutManifest(ctx, m, []string{"latest", "v2", "boom"})
	if err == nil {
		t.Fatal("PutManifest succeeded despite the injected failure")
	}
	if got, err := s.GetManifest(ctx, "app", "latest"); err != nil || got.Digest != old.Digest {
		t.Errorf("latest moved by a failed transaction: %v %v", got, err)
	}
	for _, ref := range []string{"v2", m.Digest.String()} {
		if _, err := s.GetManifest(ctx, "app", ref); !errors.Is(err, meta.ErrManifestNotFound) {
			t.Errorf("%s visible after a failed transaction: %v", ref, err)
		}
	}
	// The store still works.
	if err := s.PutManifest(ctx, m, []string{"latest", "v2"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetManifest(ctx, "app", "latest"); got.Digest != m.Digest {
		t.Errorf("latest -> %s", got.Digest)
	}
}

// TestConcurrentTagMoves moves one tag between manifests from many
// goroutines while others read it: every read sees a complete manifest and
// the final state is one of the writes.
func TestConcurrentTagMoves(t *testing.T) {
	s, _ := newStore(t)
	var ms []*meta.Manifest
	for i := 0; i < 4; i++ {
		m := manifest(t, s, "app", fmt.Sprint("m", i), true, "")
		if err := s.PutManifest(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	byDigest := map[digest.Digest]*meta.Manifest{}
	for _, m := range ms {
		byDigest[m.Digest] = m
	}
	s.PutManifest(ctx, ms[0], []string{"latest"})
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for w := 0; w < 4; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := s.PutManifest(ctx, ms[(w+i)%4], []string{"latest"}); err != nil {
					errs <- err
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				got, err := s.GetManifest(ctx, "app", "latest")
				if err != nil {
					errs <- err
					continue
				}
				if want := byDigest[got.Digest]; want == nil || string(want.Payload) != string(got.Payload) {
					errs <- fmt.Errorf("read an inconsistent manifest %s", got.Digest)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if tags, _, _ := s.ListTags(ctx, "app", "", 10); !slices.Equal(tags, []string{"latest"}) {
		t.Errorf("tags %v", tags)
	}
}

// TestDatabaseFilesPrivate: the database, its WAL and shared-memory files
// are 0600, also when an earlier version left the database 0644 (issue 9,
// defect 9).
func TestDatabaseFilesPrivate(t *testing.T) {
	for _, existing := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "hallmark.db")
		if existing {
			s, err := sqlite.Open(ctx, sqlite.Config{Path: p})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s := open(t, p)
		if err := s.LinkBlob(ctx, "app", digest.FromString("x"), 1); err != nil { // a write: the WAL exists
			t.Fatal(err)
		}
		for _, f := range []string{p, p + "-wal", p + "-shm"} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("existing=%v: %s has mode %04o, want 0600", existing, filepath.Base(f), perm)
			}
		}
	}
}

// TestRepositoryNotFound: a lookup or delete in a repository that does not
// exist says so (and is still the miss), one in a repository that exists
// is only the miss. The registry answers NAME_UNKNOWN from this alone.
func TestRepositoryNotFound(t *testing.T) {
	s, _ := newStore(t)
	m := manifest(t, s, "app", "x", true, "")
	if err := s.PutManifest(ctx, m, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	d := digest.FromString("absent")
	calls := []struct {
		name string
		miss error
		call func(repo string) error
	}{
		{"GetManifest by tag", meta.ErrManifestNotFound, func(repo string) error { _, err := s.GetManifest(ctx, repo, "nope"); return err }},
		{"GetManifest by digest", meta.ErrManifestNotFound, func(repo string) error { _, err := s.GetManifest(ctx, repo, d.String()); return err }},
		{"BlobSize", meta.ErrBlobNotFound, func(repo string) error { _, err := s.BlobSize(ctx, repo, d); return err }},
		{"UnlinkBlob", meta.ErrBlobNotFound, func(repo string) error { return s.UnlinkBlob(ctx, repo, d) }},
		{"DeleteManifest", meta.ErrManifestNotFound, func(repo string) error { return s.DeleteManifest(ctx, repo, d) }},
		{"DeleteTag", meta.ErrTagNotFound, func(repo string) error { return s.DeleteTag(ctx, repo, "nope") }},
	}
	for _, c := range calls {
		err := c.call("no/such/repo")
		var rn *meta.RepositoryNotFoundError
		if !errors.Is(err, meta.ErrRepositoryNotFound) || !errors.Is(err, c.miss) || !errors.As(err, &rn) || rn.Repository != "no/such/repo" {
			t.Errorf("%s in an unknown repository: %v; want a *RepositoryNotFoundError that is also %v", c.name, err, c.miss)
		}
		err = c.call("app")
		if !errors.Is(err, c.miss) || errors.Is(err, meta.ErrRepositoryNotFound) {
			t.Errorf("%s in a known repository: %v; want only %v", c.name, err, c.miss)
		}
	}
	// Hits still hit.
	if got, err := s.GetManifest(ctx, "app", "v1"); err != nil || got.Digest != m.Digest || string(got.Payload) != string(m.Payload) {
		t.Errorf("GetManifest v1: %v %v", got, err)
	}
	if size, err := s.BlobSize(ctx, "app", m.References[0].Digest); err != nil || size != 10 {
		t.Errorf("BlobSize: %d %v", size, err)
	}
}

// TestTagConditions: PutManifest with a TagCondition stores only if the
// tag is where the condition wants it, checked in the same transaction.
func TestTagConditions(t *testing.T) {
	s, _ := newStore(t)
	m1 := manifest(t, s, "app", "one", true, "")
	m2 := manifest(t, s, "app", "two", true, "")
	at := func(d digest.Digest) func(digest.Digest) bool {
		return func(cur digest.Digest) bool { return cur == d }
	}
	steps := []struct {
		name string
		m    *meta.Manifest
		cond func(digest.Digest) bool
		ok   bool
		want digest.Digest // where v1 points afterwards
	}{
		{"create while absent", m1, at(""), true, m1.Digest},
		{"create again while present", m2, at(""), false, m1.Digest},
		{"replace the wrong version", m2, at(m2.Digest), false, m1.Digest},
		{"replace the version read", m2, at(m1.Digest), true, m2.Digest},
		{"replace a stale version", m1, at(m1.Digest), false, m2.Digest},
	}
	for _, st := range steps {
		err := s.PutManifest(ctx, st.m, []string{"v1"}, meta.TagCondition{Tag: "v1", Holds: st.cond})
		if st.ok && err != nil || !st.ok && !errors.Is(err, meta.ErrPreconditionFailed) {
			t.Fatalf("%s: PutManifest = %v, want ok=%v", st.name, err, st.ok)
		}
		got, err := s.GetManifest(ctx, "app", "v1")
		if err != nil || got.Digest != st.want {
			t.Fatalf("%s: v1 is at %v (%v), want %s", st.name, got, err, st.want)
		}
	}
	// A failed condition stores nothing, not even the manifest by digest.
	m3 := manifest(t, s, "app", "three", true, "")
	if err := s.PutManifest(ctx, m3, []string{"v1"}, meta.TagCondition{Tag: "v1", Holds: at("")}); !errors.Is(err, meta.ErrPreconditionFailed) {
		t.Fatal(err)
	}
	if _, err := s.GetManifest(ctx, "app", m3.Digest.String()); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Fatalf("manifest of a failed conditional put is stored: %v", err)
	}
}
