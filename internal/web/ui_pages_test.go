package web_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

func imagePath(d name.Digest) string {
	return "/ui/image/" + d.Context().RepositoryStr() + "@" + d.DigestStr()
}

func wantStatus(t *testing.T, what string, r response, status int, contains ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: HTTP %d, want %d\n%s", what, r.Status, status, r.Body)
	}
	for _, c := range contains {
		if !strings.Contains(r.Body, c) {
			t.Errorf("%s: the page lacks %q", what, c)
		}
	}
}

func wantNot(t *testing.T, what string, r response, absent ...string) {
	t.Helper()
	for _, c := range absent {
		if strings.Contains(r.Body, c) {
			t.Errorf("%s: the page shows %q", what, c)
		}
	}
}

// TestConsolePages: every page renders for the visitors who may see it,
// with the security headers, and shows what it should.
func TestConsolePages(t *testing.T) {
	e := sharedEnv(t)
	admin := e.visitor(t)
	if r := admin.login("admin"); r.Status != http.StatusSeeOther {
		t.Fatalf("admin sign-in: HTTP %d\n%s", r.Status, r.Body)
	}
	anon := e.visitor(t)
	for _, tc := range []struct {
		name, path string
		v          *visitor
		contains   []string
	}{
		{"overview", "/ui/", admin, []string{"Overview", "Recent pushes", "Recent signatures", "Tree size", "signature verified", "demo/app"}},
		{"repositories", "/ui/repositories", admin, []string{"demo/app", "secret/app"}},
		{"repositories filtered", "/ui/repositories?q=secret", admin, []string{"secret/app"}},
		{"repository", "/ui/repo/demo/app", admin, []string{e.Tag, "verified", "unsigned", "contradicted", e.Commit[:12], "contradicts certificate"}},
		{"repository with artifacts", "/ui/repo/demo/app?artifacts=1", admin, []string{".sig", ".att"}},
		{"repository verified only", "/ui/repo/demo/app?status=verified", admin, []string{e.Tag}},
		{"image", imagePath(e.Signed), admin, []string{"Signatures and attestations", "com.gitlab.ci.commit.sha", "attested",
			"sourceRepositoryDigest", "Transparency log entry", "checked", "SLSA provenance", "hallmark verify --certificate-identity",
			"cosign verify --trusted-root", "Configuration", "Layers"}},
		{"log", "/ui/log", anon, []string{"Tree size", "signature verified"}},
		{"log entry", "/ui/log?q=0", anon, []string{"Entry 0", "checked", "hashedrekord"}},
		{"audit", "/ui/audit", admin, []string{"Audit log", "session.login", "push"}},
		{"audit filtered", "/ui/audit?action=sign&since=1h", admin, []string{"sign", "demo/app"}},
		{"login", "/ui/login", anon, []string{"Sign in", `name="csrf"`}},
		{"anonymous overview", "/ui/", anon, []string{"demo/app", "Sign in"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.v.get(tc.path)
			wantStatus(t, tc.path, r, http.StatusOK, tc.contains...)
			for h, want := range map[string]string{"Content-Type": "text/html; charset=utf-8", "X-Content-Type-Options": "nosniff",
				"Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"} {
				if got := r.Header.Get(h); got != want {
					t.Errorf("%s: %s = %q, want %q", tc.path, h, got, want)
				}
			}
			csp := r.Header.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("%s: CSP %q lacks %q", tc.path, csp, d)
				}
			}
			if strings.Contains(r.Body, "<script>") || strings.Contains(r.Body, " style=") || strings.Contains(r.Body, "onclick") {
				t.Errorf("%s: inline script or style in the page", tc.path)
			}
			if len(r.Body) > 100<<10 {
				t.Errorf("%s: %d bytes, over 100 KB", tc.path, len(r.Body))
			}
		})
	}
	// Unsigned image: its own status, no signatures.
	r := admin.get(imagePath(e.Unsigned))
	wantStatus(t, "unsigned image", r, http.StatusOK, "This image has no signatures", `id="image-status">unsigned`)
	// Static assets are served with their types.
	for path, typ := range map[string]string{"/ui/static/style.css": "text/css", "/ui/static/app.js": "text/javascript"} {
		r := anon.get(path)
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), typ) {
			t.Errorf("%s: HTTP %d, %s", path, r.Status, r.Header.Get("Content-Type"))
		}
	}
}

