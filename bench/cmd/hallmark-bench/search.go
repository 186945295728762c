package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/opencontainers/go-digest"
)

// searchScenario measures the incident search (issue 11) of a Hallmark
// server process (auth on) over a SQLite database of 1,000,000 indexed
// keyless signatures of 100,000 images (HALLMARK_BENCH_SEARCH_SIGNATURES;
// 20,000 with -quick), generated once with real keys, certificates from
// the data dir's CA (which records each job's claims) and SETs from its
// log key (signatures.go), and kept under bench/out/search-<n> for later
// runs. Through the real HTTP API, one keep-alive connection, sequential
// requests: a mix of searches (commit prefix, full commit, pipeline, job
// URL, runner, user, project, an annotation, status with a 30-day range,
// no condition) as an anonymous caller (public projects), a member of four
// private projects and an admin, each with random values from the
// generated population; p50/p99 per query, per caller and overall (target
// p99 < 20 ms), the largest response (target < 100 KB at the default page
// size), the image API (one image's signatures with the CA's claims: the
// console image page's data; target p99 < 50 ms), the console's search
// page (the same searches as HTML, signed in; p99 and page size), the
// console's image page (p99 < 50 ms, page size), and an NDJSON export of a project. There is no peer: the figures are absolute; the machine's
// load is printed with them.
func searchScenario(ctx context.Context, e *Env) ([]Row, error) {
	if err := e.needCLIs(false); err != nil {
		return nil, err
	}
	spec := sigSpec{Version: sigSpecVersion, Signatures: 1_000_000, Projects: 100, ReposPerProject: 10, Runners: 200, Users: 500,
		Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Period: 365 * 24 * time.Hour}
	if e.Quick {
		spec.Signatures = 20_000
	}
	if v := os.Getenv("HALLMARK_BENCH_SEARCH_SIGNATURES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1000 {
			return nil, fmt.Errorf("HALLMARK_BENCH_SEARCH_SIGNATURES=%q: want a number >= 1000", v)
		}
		spec.Signatures = n
	}
	spec.Images = spec.Signatures / 10
	dir := filepath.Join(filepath.Dir(e.DataDir), fmt.Sprintf("search-%d", spec.Signatures))
	data := filepath.Join(dir, "hallmark-data")
	info, err := ensureSearchData(ctx, e, spec, dir, data)
	if err != nil {
		return nil, err
	}
	creds, err := searchCredentials(ctx, data)
	if err != nil {
		return nil, err
	}
	sample := make([]int, 0, 300)
	for i := range cap(sample) {
		sample = append(sample, (i*7919+13)%spec.Images)
	}
	if err := storeImageManifests(ctx, data, spec, sample); err != nil {
		return nil, err
	}
	p, err := startServerProcess(ctx, e.HallmarkBin, data, "--auth", "on", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer p.stop()
	b := &searchBench{e: e, spec: spec, base: p.url, creds: creds, client: &http.Client{Timeout: time.Minute},
		rnd: mrand.New(mrand.NewPCG(1, 2)), imageSample: sample}
	return b.run(ctx, info)
}

// searchDataInfo is what the cached database's marker records.
type searchDataInfo struct {
	Spec      sigSpec
	Generated time.Duration
	DBBytes   int64
	Load      string // load average when the generation ended
}

