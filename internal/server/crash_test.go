package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	_ "modernc.org/sqlite"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// startServer runs the hallmark binary (auth off) on a random loopback
// port over dir and waits until it listens.
func startServer(t *testing.T, bin, dir string) *testenv.ServerProcess {
	t.Helper()
	return testenv.StartServerProcess(t, bin, dir, nil, "--log-level", "info", "--auth", "off")
}

var client = &http.Client{Timeout: 5 * time.Minute}

func do(_ *testing.T, method, url string, body io.Reader, length int64, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.ContentLength = length
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, b, err
}

// mustDo is do for requests that must get the given status.
func mustDo(t *testing.T, status int, method, url string, body []byte, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	res, b, err := do(t, method, url, rd, int64(len(body)), hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if res.StatusCode != status {
		t.Fatalf("%s %s: %s, want %d: %s", method, url, res.Status, status, b)
	}
	return res, b
}

// acked is what the server acknowledged, to be checked after a crash.
type acked struct {
	mu        sync.Mutex
	blobs     map[string][]byte        // "repo@digest" -> content
	manifests map[string][]byte        // "repo@digest" -> exact bytes
	tags      map[string]digest.Digest // "repo:tag" -> digest
	deleted   map[string]bool          // "repo:tag" deleted and acknowledged
	maybe     map[string]maybeManifest // in flight when the server died
}

type maybeManifest struct {
	repo string
	tags []string
	body []byte
}

func newAcked() *acked {
	return &acked{blobs: map[string][]byte{}, manifests: map[string][]byte{}, tags: map[string]digest.Digest{}, deleted: map[string]bool{}, maybe: map[string]maybeManifest{}}
}

func pushBlob(t *testing.T, base, repo string, b []byte, a *acked) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	mustDo(t, http.StatusCreated, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b)
	a.mu.Lock()
	a.blobs[repo+"@"+d.String()] = b
	a.mu.Unlock()
	return d
}

// pushBlobChunked uploads b in three PATCH chunks and a PUT.
func pushBlobChunked(t *testing.T, base, repo string, b []byte, a *acked) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	res, _ := mustDo(t, http.StatusAccepted, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil)
	loc := res.Header.Get("Location")
	third := len(b) / 3
	for _, c := range [][2]int{{0, third}, {third, 2 * third}} {
		res, _ = mustDo(t, http.StatusAccepted, http.MethodPatch, base+loc, b[c[0]:c[1]], "Content-Range", fmt.Sprintf("%d-%d", c[0], c[1]-1))
		loc = res.Header.Get("Location")
	}
	mustDo(t, http.StatusCreated, http.MethodPut, base+loc+"?digest="+d.String(), b[2*third:], "Content-Range", fmt.Sprintf("%d-%d", 2*third, len(b)-1))
	a.mu.Lock()
	a.blobs[repo+"@"+d.String()] = b
	a.mu.Unlock()
	return d
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// imageManifest returns a manifest over config and layers (pushed already).
func imageManifest(cfg []byte, layers [][]byte, note string) []byte {
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc{"application/vnd.oci.image.config.v1+json", digest.FromBytes(cfg), len(cfg)},
		"annotations":   map[string]string{"note": note},
	}
	var ls []desc
	for _, l := range layers {
		ls = append(ls, desc{"application/vnd.oci.image.layer.v1.tar+gzip", digest.FromBytes(l), len(l)})
	}
	m["layers"] = ls
	b, _ := json.MarshalIndent(m, "", "   ")
	return b
}

const manifestMT = "application/vnd.oci.image.manifest.v1+json"

