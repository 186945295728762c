package abuse

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// searchFixture is two private projects: a/app, whose CI job is the
// attacker, and b/app with its maintainer, who investigates a commit of
// b/app that was signed there.
type searchFixture struct {
	e                *env
	JobToken         string // a CI job token of a/app
	Maintainer, Pass string // maintainer of b/app
	Commit           string // b/app's commit
	BImage           string // the signed image of b/app (digest)
}

const commitKey = "com.gitlab.ci.commit.sha"

func newSearchFixture(t *testing.T) *searchFixture {
	t.Helper()
	e := start(t, nil)
	ctx := context.Background()
	adm := e.admin(t)
	for _, p := range []string{"a/app", "b/app"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	f := &searchFixture{e: e, Maintainer: "bob", Pass: "bob-password-123", Commit: strings.Repeat("b1", 20)}
	if _, err := adm.AddUser(ctx, f.Maintainer, f.Pass, false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "b/app", f.Maintainer, auth.RoleMaintainer); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.JobToken, _, err = adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "a/app", JobID: "66"}); err != nil {
		t.Fatal(err)
	}

	// b/app's maintainer pushes an image and signs it at the commit.
	ref, err := name.ParseReference(e.Host+"/b/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	bAuth := &authn.Basic{Username: f.Maintainer, Password: f.Pass}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(bAuth)); err != nil {
		t.Fatal(err)
	}
	subject, _ := img.Digest()
	f.BImage = subject.String()
	body, err := payload.New(ref.Context().Name(), subject.String(), map[string]string{commitKey: f.Commit}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sig, err := sign.KeySigner{Key: key}.Sign(ctx, body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.Attach(ref.Context(), subject, sig, sign.AttachOptions{Remote: []remote.Option{remote.WithAuth(bAuth)}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// search runs GET /api/v1/search?query with Basic credentials (none when
// user is empty) and returns the status and the decoded answer.
func (f *searchFixture) search(t *testing.T, query, user, pass string) (int, searchAnswer) {
	t.Helper()
	authz := ""
	if user != "" {
		authz = "Basic " + authBasic(user, pass)
	}
	status, _, body := rawGetAs(t, f.e, "/api/v1/search?"+query, authz)
	var a searchAnswer
	if status == http.StatusOK {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("search %s: the answer is not JSON: %v: %.300s", query, err, body)
		}
	} else {
		a.Error = string(body)
	}
	return status, a
}

type searchAnswer struct {
	Results []struct {
		Repository string `json:"repository"`
		Subject    string `json:"subject"`
		Status     string `json:"status"`
	} `json:"results"`
	Next  string `json:"next"`
	Error string `json:"error"`
}

// waitIndexed polls an admin search until it finds at least n results in
// repository repo among the newest 1,000.
func (f *searchFixture) waitIndexed(t *testing.T, query, repo string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, a := f.search(t, query+"&limit=1000", "admin", f.e.AdminPassword)
		got := 0
		for _, r := range a.Results {
			if r.Repository == repo {
				got++
			}
		}
		if status == http.StatusOK && got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s the index holds %d results in %s for %s (status %d), want %d", got, repo, query, status, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pushFakeLayers pushes, as a/app's CI job, signature manifests with n
// layers in all that all claim commit (one small payload blob, each layer
// with its own junk signature, so each is a signature record of its own),
// at most 100 layers a manifest (the index reads no more of one) and each
// manifest for an image of its own.
func (f *searchFixture) pushFakeLayers(t *testing.T, commit string, n int) {
	t.Helper()
	for batch := 0; n > 0; batch++ {
		f.pushFakeManifest(t, commit, batch, min(n, 100))
		n -= 100
	}
}

func (f *searchFixture) pushFakeManifest(t *testing.T, commit string, batch, n int) {
	t.Helper()
	tok := f.e.regToken(t, auth.JobTokenUser, f.JobToken, "repository:a/app:pull,push")
	subject := fmt.Sprintf("sha256:%s%04x", strings.Repeat("ab", 30), batch)
	body, err := payload.New(f.e.Host+"/a/app", subject, map[string]string{commitKey: commit}).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	layer := f.e.regPushBlob(t, "a/app", tok, body)
	cfg := f.e.regPushBlob(t, "a/app", tok, []byte("{}"))
	type desc struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	m := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{SchemaVersion: 2, MediaType: "application/vnd.oci.image.manifest.v1+json",
		Config: desc{MediaType: "application/vnd.oci.image.config.v1+json", Digest: cfg.String(), Size: 2}}
	for i := range n {
		junk := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "not a signature %d of %d", i, batch))
		m.Layers = append(m.Layers, desc{MediaType: "application/vnd.dev.cosign.simplesigning.v1+json", Digest: layer.String(), Size: len(body),
			Annotations: map[string]string{oci.AnnotationSignature: junk}})
	}
	raw, _ := json.Marshal(m)
	tag := strings.Replace(subject, ":", "-", 1) + ".sig"
	r := f.e.regDo(t, http.MethodPut, "/v2/a/app/manifests/"+tag, tok, raw, "Content-Type", m.MediaType)
	if r.code != http.StatusCreated {
		t.Fatalf("push of the fake signature manifest: %d %s", r.code, r.body)
	}
}

// TestSearchNotSuppressedByOtherProjectsFlood (issue 9, defect 3): search
// read the newest 1,000 matches and only then dropped what the caller may
// not pull, so a CI job of project a/app that pushed 1,000 fake signature
// layers claiming b/app's commit left b/app's maintainer with nothing.
// Access must be part of the query: the maintainer finds b/app's
// signature, and none of a/app's.
func TestSearchNotSuppressedByOtherProjectsFlood(t *testing.T) {
	f := newSearchFixture(t)
	q := "annotation=" + url.QueryEscape(commitKey+"="+f.Commit)
	f.waitIndexed(t, q, "b/app", 1)
	f.pushFakeLayers(t, f.Commit, 1000)
	f.waitIndexed(t, q, "a/app", 1000)

	status, a := f.search(t, q, f.Maintainer, f.Pass)
	if status != http.StatusOK {
		t.Fatalf("maintainer's search: %d %s", status, a.Error)
	}
	if len(a.Results) != 1 || a.Results[0].Repository != "b/app" || a.Results[0].Subject != f.BImage {
		t.Fatalf("b/app's maintainer searching its commit after a/app's flood of 1,000 fake layers found %d results (%+v); want b/app's one signature",
			len(a.Results), a.Results)
	}
}

// keylessJob runs one CI job of project against the server: it pushes an
// image and signs it keylessly, so the CA records the job's verified
// claims. It returns the job's environment and the signed image digest.
func keylessJob(t *testing.T, e *env, project, user string) (map[string]string, string) {
	t.Helper()
	ctx := context.Background()
	tokenFile, err := os.ReadFile(filepath.Join(e.DataDir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	local, err := os.ReadFile(filepath.Join(e.DataDir, server.TrustDir, root.TrustedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := demo.FetchTrust(ctx, nil, e.URL, root.Fingerprint(local))
	if err != nil {
		t.Fatal(err)
	}
	jobs := &demo.HTTPJobs{URL: e.URL, AdminToken: strings.TrimSpace(string(tokenFile))}
	jobEnv, err := jobs.Job(ctx, demo.JobRequest{Project: project, Ref: "main", User: user})
	if err != nil {
		t.Fatal(err)
	}
	s, err := demo.NewSession(jobEnv, demo.SessionConfig{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	img, err := demo.BuildImage(jobEnv, project)
	if err != nil {
		t.Fatal(err)
	}
	tag := s.Tag("")
	ref, err := s.Push(ctx, img, tag)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(ctx, ref, tag); err != nil {
		t.Fatal(err)
	}
	return jobEnv, ref.DigestStr()
}

// rawGetAs sends GET path with the Authorization header authz (none when
// empty) and returns the status, the trailers and the whole body.
func rawGetAs(t *testing.T, e *env, path, authz string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Trailer, b
}

// TestSearchLeaksNoOtherProjectsClaims: b/app's CI job signs keylessly, so
// the CA holds its claims (pipeline, job, user). Searched by those claims,
// and exported in every format, they reach neither a/app's CI job (job
// token, OIDC ID token, a registry token of a/app), nor a member of
// another project, nor anonymous callers; the admin finds them (the
// searches are not simply broken). A cursor taken from the admin's search
// gives nobody else more.
func TestSearchLeaksNoOtherProjectsClaims(t *testing.T) {
	f := newSearchFixture(t)
	e := f.e
	bEnv, bImage := keylessJob(t, e, "b/app", "bob-ci-user")
	aEnv, _ := keylessJob(t, e, "a/app", "alice-ci-user")
	secrets := []string{bImage, "bob-ci-user", "b/app"}
	admin := "Basic " + authBasic("admin", e.AdminPassword)
	regTok := "Bearer " + e.regToken(t, auth.JobTokenUser, f.JobToken, "repository:a/app:pull")
	callers := map[string]string{
		"anonymous":            "",
		"a/app's job token":    "Basic " + authBasic(auth.JobTokenUser, aEnv["CI_JOB_TOKEN"]),
		"a/app registry token": regTok,
	}
	// The signing ID token (audience sigstore) is no API credential.
	if st, _, b := rawGetAs(t, e, "/api/v1/search?project=b/app", "Basic "+authBasic(auth.JobTokenUser, aEnv["SIGSTORE_ID_TOKEN"])); st != http.StatusUnauthorized {
		t.Errorf("a/app's signing ID token as API credentials: %d %.200s", st, b)
	}
	queries := []string{"pipeline=" + bEnv["CI_PIPELINE_ID"], "job=" + bEnv["CI_JOB_ID"], "user=bob-ci-user", "commit=" + bEnv["CI_COMMIT_SHA"],
		"project=b/app", "runner=1", ""}
	for _, q := range queries {
		st, _, b := rawGetAs(t, e, "/api/v1/search?"+q, admin)
		if q != "runner=1" && q != "" && (st != http.StatusOK || !bytes.Contains(b, []byte(bImage))) {
			t.Fatalf("admin's search %s does not find b/app's signature: %d %.300s", q, st, b)
		}
		for who, authz := range callers {
			for _, path := range []string{"/api/v1/search?" + q, "/api/v1/search/export?format=ndjson&" + q, "/api/v1/search/export?format=csv&" + q,
				"/api/v1/search/export?format=bundles&" + q} {
				st, _, b := rawGetAs(t, e, path, authz)
				if st != http.StatusOK {
					t.Errorf("%s: %s answered %d: %.200s", who, path, st, b)
					continue
				}
				if strings.HasPrefix(path, "/api/v1/search?") {
					// The answer echoes the query; look at the results.
					var a struct{ Results json.RawMessage }
					if err := json.Unmarshal(b, &a); err != nil {
						t.Fatalf("%s: %s: %v", who, path, err)
					}
					b = a.Results
				}
				for _, s := range secrets {
					if bytes.Contains(b, []byte(s)) {
						t.Errorf("%s: %s shows %q of b/app", who, path, s)
					}
				}
			}
		}
	}
	// The maintainer of b/app sees its claims; bob's search for a/app's
	// user does not.
	st, _, b := rawGetAs(t, e, "/api/v1/search?user=bob-ci-user", "Basic "+authBasic(f.Maintainer, f.Pass))
	if st != http.StatusOK || !bytes.Contains(b, []byte(`"runner_id":"1"`)) || !bytes.Contains(b, []byte(bImage)) {
		t.Errorf("b/app's maintainer searching by its job's user: %d %.300s", st, b)
	}
	if _, _, b := rawGetAs(t, e, "/api/v1/search?user=alice-ci-user", "Basic "+authBasic(f.Maintainer, f.Pass)); bytes.Contains(b, []byte("a/app")) {
		t.Errorf("b/app's maintainer sees a/app's job: %.300s", b)
	}
	// A cursor from the admin's first page, reused by others: still
	// only what they may see.
	_, _, b = rawGetAs(t, e, "/api/v1/search?limit=1", admin)
	var page searchAnswer
	if err := json.Unmarshal(b, &page); err != nil || page.Next == "" {
		t.Fatalf("admin's first page: %v %.300s", err, b)
	}
	for who, authz := range callers {
		_, _, b := rawGetAs(t, e, "/api/v1/search?cursor="+page.Next, authz)
		if bytes.Contains(b, []byte("b/app")) {
			t.Errorf("%s with the admin's cursor sees b/app: %.300s", who, b)
		}
	}
}

// floodQueries pushes 300 fake signature layers claiming f's commit and
// returns searches made expensive (shortest commit prefixes, the largest
// pages, the longest time ranges, many matches) and malformed ones.
func (f *searchFixture) floodQueries(t *testing.T) (expensive, bad []string) {
	t.Helper()
	f.pushFakeLayers(t, f.Commit, 300)
	expensive = []string{"commit=0000000", "commit=b1b1b1b", "limit=1000", "since=36500d&limit=1000", "status=invalid&limit=1000",
		"annotation=" + url.QueryEscape(commitKey+"="+f.Commit) + "&limit=1000"}
	bad = []string{"commit=b1b", "limit=100000", "cursor=AAAA", "cursor=" + strings.Repeat("A", 5000), "since=1000000d", "until=9999-01-01",
		"identity=" + strings.Repeat("x", 40<<10), "annotation=a", "%zz", "commit=b1b1b1b&commit=b1b1b1b", "runner=" + strings.Repeat("<b>", 500)}
	return expensive, bad
}

// TestSearchFloodIsBounded: a flood of concurrent searches made expensive
// (shortest commit prefixes, the largest pages, the longest time ranges,
// exports) and malformed ones (too short prefixes, huge limits, huge and
// garbled queries, forged cursors) is answered with results, 400s or a 503
// to retry, never a 500; the server still answers afterwards.
func TestSearchFloodIsBounded(t *testing.T) {
	f := newSearchFixture(t)
	e := f.e
	expensive, bad := f.floodQueries(t)
	var paths []string
	for _, q := range expensive {
		paths = append(paths, "/api/v1/search?"+q, "/api/v1/search/export?format=csv&"+q)
	}
	for _, q := range bad {
		paths = append(paths, "/api/v1/search?"+q)
	}
	client := &http.Client{Timeout: 2 * time.Minute}
	jobAuthz := "Basic " + authBasic(auth.JobTokenUser, f.JobToken)
	count := map[int]int{}
	for _, a := range floodGET(e.URL, paths, 4, floodClient{c: client}, floodClient{c: client, authz: jobAuthz}) {
		count[a.status]++
		checkSearchFloodAnswer(t, a.path, a.status, a.retry)
	}
	t.Logf("answers by status: %v", count)
	if status, a := f.search(t, "commit="+f.Commit, f.Maintainer, f.Pass); status != http.StatusOK || len(a.Results) != 1 {
		t.Errorf("after the flood, the maintainer's search: %d, %d results", status, len(a.Results))
	}
	// Exports are capped: a larger max is refused.
	if st, _, b := rawGetAs(t, e, "/api/v1/search/export?format=ndjson&max=100000000", ""); st != http.StatusBadRequest {
		t.Errorf("export with a huge max: %d %.200s", st, b)
	}
}

// checkSearchFloodAnswer checks one answer to a flood of searches: a
// result, a 400 (bad query) or a header bound's 431/414, or a 503 to
// retry with Retry-After; never anything else (a 500).
func checkSearchFloodAnswer(t *testing.T, path string, status int, retry string) {
	t.Helper()
	switch status {
	case http.StatusOK, http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestURITooLong:
	case http.StatusServiceUnavailable:
		if retry == "" {
			t.Errorf("%.80s: 503 without Retry-After", path)
		}
	default:
		t.Errorf("%.80s: status %d", path, status)
	}
}

// floodClient is one client of a flood: an HTTP client (its cookies, its
// address) and an Authorization header ("" for none).
type floodClient struct {
	c     *http.Client
	authz string
}

// floodAnswer is one answer of a flood (status -1: no answer).
type floodAnswer struct {
	path, body, retry string
	status, client    int // client: its index in floodGET's clients
}

// floodGET sends GET base+path for every path, rounds times, from every
// client, all at once, and returns the answers (bodies up to 4 MiB).
func floodGET(base string, paths []string, rounds int, clients ...floodClient) []floodAnswer {
	answers := make(chan floodAnswer, rounds*len(paths)*len(clients))
	var wg sync.WaitGroup
	for range rounds {
		for _, p := range paths {
			for i, fc := range clients {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, base+p, nil)
					if fc.authz != "" {
						req.Header.Set("Authorization", fc.authz)
					}
					resp, err := fc.c.Do(req)
					if err != nil {
						answers <- floodAnswer{path: p, status: -1, client: i}
						return
					}
					b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
					resp.Body.Close()
					answers <- floodAnswer{path: p, body: string(b), retry: resp.Header.Get("Retry-After"), status: resp.StatusCode, client: i}
				})
			}
		}
	}
	wg.Wait()
	close(answers)
	var out []floodAnswer
	for a := range answers {
		out = append(out, a)
	}
	return out
}