// ensureSearchData generates the database unless dir holds a complete one
// of spec.
func ensureSearchData(ctx context.Context, e *Env, spec sigSpec, dir, data string) (*searchDataInfo, error) {
	marker := filepath.Join(dir, "complete.json")
	if raw, err := os.ReadFile(marker); err == nil {
		var info searchDataInfo
		if json.Unmarshal(raw, &info) == nil && info.Spec == spec {
			e.Logf("search: reusing the database of %d signatures in %s (generated in %s)", spec.Signatures, dir, info.Generated.Round(time.Second))
			return &info, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	start := time.Now()
	dbPath := filepath.Join(data, "hallmark.db")
	store, err := sqlite.Open(ctx, sqlite.Config{Path: dbPath})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	ks, err := keystore.Open(filepath.Join(data, "keys"))
	if err != nil {
		return nil, err
	}
	adm := &auth.Admin{Store: store}
	for p := range spec.Projects {
		vis := auth.VisibilityPrivate
		if spec.public(p) {
			vis = auth.VisibilityPublic
		}
		if _, err := adm.AddProject(ctx, fmt.Sprintf("team%02d", p), vis, ""); err != nil {
			return nil, err
		}
	}
	for _, u := range []struct {
		name  string
		admin bool
	}{{"bench-admin", true}, {"bench-member", false}} {
		if _, err := adm.AddUser(ctx, u.name, randomPassword(), u.admin); err != nil {
			return nil, err
		}
	}
	for _, p := range memberProjects {
		if err := store.SetMember(ctx, p, "bench-member", auth.RoleReporter); err != nil {
			return nil, err
		}
	}
	e.Logf("search: generating %d keyless signatures of %d images in %s (load average %s)", spec.Signatures, spec.Images, dir, loadAvg())
	last := time.Now()
	err = generateSignatures(ctx, spec, ks, store, func(done int) {
		if time.Since(last) > 30*time.Second || done == spec.Signatures {
			last = time.Now()
			el := time.Since(start)
			e.Logf("search: %d of %d signatures (%.0f/s, load average %s)", done, spec.Signatures, float64(done)/el.Seconds(), loadAvg())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("generating the search database: %w", err)
	}
	if err := store.Close(); err != nil {
		return nil, err
	}
	info := &searchDataInfo{Spec: spec, Generated: time.Since(start), Load: loadAvg()}
	for _, f := range []string{dbPath, dbPath + "-wal"} {
		if fi, err := os.Stat(f); err == nil {
			info.DBBytes += fi.Size()
		}
	}
	raw, _ := json.MarshalIndent(info, "", "  ")
	return info, os.WriteFile(marker, raw, 0o600)
}

// memberProjects are the private projects the bench member belongs to.
var memberProjects = []string{"team01", "team02", "team03", "team04"}

func randomPassword() string {
	var b [18]byte
	for i := range b {
		b[i] = byte(mrand.Uint32())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// searchCredentials makes fresh personal access tokens (pull) for the
// bench's admin and member, and returns the Authorization headers by
// caller; "" for anonymous. Access tokens cost a SHA-256 per request;
// passwords an argon2id hash each.
func searchCredentials(ctx context.Context, data string) (map[string]string, error) {
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "hallmark.db")})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	adm := &auth.Admin{Store: store}
	out := map[string]string{"anonymous": ""}
	for _, u := range []string{"bench-admin", "bench-member"} {
		tok, _, err := adm.CreatePAT(ctx, u, "search bench", []string{"pull"}, 24*time.Hour)
		if err != nil {
			return nil, err
		}
		out[u[len("bench-"):]] = "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+tok))
	}
	return out, nil
}

type searchBench struct {
	e      *Env
	spec   sigSpec
	base   string
	creds  map[string]string
	client *http.Client
	rnd    *mrand.Rand
	// imageSample are images whose manifests are stored (the console's
	// image page needs one; the generated signatures come without).
	imageSample []int
}

// storeImageManifests stores a manifest for each image k of ks, as the
// console's image page needs one: the generated subjects are the digests
// of "image <k>", so those bytes are the manifest (the page shows no
// layers for it; its signatures, claims and statuses are what it reads).
func storeImageManifests(ctx context.Context, data string, spec sigSpec, ks []int) error {
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(data, "hallmark.db")})
	if err != nil {
		return err
	}
	defer store.Close()
	for _, k := range ks {
		payload := []byte(fmt.Sprint("image ", k))
		m := &meta.Manifest{Repository: spec.repo(k), Digest: digest.FromBytes(payload), MediaType: "application/vnd.oci.image.manifest.v1+json", Payload: payload}
		if m.Digest != spec.subject(k) {
			return fmt.Errorf("image %d: manifest digest %s is not the generated subject %s", k, m.Digest, spec.subject(k))
		}
		if err := store.PutManifest(ctx, m, nil); err != nil {
			return fmt.Errorf("image %d: %w", k, err)
		}
	}
	return nil
}

// searchQuery draws the parameters of one search.
type searchQuery struct {
	name string
	q    func() url.Values
}

func (b *searchBench) queries() []searchQuery {
	s := b.spec
	img := func() int { return b.rnd.IntN(s.Images) }
	sig := func() (int, int) { return b.rnd.IntN(s.Images), b.rnd.IntN(s.perImage()) }
	return []searchQuery{
		{"commit prefix (8 hex)", func() url.Values { return url.Values{"commit": {s.commit(img())[:8]}} }},
		{"commit (full)", func() url.Values { return url.Values{"commit": {s.commit(img())}} }},
		{"pipeline id", func() url.Values { return url.Values{"pipeline": {strconv.Itoa(s.pipeline(img()))}} }},
		{"job URL", func() url.Values {
			k, j := sig()
			return url.Values{"job": {fmt.Sprintf("%s/%s/-/jobs/%d", gitlabURL, s.repo(k), s.job(k, j))}}
		}},
		{"runner (CA claims)", func() url.Values {
			k, j := sig()
			return url.Values{"runner": {strconv.Itoa(s.runner(k, j))}}
		}},
		{"user (CA claims)", func() url.Values { return url.Values{"user": {fmt.Sprintf("user%04d", s.user(img()))}} }},
		{"project", func() url.Values { return url.Values{"project": {s.project(img())}} }},
		{"annotation project.path", func() url.Values {
			return url.Values{"annotation": {"com.gitlab.ci.project.path=" + s.repo(img())}}
		}},
		{"status + 30-day range", func() url.Values {
			from := s.Start.Add(time.Duration(b.rnd.Int64N(int64(s.Period - 30*24*time.Hour))))
			return url.Values{"status": {"unverified"}, "since": {from.Format(time.RFC3339)}, "until": {from.Add(30 * 24 * time.Hour).Format(time.RFC3339)}}
		}},
		{"no condition (newest)", func() url.Values { return url.Values{} }},
	}
}

// sample is one timed request.
type sample struct {
	d     time.Duration
	bytes int
}

// get times GET path as caller; it fails on any status but 200.
func (b *searchBench) get(ctx context.Context, path, authz string) (sample, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	if err != nil {
		return sample{}, nil, err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		return sample{}, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return sample{}, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return sample{}, nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, tail(string(body), 300))
	}
	return sample{d: d, bytes: len(body)}, body, nil
}