// pushManifest PUTs body by digest with ?tag= for each tag; it records the
// manifest as acknowledged on 201 and returns whether it was.
func pushManifest(t *testing.T, base, repo string, body []byte, tags []string, a *acked) (bool, error) {
	d := digest.FromBytes(body)
	u := base + "/v2/" + repo + "/manifests/" + d.String()
	for i, tg := range tags {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "tag=" + tg
	}
	res, b, err := do(t, http.MethodPut, u, bytes.NewReader(body), int64(len(body)), "Content-Type", manifestMT)
	if err != nil {
		return false, err
	}
	if res.StatusCode != http.StatusCreated {
		return false, fmt.Errorf("PUT %s: %s: %s", u, res.Status, b)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.manifests[repo+"@"+d.String()] = body
	for _, tg := range tags {
		a.tags[repo+":"+tg] = d
		delete(a.deleted, repo+":"+tg)
	}
	delete(a.maybe, repo+"@"+d.String())
	return true, nil
}

// genReader streams n pseudo-random bytes from a seed without holding them.
// With a hold channel it stops after holdAt bytes until hold is closed (then
// fails), so a kill is sure to hit the upload in the middle.
type genReader struct {
	rng    *mrand.ChaCha8
	left   int64
	read   *atomic.Int64
	holdAt int64
	hold   <-chan struct{}
}

func newGen(seed byte, n int64, read *atomic.Int64) *genReader {
	var s [32]byte
	s[0] = seed
	return &genReader{rng: mrand.NewChaCha8(s), left: n, read: read, holdAt: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if g.hold != nil && g.read.Load() >= g.holdAt {
		<-g.hold
		return 0, errors.New("upload stopped by the test")
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	g.rng.Read(p)
	g.left -= int64(len(p))
	if g.read != nil {
		g.read.Add(int64(len(p)))
	}
	return len(p), nil
}

func genDigest(seed byte, n int64) digest.Digest {
	h := sha256.New()
	io.Copy(h, newGen(seed, n, nil))
	return digest.NewDigest(digest.SHA256, h)
}

// verify checks that everything acknowledged is served byte for byte, that
// deleted tags stay deleted, and that in-flight manifests are all or
// nothing.
func verify(t *testing.T, base string, a *acked) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, want := range a.blobs {
		repo, d, _ := strings.Cut(key, "@")
		res, body := mustDo(t, http.StatusOK, http.MethodGet, base+"/v2/"+repo+"/blobs/"+d, nil)
		if !bytes.Equal(body, want) || res.Header.Get("Docker-Content-Digest") != d {
			t.Errorf("acknowledged blob %s differs after the crash", key)
		}
	}
	for key, want := range a.manifests {
		repo, d, _ := strings.Cut(key, "@")
		_, body := mustDo(t, http.StatusOK, http.MethodGet, base+"/v2/"+repo+"/manifests/"+d, nil)
		if !bytes.Equal(body, want) {
			t.Errorf("acknowledged manifest %s differs after the crash", key)
		}
	}
	for key, want := range a.tags {
		repo, tag, _ := strings.Cut(key, ":")
		res, body := mustDo(t, http.StatusOK, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
		if got := res.Header.Get("Docker-Content-Digest"); got != want.String() || digest.FromBytes(body) != want {
			t.Errorf("acknowledged tag %s -> %s, want %s", key, got, want)
		}
	}
	for key := range a.deleted {
		repo, tag, _ := strings.Cut(key, ":")
		mustDo(t, http.StatusNotFound, http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
	}
	present, absent := 0, 0
	for key, m := range a.maybe {
		_, d, _ := strings.Cut(key, "@")
		res, body, err := do(t, http.MethodGet, base+"/v2/"+m.repo+"/manifests/"+d, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		switch res.StatusCode {
		case http.StatusOK:
			present++
			if !bytes.Equal(body, m.body) {
				t.Errorf("in-flight manifest %s is served with different bytes", key)
			}
			for _, tg := range m.tags {
				if r, _, _ := do(t, http.MethodGet, base+"/v2/"+m.repo+"/manifests/"+tg, nil, 0); r.StatusCode != http.StatusOK || r.Header.Get("Docker-Content-Digest") != d {
					t.Errorf("in-flight manifest %s is stored but its tag %s is not (%d)", key, tg, r.StatusCode)
				}
			}
		case http.StatusNotFound:
			absent++
			for _, tg := range m.tags {
				if r, _, _ := do(t, http.MethodGet, base+"/v2/"+m.repo+"/manifests/"+tg, nil, 0); r.StatusCode != http.StatusNotFound {
					t.Errorf("tag %s of a lost in-flight manifest is visible (%d)", tg, r.StatusCode)
				}
			}
		default:
			t.Errorf("in-flight manifest %s: %s", key, res.Status)
		}
	}
	t.Logf("verified %d blobs, %d manifests, %d tags, %d deleted tags; in flight at the kill: %d committed, %d lost",
		len(a.blobs), len(a.manifests), len(a.tags), len(a.deleted), present, absent)
}

// manifestStorm pushes manifests with two tags each from several workers
// until stop is closed or the server goes away. It records each request as
// "maybe" before sending, and as acknowledged on 201.
func manifestStorm(t *testing.T, base, repo string, cfg []byte, layers [][]byte, a *acked, stop <-chan struct{}, ackedCount *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := imageManifest(cfg, layers, fmt.Sprintf("storm %s %d %d %s", repo, w, i, strings.Repeat("x", mrand.IntN(20000))))
				// Fresh tags only: a moved tag would legitimately point at
				// an in-flight manifest after the crash.
				tags := []string{fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("w%d-%d-b", w, i)}
				d := digest.FromBytes(body)
				a.mu.Lock()
				a.maybe[repo+"@"+d.String()] = maybeManifest{repo: repo, tags: tags, body: body}
				a.mu.Unlock()
				ok, err := pushManifest(t, base, repo, body, tags, a)
				if err != nil {
					return // the server died
				}
				if ok {
					ackedCount.Add(1)
				}
			}
		}()
	}
	return &wg
}

// TestCrashSafety kills -9 a real `hallmark server` process in the middle
// of a large upload and of manifest pushes, restarts it on the same data
// directory and checks that everything acknowledged survived intact and
// nothing half-written is served.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts the hallmark binary several times; skipped with -short")
	}
	bin := testenv.HallmarkBinary(t)
	dir := t.TempDir()
	a := newAcked()

	// Run 1: acknowledged content.
	p := startServer(t, bin, dir)
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	var layers [][]byte
	for i := 0; i < 3; i++ {
		layers = append(layers, randBytes(100000+i*300000))
	}
	for _, repo := range []string{"crash/app", "crash/other"} {
		pushBlob(t, p.URL, repo, cfg, a)
		pushBlob(t, p.URL, repo, layers[0], a)
		pushBlobChunked(t, p.URL, repo, layers[1], a)
		pushBlobChunked(t, p.URL, repo, layers[2], a)
		for i := 0; i < 5; i++ {
			body := imageManifest(cfg, layers, fmt.Sprint("base ", repo, i))
			if ok, err := pushManifest(t, p.URL, repo, body, []string{fmt.Sprint("v", i), "latest"}, a); !ok {
				t.Fatal(err)
			}
		}
	}
	// An acknowledged tag delete must stay deleted.
	mustDo(t, http.StatusAccepted, http.MethodDelete, p.URL+"/v2/crash/app/manifests/v0", nil)
	a.mu.Lock()
	delete(a.tags, "crash/app:v0")
	a.deleted["crash/app:v0"] = true
	a.mu.Unlock()
	// A chunked upload whose first chunk is acknowledged, left open.
	partial := randBytes(3 << 20)
	res, _ := mustDo(t, http.StatusAccepted, http.MethodPost, p.URL+"/v2/crash/app/blobs/uploads/", nil)
	res, _ = mustDo(t, http.StatusAccepted, http.MethodPatch, p.URL+res.Header.Get("Location"), partial[:1<<20], "Content-Range", fmt.Sprintf("0-%d", 1<<20-1))
	partialLoc := res.Header.Get("Location")

	// Kill 1: in the middle of a 384 MiB monolithic upload (streamed from
	// a generator, never in memory), with manifest pushes in flight.
	const bigSize = 384 << 20
	bigDigest := genDigest(7, bigSize)
	var sent atomic.Int64
	bigErr := make(chan error, 1)
	stop := make(chan struct{})
	big := newGen(7, bigSize, &sent)
	big.holdAt, big.hold = bigSize*9/10, stop
	// Manifests need their blobs in crash/storm first.
	pushBlob(t, p.URL, "crash/storm", cfg, a)
	pushBlob(t, p.URL, "crash/storm", layers[0], a)
	go func() {
		_, _, err := do(t, http.MethodPost, p.URL+"/v2/crash/big/blobs/uploads/?digest="+bigDigest.String(), big, bigSize)
		bigErr <- err
	}()
	var stormAcked atomic.Int64
	wg := manifestStorm(t, p.URL, "crash/storm", cfg, layers[:1], a, stop, &stormAcked)
	waitFor(t, "the big upload to be a third through and manifests acknowledged", func() bool {
		return sent.Load() > bigSize/3 && stormAcked.Load() > 10
	})
	p.Kill()
	close(stop)
	wg.Wait()
	if err := <-bigErr; err == nil {
		t.Fatal("the big upload finished before the kill; the test did not interrupt it")
	}
	t.Logf("kill 1: %d MiB of %d sent, %d storm manifests acknowledged", sent.Load()>>20, bigSize>>20, stormAcked.Load())

	// Run 2: everything acknowledged is there; the big blob is not.
	p = startServer(t, bin, dir)
	verify(t, p.URL, a)
	bigPath := filepath.Join(dir, "blobs", "blobs", "sha256", bigDigest.Encoded()[:2], bigDigest.Encoded())
	mustDo(t, http.StatusNotFound, http.MethodGet, p.URL+"/v2/crash/big/blobs/"+bigDigest.String(), nil)
	mustDo(t, http.StatusNotFound, http.MethodHead, p.URL+"/v2/crash/big/blobs/"+bigDigest.String(), nil)
	if _, err := os.Stat(bigPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("interrupted blob is in the blob store: %v", err)
	}
	// The acknowledged part of the open chunked upload survived: resume it.
	res, _ = mustDo(t, http.StatusNoContent, http.MethodGet, p.URL+partialLoc, nil)
	if res.Header.Get("Range") != fmt.Sprintf("0-%d", 1<<20-1) {
		t.Fatalf("open upload after the crash: Range %q", res.Header.Get("Range"))
	}
	res, _ = mustDo(t, http.StatusAccepted, http.MethodPatch, p.URL+partialLoc, partial[1<<20:2<<20], "Content-Range", fmt.Sprintf("%d-%d", 1<<20, 2<<20-1))
	partialLoc = res.Header.Get("Location")

	// Kill 2: during a burst of manifest pushes (and a streamed PATCH).
	a.mu.Lock()
	a.maybe = map[string]maybeManifest{}
	a.mu.Unlock()
	stop = make(chan struct{})
	stormAcked.Store(0)
	pushBlob(t, p.URL, "crash/storm2", cfg, a)
	pushBlob(t, p.URL, "crash/storm2", layers[0], a)
	wg = manifestStorm(t, p.URL, "crash/storm2", cfg, layers[:1], a, stop, &stormAcked)
	var sent2 atomic.Int64
	stream := newGen(9, 256<<20, &sent2)
	stream.holdAt, stream.hold = 32<<20, stop
	go do(t, http.MethodPatch, p.URL+partialLoc, stream, -1)
	waitFor(t, "manifests acknowledged", func() bool { return stormAcked.Load() > 30 && sent2.Load() > 8<<20 })
	p.Kill()
	close(stop)
	wg.Wait()
	t.Logf("kill 2: %d storm manifests acknowledged, %d in flight", stormAcked.Load(), len(a.maybe))

	// Run 3: verify again, finish the open upload, push new content.
	p = startServer(t, bin, dir)
	verify(t, p.URL, a)
	res, _ = mustDo(t, http.StatusNoContent, http.MethodGet, p.URL+partialLoc, nil)
	if res.Header.Get("Range") != fmt.Sprintf("0-%d", 2<<20-1) {
		t.Fatalf("open upload after the second crash: Range %q (the killed streamed PATCH must not count)", res.Header.Get("Range"))
	}
	pd := digest.FromBytes(partial)
	mustDo(t, http.StatusCreated, http.MethodPut, p.URL+partialLoc+"?digest="+pd.String(), partial[2<<20:], "Content-Range", fmt.Sprintf("%d-%d", 2<<20, len(partial)-1))
	_, got := mustDo(t, http.StatusOK, http.MethodGet, p.URL+"/v2/crash/app/blobs/"+pd.String(), nil)
	if !bytes.Equal(got, partial) {
		t.Fatal("blob resumed across two crashes differs")
	}
	after := randBytes(5000)
	pushBlob(t, p.URL, "crash/after", after, a)
	pushBlob(t, p.URL, "crash/after", cfg, a)
	pushBlob(t, p.URL, "crash/after", layers[0], a)
	if ok, err := pushManifest(t, p.URL, "crash/after", imageManifest(cfg, layers[:1], "after"), []string{"latest"}, a); !ok {
		t.Fatalf("push after restart: %v", err)
	}
	verify(t, p.URL, a)
	p.Kill()

	// The database file is consistent.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "hallmark.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(context.Background(), `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
