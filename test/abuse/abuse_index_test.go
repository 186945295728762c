package abuse

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// indexedSignatures is the provenance API's answer for one image.
type indexedSignatures struct {
	IndexState       string `json:"indexState"`
	PendingManifests int    `json:"pendingManifests"`
	Signatures       []struct {
		Key          string            `json:"key"`
		Status       string            `json:"status"`
		StatusDetail string            `json:"statusDetail"`
		Annotations  map[string]string `json:"annotations"`
	} `json:"signatures"`
}

func (e *env) imageSignatures(t *testing.T, repo string, subject digest.Digest) indexedSignatures {
	t.Helper()
	r := e.regDo(t, http.MethodGet, "/api/v1/images/"+repo+"/signatures?digest="+subject.String(), "", nil,
		"Authorization", "Basic "+authBasic("admin", e.AdminPassword))
	var out indexedSignatures
	if r.code != http.StatusOK || json.Unmarshal(r.body, &out) != nil {
		t.Fatalf("signatures of %s@%s: %d %.300s", repo, subject, r.code, r.body)
	}
	return out
}

// waitIndexed polls the image's signatures until nothing of it is pending
// (a server that indexes in the PUT has no index state: done at once).
func (e *env) waitIndexed(t *testing.T, repo string, subject digest.Digest) indexedSignatures {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		s := e.imageSignatures(t, repo, subject)
		if s.IndexState != "pending" {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s@%s still pending after 2 minutes", repo, subject)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric reads a sample of the server's /metrics (-1 when absent).
func (e *env) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(e.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	return -1
}

// dbBytes is the size of the SQLite database with its WAL.
func (e *env) dbBytes(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, f := range []string{"hallmark.db", "hallmark.db-wal"} {
		if fi, err := os.Stat(filepath.Join(e.DataDir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// pushAmplifier pushes the attack of issue 9 defect 2: one signature
// manifest, tagged sha256-<hex>.sig for subject, with n layers all
// pointing at one 4 MiB simple-signing blob (a 4 MiB string in its
// optional map), each layer with another signature annotation. It returns
// the manifest PUT's status and duration.
func (e *env) pushAmplifier(t *testing.T, bearer, repo string, subject digest.Digest, n int) (int, time.Duration) {
	t.Helper()
	pad := strings.Repeat("A", 4<<20-1024)
	blob := []byte(`{"critical":{"identity":{"docker-reference":"` + e.Host + "/" + repo + `"},"image":{"docker-manifest-digest":"` +
		subject.String() + `"},"type":"cosign container image signature"},"optional":{"pad":"` + pad + `"}}`)
	d := e.regPushBlob(t, repo, bearer, blob)
	cfg := e.regPushBlob(t, repo, bearer, []byte(`{}`))
	m := oci.Manifest{SchemaVersion: 2, MediaType: oci.MediaTypeOCIManifest,
		Config: &oci.Descriptor{MediaType: oci.MediaTypeOCIConfig, Digest: cfg, Size: 2}}
	for range n {
		sig := make([]byte, 70)
		rand.Read(sig)
		m.Layers = append(m.Layers, oci.Descriptor{MediaType: sign.SimpleSigningMediaType, Digest: d, Size: int64(len(blob)),
			Annotations: map[string]string{sign.AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}})
	}
	raw, _ := json.Marshal(m)
	start := time.Now()
	r := e.regDo(t, http.MethodPut, "/v2/"+repo+"/manifests/sha256-"+subject.Encoded()+".sig", bearer, raw, "Content-Type", oci.MediaTypeOCIManifest)
	return r.code, time.Since(start)
}

// TestSignatureManifestAmplification (issue 9, defect 2): one pushed
// signature manifest with 100 layers all pointing at one 4 MiB
// simple-signing blob, each with another signature annotation, cost 12 s
// of CPU inside the synchronous manifest PUT, 423 MB of annotation rows
// and an 854 MB database. Now the PUT only queues the manifest (a
// replica without index workers acknowledges it with nothing indexed),
// the index reads and parses the blob once, stores no oversized value,
// indexes at most 100 layers of a manifest (the rest are one overflow
// record) and the database stays small.
func TestSignatureManifestAmplification(t *testing.T) {
	const repo = "grp/app"
	t.Run("the PUT does not index", func(t *testing.T) {
		e := start(t, func(c *config.Server) { c.IndexWorkers = -1 })
		bearer := e.regToken(t, "admin", e.AdminPassword, "repository:"+repo+":push,pull")
		subject := digest.FromString("image one")
		code, took := e.pushAmplifier(t, bearer, repo, subject, 100)
		if code != http.StatusCreated {
			t.Fatalf("manifest PUT: %d", code)
		}
		t.Logf("manifest PUT with 100 layers over a 4 MiB blob took %v", took)
		s := e.imageSignatures(t, repo, subject)
		if s.IndexState != "pending" || s.PendingManifests != 1 || len(s.Signatures) != 0 {
			t.Fatalf("right after the PUT: state %q, %d pending, %d signatures indexed; want the manifest queued and nothing indexed in the PUT",
				s.IndexState, s.PendingManifests, len(s.Signatures))
		}
	})

	e := start(t, nil)
	bearer := e.regToken(t, "admin", e.AdminPassword, "repository:"+repo+":push,pull")
	// A first signature blob, so the database has its tables warm.
	e.regPushBlob(t, repo, bearer, []byte("warm-up"))
	dbBefore, readsBefore := e.dbBytes(t), e.metric(t, "hallmark_index_blob_reads_total")
	subject := digest.FromString("image two")
	if code, took := e.pushAmplifier(t, bearer, repo, subject, 100); code != http.StatusCreated {
		t.Fatalf("manifest PUT: %d", code)
	} else {
		t.Logf("manifest PUT took %v", took)
	}
	s := e.waitIndexed(t, repo, subject)
	if len(s.Signatures) != 100 {
		t.Errorf("%d records for 100 layers", len(s.Signatures))
	}
	for _, sg := range s.Signatures {
		for k, v := range sg.Annotations {
			if len(v) > 4096 {
				t.Fatalf("annotation %s of %d bytes stored (status %s)", k, len(v), sg.Status)
			}
		}
		if sg.Status == "verified" || !strings.Contains(sg.StatusDetail, `not stored (over the index's limits): annotation "pad"`) {
			t.Fatalf("record %s: %s", sg.Status, sg.StatusDetail)
		}
	}
	if reads := e.metric(t, "hallmark_index_blob_reads_total"); readsBefore < 0 || reads-readsBefore != 1 {
		t.Errorf("blob reads went from %v to %v; the 4 MiB blob must be read once for its 100 layers", readsBefore, reads)
	}
	if grew := e.dbBytes(t) - dbBefore; grew > 32<<20 {
		t.Fatalf("the database grew by %d MiB for one signature manifest", grew>>20)
	}

	// Up to 1,000 layers are accepted; 100 are indexed.
	wide := digest.FromString("image three")
	if code, _ := e.pushAmplifier(t, bearer, repo, wide, 1000); code != http.StatusCreated {
		t.Fatalf("manifest PUT with 1000 layers: %d", code)
	}
	s = e.waitIndexed(t, repo, wide)
	overflow := 0
	for _, sg := range s.Signatures {
		if strings.Contains(sg.StatusDetail, "has 1000 layers; the index reads the first 100") {
			overflow++
		}
	}
	if len(s.Signatures) != 101 || overflow != 1 {
		t.Errorf("1000 layers: %d records (%d overflow); want 100 and one overflow record", len(s.Signatures), overflow)
	}
	if grew := e.dbBytes(t) - dbBefore; grew > 32<<20 {
		t.Errorf("the database grew by %d MiB for two signature manifests", grew>>20)
	}
}

// policyFixture is a private project with a maintainer, a developer and a
// CI job token, and a maintainer of another project.
type policyFixture struct {
	Project, Maintainer, Developer, Outsider, JobToken string
}

const policyPassword = "policy-password-1"

func newPolicyFixture(t *testing.T, e *env) policyFixture {
	t.Helper()
	ctx := t.Context()
	adm := e.admin(t)
	f := policyFixture{Project: "team/app", Maintainer: "mia", Developer: "dev", Outsider: "otto"}
	for _, p := range []string{f.Project, "other/app"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	for user, grant := range map[string][2]string{f.Maintainer: {f.Project, "maintainer"}, f.Developer: {f.Project, "developer"}, f.Outsider: {"other/app", "maintainer"}} {
		if _, err := adm.AddUser(ctx, user, policyPassword, false); err != nil {
			t.Fatal(err)
		}
		if err := adm.Store.SetMember(ctx, grant[0], user, auth.Role(grant[1])); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if f.JobToken, _, err = adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: f.Project, JobID: "9"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// policyCall sends method to the policy endpoint of project with the
// Authorization value authz ("" for none).
func (e *env) policyCall(t *testing.T, method, project, authz string, body []byte) regResp {
	t.Helper()
	var hdr []string
	if authz != "" {
		hdr = []string{"Authorization", authz}
	}
	return e.regDo(t, method, "/api/v1/projects/"+project+"/policy", "", body, hdr...)
}

// TestTrustPolicyAPIAbuse: the trust policy and rebuild endpoints against
// outsiders, members without maintainer rights, CI jobs, other projects'
// maintainers, oversized and malformed bodies, and floods: only a
// maintainer (or an admin) changes a policy, nothing else changes it, and
// repeated rebuilds do not grow the queue beyond one job per manifest.
func TestTrustPolicyAPIAbuse(t *testing.T) {
	e := start(t, nil)
	f := newPolicyFixture(t, e)
	valid := []byte(`{"identities":[{"identityRegexp":"^https://gitlab.example.com/team/app//.*$","issuer":"https://gitlab.example.com"}]}`)
	version := func() int {
		t.Helper()
		r := e.policyCall(t, http.MethodGet, f.Project, "Basic "+authBasic("admin", e.AdminPassword), nil)
		var v struct{ Version int }
		if r.code != http.StatusOK || json.Unmarshal(r.body, &v) != nil {
			t.Fatalf("GET policy as admin: %d %s", r.code, r.body)
		}
		return v.Version
	}

	for i := range 30 {
		if r := e.policyCall(t, http.MethodPut, f.Project, "", valid); r.code != http.StatusUnauthorized && r.code != http.StatusTooManyRequests {
			t.Fatalf("anonymous PUT %d: %d %s", i, r.code, r.body)
		}
	}
	for _, c := range []struct {
		who, authz string
		get, put   int
	}{
		{"anonymous", "", http.StatusUnauthorized, http.StatusUnauthorized},
		{"another project's maintainer", "Basic " + authBasic(f.Outsider, policyPassword), http.StatusNotFound, http.StatusNotFound},
		{"a developer", "Basic " + authBasic(f.Developer, policyPassword), http.StatusOK, http.StatusForbidden},
		{"the project's CI job", "Basic " + authBasic(auth.JobTokenUser, f.JobToken), http.StatusOK, http.StatusForbidden},
		{"a junk bearer", "Bearer not-a-token", http.StatusUnauthorized, http.StatusUnauthorized},
	} {
		if r := e.policyCall(t, http.MethodGet, f.Project, c.authz, nil); r.code != c.get {
			t.Errorf("%s GET: %d %s, want %d", c.who, r.code, r.body, c.get)
		}
		if r := e.policyCall(t, http.MethodPut, f.Project, c.authz, valid); r.code != c.put {
			t.Errorf("%s PUT: %d %s, want %d", c.who, r.code, r.body, c.put)
		}
	}
	maint := "Basic " + authBasic(f.Maintainer, policyPassword)
	for _, c := range []struct {
		what string
		body []byte
		code int
	}{
		{"oversized body", append(append([]byte(`{"roots":["hallmark"]`), []byte(strings.Repeat(" ", 1<<20))...), '}'), http.StatusRequestEntityTooLarge},
		{"not JSON", []byte("{{"), http.StatusBadRequest},
		{"unknown field", []byte(`{"identity":"x"}`), http.StatusBadRequest},
		{"regexp that does not compile", []byte(`{"identities":[{"identityRegexp":"(","issuer":"https://x.example"}]}`), http.StatusBadRequest},
		{"issuer that is not a URL", []byte(`{"identities":[{"identity":"x","issuer":"gitlab"}]}`), http.StatusBadRequest},
		{"root the server does not have", []byte(`{"roots":["public-good"]}`), http.StatusBadRequest},
		{"key that does not parse", []byte(`{"keys":["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"]}`), http.StatusBadRequest},
		{"too many identities", []byte(`{"identities":[` + strings.TrimSuffix(strings.Repeat(`{"identity":"x"},`, 65), ",") + `]}`), http.StatusBadRequest},
	} {
		if r := e.policyCall(t, http.MethodPut, f.Project, maint, c.body); r.code != c.code {
			t.Errorf("%s: %d %.200s, want %d", c.what, r.code, r.body, c.code)
		}
	}
	if v := version(); v != 0 {
		t.Fatalf("the policy changed to version %d through refused requests", v)
	}
	if r := e.policyCall(t, http.MethodPut, f.Project, maint, valid); r.code != http.StatusOK {
		t.Fatalf("maintainer PUT: %d %s", r.code, r.body)
	}
	if v := version(); v != 1 {
		t.Fatalf("version %d after the maintainer's PUT", v)
	}

	// Rebuilds: whole index for admins only; a flood merges into one job
	// per signature manifest.
	bearer := e.regToken(t, "admin", e.AdminPassword, "repository:"+f.Project+":push,pull")
	for i := range 3 {
		e.pushAmplifier(t, bearer, f.Project, digest.FromString(fmt.Sprint("img", i)), 1)
	}
	for i := range 3 {
		e.waitIndexed(t, f.Project, digest.FromString(fmt.Sprint("img", i)))
	}
	rebuild := func(authz, body string) regResp {
		t.Helper()
		var hdr []string
		if authz != "" {
			hdr = []string{"Authorization", authz}
		}
		return e.regDo(t, http.MethodPost, "/api/v1/index/rebuild", "", []byte(body), hdr...)
	}
	for _, c := range []struct {
		who, authz, body string
		code             int
	}{
		{"anonymous, everything", "", ``, http.StatusUnauthorized},
		{"anonymous, the project", "", `{"project":"team/app"}`, http.StatusUnauthorized},
		{"a maintainer, everything", maint, `{}`, http.StatusForbidden},
		{"a developer, the project", "Basic " + authBasic(f.Developer, policyPassword), `{"project":"team/app"}`, http.StatusForbidden},
		{"another project's maintainer", "Basic " + authBasic(f.Outsider, policyPassword), `{"project":"team/app"}`, http.StatusNotFound},
		{"a bad body", maint, `{"project":"team/app","x":1}`, http.StatusBadRequest},
	} {
		if r := rebuild(c.authz, c.body); r.code != c.code {
			t.Errorf("rebuild by %s: %d %s, want %d", c.who, r.code, r.body, c.code)
		}
	}
	for i := range 20 {
		if r := rebuild(maint, `{"project":"team/app"}`); r.code != http.StatusOK {
			t.Fatalf("maintainer rebuild %d: %d %s", i, r.code, r.body)
		}
	}
	if n := e.metric(t, "hallmark_index_jobs_pending"); n > 3 {
		t.Errorf("%v jobs pending after 20 rebuilds of a project with 3 signature manifests", n)
	}
	if r := rebuild("Basic "+authBasic("admin", e.AdminPassword), ``); r.code != http.StatusOK {
		t.Errorf("admin rebuild of everything: %d %s", r.code, r.body)
	}
}