// TestConsoleImagePage: the keylessly signed image's page shows the eleven
// CI annotations with their marks, the contradicted one flagged, the log
// entry with its proof checked, and the SLSA provenance.
func TestConsoleImagePage(t *testing.T) {
	e := sharedEnv(t)
	anon := e.visitor(t)
	r := anon.get(imagePath(e.Signed))
	wantStatus(t, "signed image", r, http.StatusOK, `id="image-status">verified`, e.Identity, e.Issuer,
		`data-proof="checked"`, "the entry logs this signature", "runInvocationURI", "sourceRepositoryURI")
	for _, k := range []string{"com.gitlab.ci.user.name", "com.gitlab.ci.pipeline.id", "com.gitlab.ci.pipeline.url", "com.gitlab.ci.job.id",
		"com.gitlab.ci.job.url", "com.gitlab.ci.commit.sha", "com.gitlab.ci.commit.ref.name", "com.gitlab.ci.project.path",
		"org.opencontainers.image.source", "org.opencontainers.image.revision", ">tag<"} {
		if !strings.Contains(r.Body, k) {
			t.Errorf("the image page lacks annotation %s", k)
		}
	}
	if n := strings.Count(r.Body, `data-mark="attested"`); n < 7 {
		t.Errorf("%d attested annotations, want the 8 the certificate covers (commit, revision, ref, project path, source, job url, job id, pipeline url)", n)
	}
	if strings.Contains(r.Body, `data-mark="contradicted"`) {
		t.Error("the honest signature has a contradicted annotation")
	}
	if !strings.Contains(r.Body, "https://slsa.dev/provenance/v1") || !strings.Contains(r.Body, "gitCommit:"+e.Commit) {
		t.Error("the SLSA provenance (predicate type, source commit) is not shown")
	}
	c := anon.get(imagePath(e.Contradicted))
	wantStatus(t, "contradicted image", c, http.StatusOK, `data-mark="contradicted"`, FakeCommit, "contradict", "certificate says")
	if !strings.Contains(c.Body, e.Commit) {
		t.Error("the contradicted annotation does not show what the certificate attests")
	}
}

// TestConsoleSignaturePages: an image with more keyless signatures than a
// page shows them a page at a time, each page well under 100 KB.
func TestConsoleSignaturePages(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	first := v.get(imagePath(e.Many))
	wantStatus(t, "first page", first, http.StatusOK, "More signatures")
	if n := strings.Count(first.Body, `<article class="sig`); n != 10 {
		t.Errorf("first page: %d signatures, want 10", n)
	}
	if len(first.Body) > 100<<10 {
		t.Errorf("a page of 10 keyless signatures is %d bytes", len(first.Body))
	}
	t.Logf("a page of 10 keyless signatures: %d bytes", len(first.Body))
	next := regexp.MustCompile(`href="([^"]+)#signatures">More signatures`).FindStringSubmatch(first.Body)
	if next == nil {
		t.Fatal("no link to the next page")
	}
	second := v.get(html.UnescapeString(next[1]))
	wantStatus(t, "second page", second, http.StatusOK)
	if n := strings.Count(second.Body, `<article class="sig`); n != manySigned-10 {
		t.Errorf("second page: %d signatures, want %d", n, manySigned-10)
	}
	if strings.Contains(second.Body, "More signatures") {
		t.Error("the last page links to another")
	}
	if !strings.Contains(second.Body, `id="image-status">verified`) || !strings.Contains(second.Body, fmt.Sprintf("%d verified", manySigned)) {
		t.Error("the second page does not show the image's status over all its signatures")
	}
}

