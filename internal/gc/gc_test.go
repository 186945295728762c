package gc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/blob"
	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
	blobs3 "github.com/hallmark-dev/hallmark/internal/blob/s3"
	"github.com/hallmark-dev/hallmark/internal/gc"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/postgres"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

var ctx = context.Background()

// blobStore is a blob driver with what the collector needs.
type blobStore interface {
	blob.Store
	Delete(ctx context.Context, ds []digest.Digest) error
	List(ctx context.Context, fn func(blob.Info) error) error
}

// env is a registry over real stores and a collector over the same.
type env struct {
	url   string
	store *sqlstore.Store
	blobs blobStore
	c     *gc.Collector
}

func openSQLite(t *testing.T) *sqlstore.Store {
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "hallmark.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T) *sqlstore.Store {
	s, err := postgres.Open(ctx, postgres.Config{URL: testenv.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openFS(t *testing.T) blobStore {
	s, err := blobfs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var s3Prefixes atomic.Int64

func openS3(t *testing.T) blobStore {
	srv := testenv.StartS3(t)
	s, err := blobs3.New(ctx, blobs3.Config{Bucket: srv.Bucket, Prefix: fmt.Sprintf("gc%d", s3Prefixes.Add(1)), Endpoint: srv.Endpoint,
		Region: srv.Region, PathStyle: true, Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newEnv(t *testing.T, store *sqlstore.Store, blobs blobStore, cfg gc.Config) *env {
	t.Helper()
	h, err := registry.New(blobs, store, nil, registry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	if cfg.Pause == 0 {
		cfg.Pause = -1
	}
	c, err := gc.New(store, blobs, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{url: srv.URL, store: store, blobs: blobs, c: c}
}

var client = &http.Client{Timeout: time.Minute}

func (e *env) do(method, path string, body []byte, hdr ...string) (int, []byte, http.Header) {
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

// pushBlob pushes b to repo (monolithic), or with from mounts it from
// there first (falling back to a push when the mount is refused).
func (e *env) pushBlob(repo, from string, b []byte) error {
	d := digest.FromBytes(b)
	if from != "" {
		st, body, _ := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?mount="+d.String()+"&from="+from, nil)
		if st == http.StatusCreated {
			return nil
		}
		if st != http.StatusAccepted {
			return fmt.Errorf("mount %s: %d %s", d, st, body)
		}
	}
	st, body, _ := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b)
	if st != http.StatusCreated {
		return fmt.Errorf("push blob %s: %d %s", d, st, body)
	}
	return nil
}

// image is an image pushed to a repository.
type image struct {
	repo, tag string
	blobs     [][]byte // config first
	manifest  []byte
}

func (im image) digest() digest.Digest { return digest.FromBytes(im.manifest) }

func manifestOf(config []byte, layers [][]byte, note string) []byte {
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	m := map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config":      desc{"application/vnd.oci.image.config.v1+json", digest.FromBytes(config), len(config)},
		"annotations": map[string]string{"note": note},
	}
	var ls []desc
	for _, l := range layers {
		ls = append(ls, desc{"application/vnd.oci.image.layer.v1.tar+gzip", digest.FromBytes(l), len(l)})
	}
	m["layers"] = ls
	b, _ := json.Marshal(m)
	return b
}

// pushManifest PUTs the image's manifest under its tag; it reports
// MANIFEST_BLOB_UNKNOWN (a blob collected before the manifest came) as
// lost.
func (e *env) pushManifest(im image) (lost bool, err error) {
	st, body, _ := e.do(http.MethodPut, "/v2/"+im.repo+"/manifests/"+im.tag, im.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	switch {
	case st == http.StatusCreated:
		return false, nil
	case st == http.StatusBadRequest && strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN"):
		return true, nil
	}
	return false, fmt.Errorf("push manifest %s:%s: %d %s", im.repo, im.tag, st, body)
}

// check fails unless every image is served: manifest by tag and every
// blob byte for byte.
func (e *env) check(t *testing.T, ims []image) {
	t.Helper()
	for _, im := range ims {
		st, body, _ := e.do(http.MethodGet, "/v2/"+im.repo+"/manifests/"+im.tag, nil)
		if st != http.StatusOK || !bytes.Equal(body, im.manifest) {
			t.Errorf("acknowledged image %s:%s: %d", im.repo, im.tag, st)
			continue
		}
		for _, b := range im.blobs {
			d := digest.FromBytes(b)
			st, body, _ := e.do(http.MethodGet, "/v2/"+im.repo+"/blobs/"+d.String(), nil)
			if st != http.StatusOK || digest.FromBytes(body) != d {
				t.Errorf("blob %s of acknowledged image %s:%s: %d %q", d, im.repo, im.tag, st, body[:min(len(body), 200)])
			}
		}
	}
}

// rowsHaveObjects fails if a blob row names an object the store lacks.
func (e *env) rowsHaveObjects(t *testing.T) int {
	t.Helper()
	n := 0
	err := e.store.ListBlobs(ctx, func(d digest.Digest, size int64) error {
		n++
		got, err := e.blobs.Stat(ctx, d)
		if err != nil || got != size {
			t.Errorf("blob row %s (%d bytes) has no object: %d, %v", d, size, got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// objects lists the stored blobs.
func (e *env) objects(t *testing.T) []digest.Digest {
	t.Helper()
	var out []digest.Digest
	if err := e.blobs.List(ctx, func(i blob.Info) error { out = append(out, i.Digest); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestSweepsRacePushes runs sweeps without pause while clients push
// images (sharing layers across repositories and pushers, mounting, some
// waiting longer than the grace period between their blobs and their
// manifest), delete images and delete tags, on every combination of
// database and blob store, many rounds: every acknowledged image stays
// complete, no blob row ever names a missing object, and once everything
// is past its grace period a sweep leaves exactly the referenced blobs.
func TestSweepsRacePushes(t *testing.T) {
	if testing.Short() {
		t.Skip("many rounds of concurrent pushes and sweeps; skipped with -short")
	}
	for _, tc := range []struct {
		name  string
		db    func(*testing.T) *sqlstore.Store
		blobs func(*testing.T) blobStore
	}{
		{"sqlite+fs", openSQLite, openFS},
		{"postgres+fs", openPostgres, openFS},
		{"sqlite+s3", openSQLite, openS3},
		{"postgres+s3", openPostgres, openS3},
	} {
		t.Run(tc.name, func(t *testing.T) { raceRounds(t, tc.db(t), tc.blobs(t)) })
	}
}

func raceRounds(t *testing.T, store *sqlstore.Store, blobs blobStore) {
	const grace = time.Second
	e := newEnv(t, store, blobs, gc.Config{Grace: grace, UntaggedManifests: true, Batch: 20})
	rng := mrand.New(mrand.NewPCG(1, 2))
	pool := make([][]byte, 40)
	for i := range pool {
		pool[i] = []byte(fmt.Sprintf("layer %d %s", i, strings.Repeat("x", 1000+rng.IntN(3000))))
	}
	repos := []string{"app/a", "app/b"}
	var mu sync.Mutex
	var acked []image
	var lost, deleted, sweeps, collected atomic.Int64
	const rounds, pushers, perPusher = 6, 4, 5
	for round := range rounds {
		stop := make(chan struct{})
		var bg sync.WaitGroup
		bg.Go(func() { // the collector, without pause
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e.c.Sweep(ctx, false)
				if err != nil {
					t.Errorf("sweep: %v", err)
					return
				}
				sweeps.Add(1)
				collected.Add(int64(r.BlobsDeleted))
			}
		})
		bg.Go(func() { // a deleter of acknowledged images and tags
			r := mrand.New(mrand.NewPCG(uint64(round), 7))
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(200+r.IntN(300)) * time.Millisecond):
				}
				mu.Lock()
				if len(acked) < 4 {
					mu.Unlock()
					continue
				}
				i := r.IntN(len(acked))
				im := acked[i]
				acked = slices.Delete(acked, i, i+1)
				mu.Unlock()
				ref := im.digest().String()
				if r.IntN(2) == 0 {
					ref = im.tag // untagged: collected as an untagged manifest
				}
				if st, body, _ := e.do(http.MethodDelete, "/v2/"+im.repo+"/manifests/"+ref, nil); st != http.StatusAccepted {
					t.Errorf("delete %s@%s: %d %s", im.repo, ref, st, body)
				}
				deleted.Add(1)
			}
		})
		var wg sync.WaitGroup
		for p := range pushers {
			wg.Go(func() {
				r := mrand.New(mrand.NewPCG(uint64(round), uint64(p)))
				for i := range perPusher {
					k := r.IntN(len(repos))
					repo, other := repos[k], repos[1-k]
					im := image{repo: repo, tag: fmt.Sprintf("r%d-p%d-%d", round, p, i)}
					for range 2 {
						im.blobs = append(im.blobs, pool[r.IntN(len(pool))])
					}
					im.blobs = append(im.blobs, []byte("unique "+im.tag))
					im.manifest = manifestOf(im.blobs[0], im.blobs[1:], im.tag)
					for attempt := 0; ; attempt++ {
						for _, b := range im.blobs {
							from := ""
							if r.IntN(3) == 0 {
								from = other
							}
							if err := e.pushBlob(repo, from, b); err != nil {
								t.Error(err)
								return
							}
						}
						if r.IntN(5) == 0 {
							// Slower than the grace period: the blobs may be
							// collected before the manifest comes.
							time.Sleep(grace + time.Duration(r.IntN(1000))*time.Millisecond)
						}
						gone, err := e.pushManifest(im)
						if err != nil {
							t.Error(err)
							return
						}
						if !gone {
							break
						}
						lost.Add(1)
						if attempt == 5 {
							t.Errorf("%s:%s lost its blobs 6 times in a row", repo, im.tag)
							return
						}
					}
					mu.Lock()
					acked = append(acked, im)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(stop)
		bg.Wait()
		mu.Lock()
		e.check(t, acked)
		mu.Unlock()
		e.rowsHaveObjects(t)
		if t.Failed() {
			t.Fatalf("round %d failed", round)
		}
	}
	// Everything past its grace period: a sweep leaves exactly the blobs
	// the remaining images reference (and the finished deletions none).
	time.Sleep(grace + 100*time.Millisecond)
	for range 3 { // manifests, then their blobs (queued by the first)
		if _, err := e.c.Sweep(ctx, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(grace + 100*time.Millisecond)
	}
	e.check(t, acked)
	want := map[digest.Digest]bool{}
	for _, im := range acked {
		for _, b := range im.blobs {
			want[digest.FromBytes(b)] = true
		}
	}
	if n := e.rowsHaveObjects(t); n != len(want) {
		t.Errorf("%d blob rows, want the %d the images reference", n, len(want))
	}
	if got := e.objects(t); len(got) != len(want) {
		t.Errorf("%d objects stored, want the %d the images reference", len(got), len(want))
	}
	p, err := store.GCPending(ctx)
	if err != nil || p.Deletions != 0 {
		t.Errorf("pending %+v, %v", p, err)
	}
	t.Logf("%d images acknowledged and kept, %d deleted, %d manifest pushes lost their blobs to a sweep and were pushed again, %d sweeps collected %d blobs",
		len(acked), deleted.Load(), lost.Load(), sweeps.Load(), collected.Load())
	if collected.Load() == 0 || sweeps.Load() < rounds {
		t.Error("the sweeps collected nothing while the pushes ran: the test did not race them")
	}
}

// TestDryRunRemovesNothing: a dry run reports the garbage a sweep then
// deletes, and changes nothing.
func TestDryRunRemovesNothing(t *testing.T) {
	e := newEnv(t, openSQLite(t), openFS(t), gc.Config{Grace: time.Second, UntaggedManifests: true, Batch: 3})
	cfg, layer := []byte(`{"config":1}`), []byte("kept layer")
	im := image{repo: "app", tag: "v1", blobs: [][]byte{cfg, layer}, manifest: manifestOf(cfg, [][]byte{layer}, "kept")}
	untagged := image{repo: "app", tag: "v2", blobs: [][]byte{cfg, []byte("untagged layer")}}
	untagged.manifest = manifestOf(cfg, untagged.blobs[1:], "untagged")
	for _, x := range []image{im, untagged} {
		for _, b := range x.blobs {
			if err := e.pushBlob(x.repo, "", b); err != nil {
				t.Fatal(err)
			}
		}
		if lost, err := e.pushManifest(x); err != nil || lost {
			t.Fatal(lost, err)
		}
	}
	if st, _, _ := e.do(http.MethodDelete, "/v2/app/manifests/v2", nil); st != http.StatusAccepted {
		t.Fatal(st)
	}
	var garbage []digest.Digest
	for i := range 10 {
		b := []byte(fmt.Sprint("garbage ", i))
		if err := e.pushBlob("app", "", b); err != nil {
			t.Fatal(err)
		}
		garbage = append(garbage, digest.FromBytes(b))
	}
	time.Sleep(1100 * time.Millisecond)
	objects, pending := e.objects(t), mustPending(t, e.store)

	r, err := e.c.Sweep(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !r.DryRun || r.BlobsDeleted != len(garbage) || r.ManifestsDeleted != 1 || r.Manifests[0].Digest != untagged.digest() {
		t.Fatalf("dry run: %d blobs, %d manifests %+v; want %d blobs and the untagged manifest", r.BlobsDeleted, r.ManifestsDeleted, r.Manifests, len(garbage))
	}
	var reported []digest.Digest
	var bytes int64
	for _, b := range r.Blobs {
		reported = append(reported, b.Digest)
		bytes += b.Size
	}
	slices.Sort(reported)
	slices.Sort(garbage)
	if !slices.Equal(reported, garbage) || r.BytesFreed != bytes || bytes == 0 {
		t.Errorf("dry run reports %v (%d bytes), want %v", reported, r.BytesFreed, garbage)
	}
	if got := e.objects(t); !slices.Equal(got, objects) {
		t.Errorf("a dry run changed the blob store: %d objects, had %d", len(got), len(objects))
	}
	if got := mustPending(t, e.store); got != pending {
		t.Errorf("a dry run changed the queues: %+v, had %+v", got, pending)
	}
	if st, _, _ := e.do(http.MethodGet, "/v2/app/manifests/"+untagged.digest().String(), nil); st != http.StatusOK {
		t.Errorf("a dry run deleted the untagged manifest: %d", st)
	}
	for _, d := range garbage {
		if st, _, _ := e.do(http.MethodHead, "/v2/app/blobs/"+d.String(), nil); st != http.StatusOK {
			t.Errorf("a dry run deleted %s: %d", d, st)
		}
	}
	// The real sweep deletes what the dry run reported.
	r, err = e.c.Sweep(ctx, false)
	if err != nil || r.BlobsDeleted != len(garbage) || r.ManifestsDeleted != 1 || r.BytesFreed != bytes {
		t.Fatalf("sweep after the dry run: %+v, %v", r, err)
	}
	for _, d := range garbage {
		if st, _, _ := e.do(http.MethodHead, "/v2/app/blobs/"+d.String(), nil); st != http.StatusNotFound {
			t.Errorf("garbage %s: %d after the sweep", d, st)
		}
	}
	e.check(t, []image{im})
	// The sweep was audited, one event per batch, not per blob.
	evs, err := e.store.QueryAudit(ctx, auth.AuditQuery{Action: gc.AuditBlobs, Limit: 100})
	if err != nil || len(evs) == 0 || len(evs) >= len(garbage) {
		t.Errorf("audit: %d events, %v", len(evs), err)
	}
}

func mustPending(t *testing.T, s *sqlstore.Store) meta.GCPending {
	t.Helper()
	p, err := s.GCPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImageDeleteTakesSignatures: deleting an image by digest through the
// registry deletes its cosign signature and attestation tags and its
// signature referrers; another image's stay.
func TestImageDeleteTakesSignatures(t *testing.T) {
	e := newEnv(t, openSQLite(t), openFS(t), gc.Config{})
	push := func(repo, tag string, note string, subject *image, artifactType string) image {
		t.Helper()
		cfg, layer := []byte(`{"c":"`+note+`"}`), []byte("layer "+note)
		im := image{repo: repo, tag: tag, blobs: [][]byte{cfg, layer}}
		var m map[string]any
		json.Unmarshal(manifestOf(cfg, [][]byte{layer}, note), &m)
		if subject != nil {
			m["subject"] = map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.digest(), "size": len(subject.manifest)}
			m["artifactType"] = artifactType
		}
		im.manifest, _ = json.Marshal(m)
		for _, b := range im.blobs {
			if err := e.pushBlob(repo, "", b); err != nil {
				t.Fatal(err)
			}
		}
		ref := tag
		if tag == "" {
			ref = im.digest().String()
		}
		st, body, _ := e.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, im.manifest, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
		if st != http.StatusCreated {
			t.Fatalf("push %s: %d %s", ref, st, body)
		}
		return im
	}
	img := push("app", "v1", "image", nil, "")
	sigTag := strings.Replace(img.digest().String(), ":", "-", 1) + ".sig"
	attTag := strings.Replace(img.digest().String(), ":", "-", 1) + ".att"
	sig := push("app", sigTag, "sig", nil, "")
	att := push("app", attTag, "att", nil, "")
	ref := push("app", "", "bundle", &img, "application/vnd.dev.sigstore.bundle.v0.3+json")
	sbom := push("app", "", "sbom", &img, "application/spdx+json")
	other := push("app", "v2", "other", nil, "")
	if st, body, _ := e.do(http.MethodDelete, "/v2/app/manifests/"+img.digest().String(), nil); st != http.StatusAccepted {
		t.Fatalf("delete: %d %s", st, body)
	}
	for _, gone := range []image{img, sig, att, ref} {
		if st, _, _ := e.do(http.MethodGet, "/v2/app/manifests/"+gone.digest().String(), nil); st != http.StatusNotFound {
			t.Errorf("%s survived its image's delete: %d", gone.digest(), st)
		}
	}
	for _, tag := range []string{"v1", sigTag, attTag} {
		if st, _, _ := e.do(http.MethodGet, "/v2/app/manifests/"+tag, nil); st != http.StatusNotFound {
			t.Errorf("tag %s survived: %d", tag, st)
		}
	}
	for _, kept := range []image{sbom, other} {
		if st, _, _ := e.do(http.MethodGet, "/v2/app/manifests/"+kept.digest().String(), nil); st != http.StatusOK {
			t.Errorf("%s deleted: %d", kept.digest(), st)
		}
	}
	_, body, _ := e.do(http.MethodGet, "/v2/app/referrers/"+img.digest().String(), nil)
	if strings.Contains(string(body), ref.digest().String()) || !strings.Contains(string(body), sbom.digest().String()) {
		t.Errorf("referrers of the deleted image: %s", body)
	}
}

// quarantine holds the manifests of a set (as the quarantine store will).
type quarantine map[digest.Digest]bool

func (q quarantine) Quarantined(_ context.Context, _ string, d digest.Digest) (bool, error) {
	return q[d], nil
}

// TestRetention: a policy keeps the newest tags, removes older ones
// (never protected tags, quarantined images' tags or signature tags), and
// garbage collection then deletes the untagged images with their
// signatures and blobs.
func TestRetention(t *testing.T) {
	store := openSQLite(t)
	q := quarantine{}
	e := newEnv(t, store, openFS(t), gc.Config{Grace: time.Second, UntaggedManifests: true, Quarantine: q})
	if _, err := store.CreateProject(ctx, auth.Project{Path: "group/app", Visibility: auth.VisibilityPrivate, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var ims []image
	for i, tag := range []string{"v1.0.0", "dev-1", "dev-2", "dev-3", "dev-4", "held", "dev-5"} {
		cfg := []byte(fmt.Sprintf(`{"n":%d}`, i))
		im := image{repo: "group/app/svc", tag: tag, blobs: [][]byte{cfg}, manifest: manifestOf(cfg, nil, tag)}
		for _, b := range im.blobs {
			if err := e.pushBlob(im.repo, "", b); err != nil {
				t.Fatal(err)
			}
		}
		if lost, err := e.pushManifest(im); err != nil || lost {
			t.Fatal(lost, err)
		}
		ims = append(ims, im)
		time.Sleep(10 * time.Millisecond) // distinct push times
	}
	q[ims[5].digest()] = true
	// A signature of dev-1: its tag is never a candidate; it goes with dev-1.
	sig := image{repo: "group/app/svc", tag: strings.Replace(ims[1].digest().String(), ":", "-", 1) + ".sig", blobs: [][]byte{[]byte("sig")}}
	sig.manifest = manifestOf(sig.blobs[0], nil, "sig")
	e.pushBlob(sig.repo, "", sig.blobs[0])
	if lost, err := e.pushManifest(sig); err != nil || lost {
		t.Fatal(lost, err)
	}
	p, err := gc.NewPolicy(2, `dev-.*|held`, 0, `v\d+\.\d+\.\d+`)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := e.c.PlanRetention(ctx, "group/app", p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ti := range plan {
		names = append(names, ti.Tag)
	}
	// Newest first: dev-5 and held stay (the two newest matching; held is
	// quarantined too), v1.0.0 is protected, the other four go.
	if want := []string{"dev-1", "dev-2", "dev-3", "dev-4"}; !slices.Equal(slices.Sorted(slices.Values(names)), want) {
		t.Fatalf("plan %v, want %v", names, want)
	}
	if err := store.SetRetention(ctx, "group/app", p.JSON()); err != nil {
		t.Fatal(err)
	}
	r, err := e.c.Sweep(ctx, false) // applies the policy (untags)
	if err != nil || r.TagsRemoved != 4 || len(r.Errors) > 0 {
		t.Fatalf("sweep: %+v, %v", r, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if r, err = e.c.Sweep(ctx, false); err != nil || r.ManifestsDeleted != 5 { // four images and dev-1's signature
		t.Fatalf("second sweep deleted %d manifests (%+v), %v; want 5", r.ManifestsDeleted, r.Manifests, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if r, err = e.c.Sweep(ctx, false); err != nil || r.BlobsDeleted != 5 {
		t.Fatalf("third sweep deleted %d blobs, %v; want 5", r.BlobsDeleted, err)
	}
	e.check(t, []image{ims[0], ims[5], ims[6]})
	for _, im := range ims[1:5] {
		if st, _, _ := e.do(http.MethodGet, "/v2/"+im.repo+"/manifests/"+im.digest().String(), nil); st != http.StatusNotFound {
			t.Errorf("%s: %d", im.tag, st)
		}
	}
	evs, err := store.QueryAudit(ctx, auth.AuditQuery{Action: gc.AuditRetention, Limit: 10})
	if err != nil || len(evs) != 1 || evs[0].Repository != "group/app/svc" || !strings.Contains(evs[0].Detail, "removed 4 tags") {
		t.Errorf("retention audit: %+v, %v", evs, err)
	}
	// The policy ran; it is not due again within the hour.
	if r, err := e.c.Sweep(ctx, false); err != nil || r.TagsRemoved != 0 {
		t.Errorf("policy ran again: %+v, %v", r, err)
	}
}

// TestCrashedDeletionsFinished: tombstones a dead collector left (rows
// deleted, objects maybe not) make pushes of their digests wait; a later
// sweep deletes the objects and lets the pushes through.
func TestCrashedDeletionsFinished(t *testing.T) {
	store := openSQLite(t)
	e := newEnv(t, store, openFS(t), gc.Config{Grace: time.Second})
	b := []byte("orphaned by a crash")
	d := digest.FromBytes(b)
	if err := e.pushBlob("app", "", b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	// The dead collector: its transaction committed, then it died.
	batch, err := store.CollectBlobs(ctx, meta.CollectOptions{Now: time.Now(), Grace: time.Second, Limit: 10})
	if err != nil || len(batch.Deleted) != 1 {
		t.Fatalf("%+v, %v", batch, err)
	}
	if st, _, _ := e.do(http.MethodHead, "/v2/app/blobs/"+d.String(), nil); st != http.StatusNotFound {
		t.Errorf("a blob being deleted is served: %d", st)
	}
	if _, err := e.blobs.Stat(ctx, d); err != nil {
		t.Fatalf("the object should still be there: %v", err)
	}
	// A push of the same content waits for the deletion to finish.
	h, _ := registry.New(e.blobs, store, nil, registry.Config{BlobDeletingWait: 200 * time.Millisecond})
	short := httptest.NewServer(h)
	defer short.Close()
	res, err := http.Post(short.URL+"/v2/app/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("push during the deletion: %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	// Fresh tombstones are their collector's; a stale one is taken over.
	if n, err := e.c.FinishInterrupted(ctx); err != nil || n != 0 {
		t.Fatalf("finished a fresh deletion: %d, %v", n, err)
	}
	later := gcAt(t, store, e.blobs, time.Now().Add(time.Minute))
	if n, err := later.FinishInterrupted(ctx); err != nil || n != 1 {
		t.Fatalf("FinishInterrupted = %d, %v", n, err)
	}
	if _, err := e.blobs.Stat(ctx, d); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("object after the deletion finished: %v", err)
	}
	if err := e.pushBlob("app", "", b); err != nil {
		t.Fatal(err)
	}
	if got, err := e.blobs.Stat(ctx, d); err != nil || got != int64(len(b)) {
		t.Errorf("pushed again: %d, %v", got, err)
	}
}

// gcAt is a collector whose clock says now.
func gcAt(t *testing.T, store *sqlstore.Store, blobs blobStore, now time.Time) *gc.Collector {
	c, err := gc.New(store, blobs, nil, gc.Config{Grace: time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestScanOrphans: objects no row names (a crash before garbage collection
// existed) are queued by the scan and collected a grace period after
// their modification time.
func TestScanOrphans(t *testing.T) {
	store := openSQLite(t)
	e := newEnv(t, store, openFS(t), gc.Config{Grace: time.Second})
	kept := []byte("linked")
	if err := e.pushBlob("app", "", kept); err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{}`)
	e.pushBlob("app", "", cfg)
	if lost, err := e.pushManifest(image{repo: "app", tag: "v", manifest: manifestOf(cfg, [][]byte{kept}, "")}); err != nil || lost {
		t.Fatal(lost, err)
	}
	// An object behind the database's back.
	orphan := []byte("orphan")
	up, _ := e.blobs.Uploads().New(ctx, "app", digest.SHA256)
	up.Append(ctx, 0, bytes.NewReader(orphan))
	if _, err := up.Commit(ctx, digest.FromBytes(orphan)); err != nil {
		t.Fatal(err)
	}
	if n, err := e.c.ScanOrphans(ctx, true); err != nil || n != 1 {
		t.Fatalf("dry scan found %d, %v", n, err)
	}
	if p := mustPending(t, store); p.Blobs != 2 {
		t.Fatalf("a dry scan queued: %+v", p)
	}
	if n, err := e.c.ScanOrphans(ctx, false); err != nil || n != 1 {
		t.Fatalf("scan queued %d, %v", n, err)
	}
	if n, _ := e.c.ScanOrphans(ctx, false); n != 0 {
		t.Errorf("second scan queued %d", n)
	}
	time.Sleep(1100 * time.Millisecond)
	r, err := e.c.Sweep(ctx, false)
	if err != nil || r.BlobsDeleted != 1 || r.Blobs[0].Digest != digest.FromBytes(orphan) || r.BytesFreed != int64(len(orphan)) {
		t.Fatalf("sweep: %+v, %v", r, err)
	}
	if got := e.objects(t); len(got) != 2 {
		t.Errorf("objects after the sweep: %v", got)
	}
}

// TestPushRacesCollectionOfSameDigest: a blob is garbage and due, and a
// sweep and several pushes of the same content start at once, many
// rounds: whichever wins, the pushes that were acknowledged have their
// blob (a push that committed its object while the sweep deleted it
// would leave a link to nothing), and no row names a missing object.
func TestPushRacesCollectionOfSameDigest(t *testing.T) {
	if testing.Short() {
		t.Skip("many rounds; skipped with -short")
	}
	for _, tc := range []struct {
		name  string
		db    func(*testing.T) *sqlstore.Store
		blobs func(*testing.T) blobStore
	}{
		{"sqlite+fs", openSQLite, openFS},
		{"postgres+fs", openPostgres, openFS},
		{"sqlite+s3", openSQLite, openS3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const grace = 300 * time.Millisecond
			e := newEnv(t, tc.db(t), tc.blobs(t), gc.Config{Grace: grace})
			var collected, acknowledged int
			for round := range 30 {
				b := []byte(fmt.Sprint("contended blob ", round))
				d := digest.FromBytes(b)
				if err := e.pushBlob("app", "", b); err != nil {
					t.Fatal(err)
				}
				time.Sleep(grace + 50*time.Millisecond) // garbage, and due
				start := make(chan struct{})
				var wg sync.WaitGroup
				var sweep *gc.Result
				wg.Go(func() {
					<-start
					r, err := e.c.Sweep(ctx, false)
					if err != nil {
						t.Error(err)
					}
					sweep = r
				})
				oks := make([]bool, 3)
				for i := range oks {
					wg.Go(func() {
						<-start
						oks[i] = e.pushBlob("app", "", b) == nil
					})
				}
				close(start)
				wg.Wait()
				if sweep != nil {
					collected += sweep.BlobsDeleted
				}
				for _, ok := range oks {
					if !ok {
						continue
					}
					acknowledged++
					if st, body, _ := e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil); st != http.StatusOK || !bytes.Equal(body, b) {
						t.Errorf("round %d: an acknowledged push of %s is not served: %d", round, d, st)
						break
					}
				}
				e.rowsHaveObjects(t)
				if t.Failed() {
					t.Fatalf("round %d", round)
				}
			}
			t.Logf("%d acknowledged pushes, %d collections won the race", acknowledged, collected)
		})
	}
}

// TestRetentionKeepsQuarantinedEvidence: with the store's own quarantine
// records (as the server wires it), a quarantined image's tag is never
// a retention candidate, and lifting the quarantine makes it one again.
func TestRetentionKeepsQuarantinedEvidence(t *testing.T) {
	store := openSQLite(t)
	e := newEnv(t, store, openFS(t), gc.Config{Grace: time.Second, UntaggedManifests: true, Quarantine: store})
	if _, err := store.CreateProject(ctx, auth.Project{Path: "group/app", Visibility: auth.VisibilityPrivate, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var ims []image
	for i, tag := range []string{"dev-1", "dev-2", "dev-3"} {
		cfg := []byte(fmt.Sprintf(`{"q":%d}`, i))
		im := image{repo: "group/app/svc", tag: tag, blobs: [][]byte{cfg}, manifest: manifestOf(cfg, nil, tag)}
		if err := e.pushBlob(im.repo, "", cfg); err != nil {
			t.Fatal(err)
		}
		if lost, err := e.pushManifest(im); err != nil || lost {
			t.Fatal(lost, err)
		}
		ims = append(ims, im)
		time.Sleep(10 * time.Millisecond) // distinct push times
	}
	held := meta.QuarantineChange{Items: []meta.QuarantineItem{{Repository: "group/app/svc", Digest: ims[0].digest()}},
		Reason: "incident", Actor: "admin", ActorKind: auth.KindUser, At: time.Now()}
	if _, err := store.Quarantine(ctx, held); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPolicy(1, `dev-.*`, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	plan := func() []string {
		t.Helper()
		tags, err := e.c.PlanRetention(ctx, "group/app", p)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ti := range tags {
			names = append(names, ti.Tag)
		}
		return slices.Sorted(slices.Values(names))
	}
	if got := plan(); !slices.Equal(got, []string{"dev-2"}) {
		t.Fatalf("plan with dev-1 quarantined: %v, want [dev-2]", got)
	}
	if _, err := store.LiftQuarantine(ctx, held); err != nil {
		t.Fatal(err)
	}
	if got := plan(); !slices.Equal(got, []string{"dev-1", "dev-2"}) {
		t.Fatalf("plan after the lift: %v, want [dev-1 dev-2]", got)
	}
}
