package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// openDB opens the server's SQLite database next to it (WAL: the server
// keeps running).
func openDB(t *testing.T, dataDir string) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dataDir, "hallmark.db"), ReadConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// apiCall is one retention API request with Basic credentials (user "").
func apiCall(t *testing.T, method, u, user, pw string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	res, err := newHTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, res.Header
}

// TestRetentionAPI: maintainers and admins manage a project's retention
// policy over the API; others are refused, as are malformed, oversized
// and slow bodies, floods of bad credentials, and a preview is bounded.
func TestRetentionAPI(t *testing.T) {
	e := startAuthServer(t, func(c *config.Server) { c.BodyReadTimeout = time.Second })
	adm := e.admin(t)
	ctx := context.Background()
	for _, p := range []string{"group/app", "other/app"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct{ name, project, role string }{{"maint", "group/app", "maintainer"}, {"dev", "group/app", "developer"}, {"stranger", "other/app", "maintainer"}} {
		if _, err := adm.AddUser(ctx, u.name, u.name+"-password-1234", false); err != nil {
			t.Fatal(err)
		}
		if err := adm.Store.SetMember(ctx, u.project, u.name, auth.Role(u.role)); err != nil {
			t.Fatal(err)
		}
	}
	pw := func(u string) string { return u + "-password-1234" }
	base := e.URL + "/api/v1/projects/group/app/retention"
	policy := []byte(`{"keep_n": 1, "tag_regex": "dev-.*", "protected_regex": "dev-keep"}`)

	// Who may: a maintainer and the admin; a developer sees it but may
	// not manage it; another project's maintainer does not see it.
	for _, tc := range []struct {
		user, pw string
		want     int
	}{
		{"", "", http.StatusUnauthorized},
		{"maint", "wrong", http.StatusUnauthorized},
		{"dev", pw("dev"), http.StatusForbidden},
		{"stranger", pw("stranger"), http.StatusNotFound},
		{"maint", pw("maint"), http.StatusOK},
		{"admin", e.AdminPassword, http.StatusOK},
	} {
		for _, m := range []struct {
			method string
			path   string
			body   []byte
			ok     int
		}{
			{http.MethodGet, "", nil, http.StatusOK},
			{http.MethodPut, "", policy, http.StatusOK},
			{http.MethodPost, "/preview", nil, http.StatusOK},
		} {
			want := tc.want
			if want == http.StatusOK {
				want = m.ok
			}
			st, body, hdr := apiCall(t, m.method, base+m.path, tc.user, tc.pw, m.body)
			if st != want {
				t.Errorf("%s %s as %q: %d %s, want %d", m.method, m.path, tc.user, st, body, want)
			}
			if st == http.StatusUnauthorized && !strings.Contains(hdr.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without a Basic challenge")
			}
		}
	}
	// The admin token works too.
	tok, err := os.ReadFile(filepath.Join(e.DataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, base, nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if res, err := newHTTPClient().Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("admin token: %v %v", res.StatusCode, err)
	}

	// The stored policy, and what it removes (a preview: nothing changes).
	db := openDB(t, e.DataDir)
	img := func(repo, seed string, tags ...string) {
		m := &meta.Manifest{Repository: repo, MediaType: "application/vnd.oci.image.manifest.v1+json", Payload: []byte(`{"seed":"` + seed + `"}`)}
		m.Digest = digest.FromBytes(m.Payload)
		if err := db.PutManifest(ctx, m, tags); err != nil {
			t.Fatal(err)
		}
	}
	img("group/app/svc", "a", "dev-1")
	time.Sleep(5 * time.Millisecond)
	img("group/app/svc", "b", "dev-2", "dev-keep")
	time.Sleep(5 * time.Millisecond)
	img("group/app/svc", "c", "dev-3", "latest")
	st, body, _ := apiCall(t, http.MethodGet, base, "maint", pw("maint"), nil)
	var got struct {
		Project string          `json:"project"`
		Policy  json.RawMessage `json:"policy"`
		Updated *time.Time      `json:"updated"`
	}
	if err := json.Unmarshal(body, &got); st != http.StatusOK || err != nil || got.Project != "group/app" || got.Updated == nil ||
		string(got.Policy) != `{"keep_n":1,"tag_regex":"dev-.*","protected_regex":"dev-keep"}` {
		t.Fatalf("GET: %d %s", st, body)
	}
	st, body, _ = apiCall(t, http.MethodPost, base+"/preview", "maint", pw("maint"), nil)
	var plan struct {
		Count  int `json:"count"`
		Remove []struct {
			Repository, Tag string
		} `json:"remove"`
	}
	if err := json.Unmarshal(body, &plan); st != http.StatusOK || err != nil || plan.Count != 2 || len(plan.Remove) != 2 ||
		plan.Remove[0].Tag != "dev-2" || plan.Remove[1].Tag != "dev-1" {
		t.Fatalf("preview: %d %s", st, body)
	}
	// Another policy previewed without storing it.
	st, body, _ = apiCall(t, http.MethodPost, base+"/preview", "maint", pw("maint"), []byte(`{"keep_n": 5}`))
	if !strings.Contains(string(body), `"count":0`) || st != http.StatusOK {
		t.Errorf("preview of a given policy: %d %s", st, body)
	}
	if tags, _ := db.ProjectTags(ctx, "group/app"); len(tags) != 5 {
		t.Errorf("a preview removed tags: %d left", len(tags))
	}
	// Amplification: a preview lists at most 1000 tags, however many.
	var many []string
	for i := range 1500 {
		many = append(many, fmt.Sprintf("dev-many-%04d", i))
	}
	img("group/app/svc", "many", many...)
	st, body, _ = apiCall(t, http.MethodPost, base+"/preview", "maint", pw("maint"), nil)
	if err := json.Unmarshal(body, &plan); st != http.StatusOK || err != nil || plan.Count < 1500 || len(plan.Remove) != 1000 {
		t.Errorf("preview of 1500+ tags: %d, count %d, listed %d", st, plan.Count, len(plan.Remove))
	}

	// Malformed, oversized, wrong method, unknown project.
	for _, tc := range []struct {
		method, path string
		body         []byte
		want         int
	}{
		{http.MethodPut, "", []byte(`{"keep_n": -1}`), http.StatusBadRequest},
		{http.MethodPut, "", []byte(`{}`), http.StatusBadRequest},
		{http.MethodPut, "", []byte(`{"keep_n": 1, "tag_regex": "("}`), http.StatusBadRequest},
		{http.MethodPut, "", []byte(`{"keep_n": 1, "x": 1}`), http.StatusBadRequest},
		{http.MethodPut, "", []byte(`not json`), http.StatusBadRequest},
		{http.MethodPut, "", bytes.Repeat([]byte(" "), 10<<10), http.StatusRequestEntityTooLarge},
		{http.MethodPost, "/preview", bytes.Repeat([]byte(" "), 10<<10), http.StatusRequestEntityTooLarge},
		{http.MethodPatch, "", policy, http.StatusMethodNotAllowed},
		{http.MethodGet, "/preview", nil, http.StatusMethodNotAllowed},
	} {
		if st, body, _ := apiCall(t, tc.method, base+tc.path, "maint", pw("maint"), tc.body); st != tc.want {
			t.Errorf("%s %s (%d bytes): %d %s, want %d", tc.method, tc.path, len(tc.body), st, body, tc.want)
		}
	}
	for _, u := range []string{e.URL + "/api/v1/projects/nope/retention", e.URL + "/api/v1/projects/Bad..Name/retention", e.URL + "/api/v1/projects/group/app/other"} {
		if st, _, _ := apiCall(t, http.MethodGet, u, "admin", e.AdminPassword, nil); st != http.StatusNotFound && st != http.StatusBadRequest {
			t.Errorf("GET %s: %d", u, st)
		}
	}
	// A slow body is cut off (the server's body progress deadline).
	conn, err := net.Dial("tcp", e.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	basic := "Basic " + b64("maint:"+pw("maint"))
	fmt.Fprintf(conn, "PUT /api/v1/projects/group/app/retention HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\nContent-Length: 100\r\n\r\n{", e.Host, basic)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	for i := 0; i < 20; i++ { // one byte a second, well under the pace the server wants
		if _, err := conn.Write([]byte(" ")); err != nil {
			break
		}
		time.Sleep(time.Second)
		if _, err := conn.Read(make([]byte, 1)); err == nil || !isTimeout(err) {
			break // answered or closed
		}
	}
	if time.Since(start) > 15*time.Second {
		t.Errorf("a slow body held the connection for %v", time.Since(start))
	}
	// DELETE, audited with the actor.
	if st, body, _ := apiCall(t, http.MethodDelete, base, "maint", pw("maint"), nil); st != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", st, body)
	}
	if st, _, _ := apiCall(t, http.MethodPost, base+"/preview", "maint", pw("maint"), nil); st != http.StatusNotFound {
		t.Errorf("preview without a policy: %d", st)
	}
	evs, err := db.QueryAudit(ctx, auth.AuditQuery{Action: "retention.policy", Limit: 100})
	if err != nil || len(evs) < 3 || evs[0].Actor != "maint" || evs[0].Detail != "retention policy removed" || evs[0].Repository != "group/app" {
		t.Errorf("audit: %+v, %v", evs, err)
	}

	// A flood of bad credentials is throttled (bounded).
	throttled := false
	for i := 0; i < 60 && !throttled; i++ {
		st, _, hdr := apiCall(t, http.MethodGet, base, "maint", "wrong", nil)
		throttled = st == http.StatusTooManyRequests && hdr.Get("Retry-After") != ""
	}
	if !throttled {
		t.Error("60 bad passwords from one address were never throttled")
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// scrape returns a metric's value from /metrics (0 when absent).
func scrape(t *testing.T, base, metric string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(metric) + ` ([0-9.e+]+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestGCWorker: the server's worker collects unreferenced blobs and
// untagged manifests after the grace period, keeps what is referenced,
// counts it in the metrics and audits each batch.
func TestGCWorker(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) {
		c.GCInterval, c.GCGrace, c.GCUntaggedManifests = 500*time.Millisecond, time.Second, true
	})
	a := newAcked()
	cfg := []byte(`{"os":"linux"}`)
	layer := randBytes(5000)
	pushBlob(t, srv.URL, "gc/app", cfg, a)
	pushBlob(t, srv.URL, "gc/app", layer, a)
	keep := imageManifest(cfg, [][]byte{layer}, "kept")
	if ok, err := pushManifest(t, srv.URL, "gc/app", keep, []string{"v1"}, a); !ok {
		t.Fatal(err)
	}
	untaggedLayer := randBytes(3000)
	pushBlob(t, srv.URL, "gc/app", untaggedLayer, a)
	untagged := imageManifest(cfg, [][]byte{untaggedLayer}, "untagged")
	if ok, err := pushManifest(t, srv.URL, "gc/app", untagged, []string{"v2"}, a); !ok {
		t.Fatal(err)
	}
	mustDo(t, http.StatusAccepted, http.MethodDelete, srv.URL+"/v2/gc/app/manifests/v2", nil)
	garbage := randBytes(7000)
	g := pushBlob(t, srv.URL, "gc/app", garbage, newAcked())
	waitFor(t, "the worker to collect the garbage blob, the untagged manifest and its layer", func() bool {
		time.Sleep(50 * time.Millisecond)
		return scrape(t, srv.URL, "hallmark_gc_blobs_deleted_total") >= 2 && scrape(t, srv.URL, "hallmark_gc_manifests_deleted_total") >= 1
	})
	mustDo(t, http.StatusNotFound, http.MethodHead, srv.URL+"/v2/gc/app/blobs/"+g.String(), nil)
	mustDo(t, http.StatusNotFound, http.MethodGet, srv.URL+"/v2/gc/app/manifests/"+digest.FromBytes(untagged).String(), nil)
	mustDo(t, http.StatusNotFound, http.MethodHead, srv.URL+"/v2/gc/app/blobs/"+digest.FromBytes(untaggedLayer).String(), nil)
	a.mu.Lock()
	delete(a.blobs, "gc/app@"+digest.FromBytes(untaggedLayer).String())
	delete(a.manifests, "gc/app@"+digest.FromBytes(untagged).String())
	delete(a.tags, "gc/app:v2")
	a.mu.Unlock()
	verify(t, srv.URL, a)
	if v := scrape(t, srv.URL, "hallmark_gc_bytes_freed_total"); v < 10000 {
		t.Errorf("bytes freed %v", v)
	}
	if v := scrape(t, srv.URL, `hallmark_gc_sweeps_total{result="ok"}`); v < 1 {
		t.Errorf("sweeps %v", v)
	}
	db := openDB(t, srv.DataDir)
	evs, err := db.QueryAudit(context.Background(), auth.AuditQuery{Action: "gc.blobs", Limit: 10})
	if err != nil || len(evs) == 0 || evs[0].Actor != "gc" || !strings.Contains(evs[0].Detail, "unreferenced blobs") {
		t.Errorf("audit: %+v, %v", evs, err)
	}
}

// TestGCCrashMidSweep kills -9 a real server while its worker sweeps
// thousands of unreferenced blobs, then checks the data dir offline (no
// blob row names a missing object; the referenced image is whole) and
// that the next server's sweeps finish the interrupted deletions and
// remove every orphan. Bounded attempts: the kill must land mid-sweep.
func TestGCCrashMidSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts the hallmark binary several times; skipped with -short")
	}
	bin := testenv.HallmarkBinary(t)
	dir := t.TempDir()
	a := newAcked()
	p := startServer(t, bin, dir) // --gc-interval default: nothing due for 24h
	cfg := []byte(`{"os":"linux"}`)
	layer := randBytes(20000)
	pushBlob(t, p.URL, "crash/app", cfg, a)
	pushBlob(t, p.URL, "crash/app", layer, a)
	if ok, err := pushManifest(t, p.URL, "crash/app", imageManifest(cfg, [][]byte{layer}, "kept"), []string{"v1"}, a); !ok {
		t.Fatal(err)
	}
	const garbage = 4000
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				b := []byte(fmt.Sprintf("garbage %d %s", i, strings.Repeat("g", i%500)))
				d := digest.FromBytes(b)
				mustDo(t, http.StatusCreated, http.MethodPost, p.URL+"/v2/crash/junk/blobs/uploads/?digest="+d.String(), b)
			}
		})
	}
	for i := range garbage {
		work <- i
	}
	close(work)
	wg.Wait()
	p.Stop()
	objects := func() int {
		n := 0
		filepath.WalkDir(filepath.Join(dir, "blobs", "blobs"), func(_ string, e os.DirEntry, err error) error {
			if err == nil && e.Type().IsRegular() {
				n++
			}
			return nil
		})
		return n
	}
	if n := objects(); n != garbage+2 {
		t.Fatalf("%d objects before the sweep, want %d", n, garbage+2)
	}
	gcArgs := []string{"--gc-interval", "300ms", "--gc-grace", "1s"}
	killed := false
	for attempt := 0; attempt < 5 && !killed; attempt++ {
		before := objects()
		p = testenv.StartServerProcess(t, bin, dir, nil, append([]string{"--log-level", "info", "--auth", "off"}, gcArgs...)...)
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if n := objects(); n < before && n > 2+garbage/10 {
				p.Kill()
				killed = true
				break
			} else if n <= 2+garbage/10 {
				break // the sweep was too quick for this attempt
			}
			time.Sleep(2 * time.Millisecond)
		}
		if !killed {
			p.Stop()
		}
	}
	if !killed {
		t.Skip("could not kill the server in the middle of a sweep in 5 attempts")
	}
	// Offline: every blob row names an object; the image is whole.
	db := openDB(t, dir)
	ctx := context.Background()
	rows := 0
	err := db.ListBlobs(ctx, func(d digest.Digest, size int64) error {
		rows++
		fi, err := os.Stat(filepath.Join(dir, "blobs", "blobs", "sha256", d.Encoded()[:2], d.Encoded()))
		if err != nil || fi.Size() != size {
			t.Errorf("after the crash, blob row %s names no object: %v", d, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pend, err := db.GCPending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	left := objects()
	t.Logf("killed mid-sweep: %d blob rows, %d objects, %d blob deletions interrupted", rows, left, pend.Deletions)
	if left <= rows {
		t.Logf("no orphan object left by this kill (the sweep was between batches)")
	}
	db.Close()
	// The next server finishes the deletions and collects the rest.
	p = testenv.StartServerProcess(t, bin, dir, nil, append([]string{"--log-level", "info", "--auth", "off"}, gcArgs...)...)
	waitFor(t, "the orphans to be removed", func() bool { time.Sleep(50 * time.Millisecond); return objects() == 2 })
	verify(t, p.URL, a)
	// The tombstones go after their objects: wait for them too.
	db = openDB(t, dir)
	var pend2 meta.GCPending
	waitFor(t, "the interrupted deletions to be finished", func() bool {
		time.Sleep(50 * time.Millisecond)
		pend2, err = db.GCPending(ctx)
		return err == nil && pend2.Deletions == 0
	})
	if err != nil || pend2.Deletions != 0 {
		t.Errorf("after recovery: %+v, %v", pend2, err)
	}
}