// TestConsoleErrors: 404 for what does not exist or may not be seen (the
// same page either way), 400 for bad queries, 403 for the audit log,
// 405 for wrong methods.
func TestConsoleErrors(t *testing.T) {
	e := sharedEnv(t)
	anon, alice := e.visitor(t), e.visitor(t)
	if r := alice.login("alice"); r.Status != http.StatusSeeOther {
		t.Fatalf("alice sign-in: %d", r.Status)
	}
	missing := "sha256:" + strings.Repeat("0", 64)
	for _, tc := range []struct {
		name   string
		v      *visitor
		method string
		path   string
		status int
	}{
		{"unknown page", anon, "GET", "/ui/nope", 404},
		{"unknown repository", anon, "GET", "/ui/repo/no/such", 404},
		{"invalid repository name", anon, "GET", "/ui/repo/UPPER", 404},
		{"private repository, anonymous", anon, "GET", "/ui/repo/secret/app", 404},
		{"private repository, non-member", alice, "GET", "/ui/repo/secret/app", 404},
		{"private image, anonymous", anon, "GET", imagePath(e.Private), 404},
		{"private image, non-member", alice, "GET", imagePath(e.Private), 404},
		{"unknown image", anon, "GET", "/ui/image/demo/app@" + missing, 404},
		{"image without digest", anon, "GET", "/ui/image/demo/app", 404},
		{"bad digest", anon, "GET", "/ui/image/demo/app@sha256:xyz", 400},
		{"bad signature cursor", anon, "GET", imagePath(e.Signed) + "?after=-3", 400},
		{"bad status filter", anon, "GET", "/ui/repo/demo/app?status=great", 400},
		{"bad tag cursor", anon, "GET", "/ui/repo/demo/app?after=" + url.QueryEscape("../x"), 400},
		{"long repository filter", anon, "GET", "/ui/repositories?q=" + strings.Repeat("a", 300), 400},
		{"bad log query", anon, "GET", "/ui/log?q=xyz", 400},
		{"unknown log entry", anon, "GET", "/ui/log?q=999999", 404},
		{"unknown log UUID", anon, "GET", "/ui/log?q=" + strings.Repeat("ab", 32), 404},
		{"audit, anonymous", anon, "GET", "/ui/audit", 403},
		{"audit, non-admin", alice, "GET", "/ui/audit", 403},
		{"bad audit since", alice, "GET", "/ui/audit?since=yesterday", 403},
		{"POST to a page", anon, "POST", "/ui/repositories", 405},
		{"GET logout", anon, "GET", "/ui/logout", 405},
		{"DELETE login", anon, "DELETE", "/ui/login", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.v.do(tc.method, tc.path, nil)
			if r.Status != tc.status {
				t.Fatalf("%s %s: HTTP %d, want %d\n%s", tc.method, tc.path, r.Status, tc.status, r.Body)
			}
			if !strings.Contains(r.Body, "<h1>") || r.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("%s %s: not an HTML error page with the console's headers", tc.method, tc.path)
			}
		})
	}
	// A private repository looks exactly like one that does not exist.
	priv, none := anon.get("/ui/repo/secret/app"), anon.get("/ui/repo/secret/nope")
	if strings.ReplaceAll(priv.Body, "secret/app", "X") != strings.ReplaceAll(none.Body, "secret/nope", "X") {
		t.Error("a private repository's 404 differs from a missing one's")
	}
	admin := e.visitor(t)
	admin.login("admin")
	wantStatus(t, "bad audit since (admin)", admin.get("/ui/audit?since=yesterday"), http.StatusBadRequest, "since")
	wantStatus(t, "bad audit cursor", admin.get("/ui/audit?before=x"), http.StatusBadRequest, "before")
}

// TestConsoleAccess: anonymous visitors see public projects only; a
// member sees the private one; lists leave out what the visitor may not
// pull.
func TestConsoleAccess(t *testing.T) {
	e := sharedEnv(t)
	anon, alice, bob := e.visitor(t), e.visitor(t), e.visitor(t)
	alice.login("alice")
	bob.login("bob")
	for who, v := range map[string]*visitor{"anonymous": anon, "alice": alice} {
		for _, p := range []string{"/ui/", "/ui/repositories", "/ui/repositories?q=secret", "/ui/log?q=" + "0"} {
			r := v.get(p)
			wantNot(t, who+" "+p, r, "secret/app", e.Private.DigestStr())
		}
	}
	wantStatus(t, "bob's private repository", bob.get("/ui/repo/secret/app"), http.StatusOK, "verified")
	wantStatus(t, "bob's private image", bob.get(imagePath(e.Private)), http.StatusOK, `id="image-status">verified`)
	wantStatus(t, "bob's repositories", bob.get("/ui/repositories"), http.StatusOK, "secret/app", "demo/app")
	wantNot(t, "bob's nav", bob.get("/ui/"), "/ui/audit")
}

// TestConsoleMarkupInert: markup in a signed annotation and in a tag
// renders as text.
func TestConsoleMarkupInert(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	r := v.get(imagePath(e.XSS))
	wantStatus(t, "image with markup", r, http.StatusOK, "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;")
	wantNot(t, "image with markup", r, "<script>alert", "<img src=x")
	repo := v.get("/ui/repo/demo/app")
	wantStatus(t, "repository", repo, http.StatusOK, e.XSSTag)
	wantNot(t, "repository", repo, "<script>alert")
	// A search for markup is echoed inert.
	q := v.get("/ui/repositories?q=" + url.QueryEscape(`"><script>alert(3)</script>`))
	wantStatus(t, "filter with markup", q, http.StatusOK, "&#34;&gt;&lt;script&gt;alert(3)&lt;/script&gt;")
	wantNot(t, "filter with markup", q, "<script>alert(3)")
}

// TestConsoleAuthOff: without access control every visitor sees every
// repository, and there is no sign-in and no audit page.
func TestConsoleAuthOff(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	for path, want := range map[string]int{"/ui/": 200, "/ui/repositories": 200, "/ui/log": 200, "/ui/login": 404, "/ui/audit": 404,
		"/ui": 200} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: HTTP %d, want %d", path, resp.StatusCode, want)
		}
		if strings.Contains(string(b), "Sign in") || strings.Contains(string(b), `href="/ui/audit"`) {
			t.Errorf("GET %s: sign-in or audit link on a server without access control", path)
		}
	}
}