func (b *searchBench) run(ctx context.Context, info *searchDataInfo) ([]Row, error) {
	reps := 100
	if b.e.Quick {
		reps = 20
	}
	callers := []string{"anonymous", "member", "admin"}
	queries := b.queries()
	// Warm up: the first requests pay for opening connections and the
	// database's first page reads.
	for _, q := range queries {
		for _, c := range callers {
			if _, _, err := b.get(ctx, "/api/v1/search?"+q.q().Encode(), b.creds[c]); err != nil {
				return nil, err
			}
		}
	}
	load0 := loadAvg()
	b.e.Logf("search: %d searches of each of %d kinds by %d callers (load average %s)", reps, len(queries), len(callers), load0)
	byQuery := map[string][]time.Duration{}
	byCaller := map[string][]time.Duration{}
	var all []time.Duration
	maxBytes, maxName, results := 0, "", 0
	for range reps {
		for _, q := range queries {
			for _, c2 := range callers {
				s, body, err := b.get(ctx, "/api/v1/search?"+q.q().Encode(), b.creds[c2])
				if err != nil {
					return nil, err
				}
				var page struct {
					Results []json.RawMessage `json:"results"`
				}
				if err := json.Unmarshal(body, &page); err != nil {
					return nil, fmt.Errorf("search %s: %v", q.name, err)
				}
				results += len(page.Results)
				byQuery[q.name] = append(byQuery[q.name], s.d)
				byCaller[c2] = append(byCaller[c2], s.d)
				all = append(all, s.d)
				if s.bytes > maxBytes {
					maxBytes, maxName = s.bytes, q.name+" as "+c2
				}
			}
		}
	}
	load1 := loadAvg()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	gb := float64(info.DBBytes) / (1 << 30)
	rows := []Row{{Name: fmt.Sprintf("search p99, all %d searches (%d signatures, %d images, SQLite %.1f GiB)", len(all), b.spec.Signatures, b.spec.Images, gb),
		Unit: "ms", Hallmark: ms(demo.Percentile(all, 99)), Goal: Goal{Kind: goalAbsBelow, Value: 20},
		Details: []string{fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d results in all; load average %s before, %s after; database generated in %s (load average then %s)",
			ms(demo.Percentile(all, 50)), ms(demo.Percentile(all, 99)), ms(demo.Percentile(all, 100)), results, load0, load1, info.Generated.Round(time.Second), info.Load)}}}
	for _, q := range queries {
		d := byQuery[q.name]
		rows = append(rows, Row{Name: "search p99, " + q.name, Unit: "ms", Hallmark: ms(demo.Percentile(d, 99)), Goal: Goal{Kind: goalAbsBelow, Value: 20},
			Details: []string{fmt.Sprintf("%d searches: p50 %.1f ms, p99 %.1f ms, max %.1f ms", len(d), ms(demo.Percentile(d, 50)), ms(demo.Percentile(d, 99)), ms(demo.Percentile(d, 100)))}})
	}
	for _, c := range callers {
		d := byCaller[c]
		rows = append(rows, Row{Name: "search p99 as " + c, Unit: "ms", Hallmark: ms(demo.Percentile(d, 99)), Goal: Goal{Kind: goalAbsBelow, Value: 20},
			Details: []string{fmt.Sprintf("%d searches: p50 %.1f ms, p99 %.1f ms", len(d), ms(demo.Percentile(d, 50)), ms(demo.Percentile(d, 99)))}})
	}
	rows = append(rows, Row{Name: "largest search page (default page size " + strconv.Itoa(50) + ")", Unit: "KB", Hallmark: float64(maxBytes) / 1000,
		Goal: Goal{Kind: goalAbsBelow, Value: 100}, Details: []string{"largest: " + maxName}})

	// The image API: one image's signatures with the CA's claims.
	var img []time.Duration
	maxImg := 0
	// caller is who asks for image k in request i: the callers in turn,
	// the admin where the turn's caller may not see it.
	caller := func(k, i int) string {
		c := callers[i%len(callers)]
		if c == "anonymous" && !b.spec.public(k%b.spec.Projects) {
			c = "admin"
		}
		if c == "member" && !slices.Contains(memberProjects, b.spec.project(k)) && !b.spec.public(k%b.spec.Projects) {
			c = "admin"
		}
		return c
	}
	for i := range reps {
		k := b.rnd.IntN(b.spec.Images)
		c := caller(k, i)
		s, body, err := b.get(ctx, "/api/v1/images/"+b.spec.repo(k)+"/signatures?digest="+b.spec.subject(k).String(), b.creds[c])
		if err != nil {
			return nil, err
		}
		if !json.Valid(body) {
			return nil, errors.New("image API: not JSON")
		}
		img = append(img, s.d)
		maxImg = max(maxImg, s.bytes)
	}
	rows = append(rows, Row{Name: fmt.Sprintf("image API p99 (%d signatures with CA claims; the image page's data)", b.spec.perImage()), Unit: "ms",
		Hallmark: ms(demo.Percentile(img, 99)), Goal: Goal{Kind: goalAbsBelow, Value: 50},
		Details: []string{fmt.Sprintf("%d requests: p50 %.1f ms, p99 %.1f ms; largest answer %.1f KB", len(img), ms(demo.Percentile(img, 50)), ms(demo.Percentile(img, 99)), float64(maxImg)/1000)}})

	// The console's search page: the same searches as HTML pages; its
	// image page.
	clients, err := b.consoleClients(ctx, callers)
	if err != nil {
		return nil, err
	}
	console, err := b.consoleSearch(ctx, clients, callers, queries, max(reps/5, 5))
	if err != nil {
		return nil, err
	}
	rows = append(rows, console...)
	imagePages, err := b.consoleImage(ctx, clients, caller, reps)
	if err != nil {
		return nil, err
	}
	rows = append(rows, imagePages...)

	// An export: every signature of one project, NDJSON.
	proj := b.spec.project(1)
	s, body, err := b.get(ctx, "/api/v1/search/export?format=ndjson&project="+proj, b.creds["admin"])
	if err != nil {
		return nil, err
	}
	lines := 0
	for _, c := range body {
		if c == '\n' {
			lines++
		}
	}
	rows = append(rows, Row{Name: fmt.Sprintf("NDJSON export of project %s (%d signatures)", proj, lines), Unit: "rows/s", HigherIsBetter: true,
		Hallmark: float64(lines) / s.d.Seconds(), Details: []string{fmt.Sprintf("%d rows, %.1f MB in %s (load average %s)", lines, float64(s.bytes)/1e6, s.d.Round(time.Millisecond), loadAvg())}})
	return rows, nil
}
