package web_test

import (
	"archive/tar"
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

var (
	resultDigestRE = regexp.MustCompile(`class="mono digest-link" href="[^"]*" title="(sha256:[0-9a-f]{64})"`)
	nextRE         = regexp.MustCompile(`href="([^"]+)" rel="next" id="next-page"`)
	exportCSVRE    = regexp.MustCompile(`id="export-csv" href="([^"]+)"`)
)

// resultDigests are the image digests of a search page's rows, in order.
func resultDigests(body string) []string {
	var out []string
	for _, m := range resultDigestRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func searchPath(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return "/ui/search?" + q.Encode()
}

// TestConsoleSearchConditions: every condition of the search form finds
// the keylessly signed image (or, for the contradicted annotation, the
// image whose signer claimed it), says what it matched on, and keeps the
// condition in the form; conditions combine with AND.
func TestConsoleSearchConditions(t *testing.T) {
	e := sharedEnv(t)
	admin := e.visitor(t)
	admin.login("admin")
	signed, lie := e.Signed.DigestStr(), e.Contradicted.DigestStr()
	for _, tc := range []struct {
		name     string
		kv       []string
		want     string // a digest among the results
		evidence string // data-evidence of the match shown: "true", "false" or "" (no match column)
		not      string // a digest not among them
	}{
		{"commit", []string{"commit", e.Commit}, signed, "true", ""},
		{"commit prefix", []string{"commit", e.Commit[:10]}, signed, "true", ""},
		{"pipeline", []string{"pipeline", e.Pipeline}, signed, "true", ""},
		{"job", []string{"job", e.Job}, signed, "true", ""},
		{"project", []string{"project", "demo/app", "limit", "100"}, signed, "true", e.Private.DigestStr()},
		{"ref", []string{"ref", "main", "limit", "100"}, signed, "true", ""},
		{"user", []string{"user", e.User, "limit", "100"}, signed, "true", ""},
		{"runner", []string{"runner", "1", "limit", "100"}, signed, "true", ""},
		{"identity", []string{"identity", e.Identity, "limit", "100"}, signed, "true", ""},
		{"issuer", []string{"issuer", e.Issuer, "limit", "100"}, signed, "true", ""},
		{"annotation", []string{"annotation", "com.gitlab.ci.commit.sha=" + FakeCommit}, lie, "false", signed},
		{"status", []string{"status", "verified", "commit", e.Commit, "limit", "100"}, signed, "true", ""},
		{"since", []string{"since", "1h", "commit", e.Commit, "limit", "100"}, signed, "true", ""},
		{"until", []string{"until", "2200-01-01", "commit", e.Commit, "limit", "100"}, signed, "true", ""},
		{"and", []string{"commit", e.Commit, "annotation", "com.gitlab.ci.commit.sha=" + FakeCommit}, lie, "true", signed},
		{"and, none", []string{"pipeline", e.Pipeline, "runner", "999"}, "", "", signed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := admin.get(searchPath(tc.kv...))
			wantStatus(t, tc.name, r, http.StatusOK, `id="results"`)
			got := resultDigests(r.Body)
			if tc.want != "" && !slices.Contains(got, tc.want) {
				t.Errorf("%v: %s not among the results %v", tc.kv, tc.want, got)
			}
			if tc.want == "" && len(got) != 0 {
				t.Errorf("%v: results %v, want none", tc.kv, got)
			}
			if tc.not != "" && slices.Contains(got, tc.not) {
				t.Errorf("%v: %s among the results", tc.kv, tc.not)
			}
			if tc.evidence != "" && !strings.Contains(r.Body, `data-evidence="`+tc.evidence+`"`) {
				t.Errorf("%v: no match marked evidence=%s", tc.kv, tc.evidence)
			}
			if tc.evidence == "false" && !strings.Contains(r.Body, "self-asserted") {
				t.Errorf("%v: the annotation match is not marked self-asserted", tc.kv)
			}
			// The form keeps the condition.
			if v := tc.kv[1]; !strings.Contains(r.Body, `value="`+html.EscapeString(v)+`"`) && !strings.Contains(r.Body, `value="`+v+`" checked`) {
				t.Errorf("%v: the form lost %q", tc.kv, v)
			}
		})
	}
}

// TestConsoleSearchErrors: a bad query is a 400 page saying what was
// wrong; an empty form shows no results.
func TestConsoleSearchErrors(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	for q, want := range map[string]string{
		"commit=xyz":                           "commit",
		"runner=abc":                           "not a runner id",
		"nonsense=1":                           "unknown parameter",
		"cursor=garbage":                       "cursor",
		"since=yesterday":                      "since",
		"status=great":                         "status",
		"annotation=novalue":                   "annotation",
		"limit=100000":                         "limit",
		"since=2025-02-01&until=2025-01-01":    "not before",
		"commit=" + strings.Repeat("a", 20000): "the limit is",
	} {
		r := v.get("/ui/search?" + q)
		wantStatus(t, truncateQ(q), r, http.StatusBadRequest, "Bad request", html.EscapeString(want))
	}
	r := v.get("/ui/search")
	wantStatus(t, "empty search", r, http.StatusOK, `id="search-form"`)
	wantNot(t, "empty search", r, `id="results"`)
	// The empty fields of a submitted form are no conditions.
	r = v.get("/ui/search?commit=&pipeline=&runner=&annotation=&since=&project=demo%2Fapp")
	wantStatus(t, "form with empty fields", r, http.StatusOK, `id="results"`)
	if r := v.do(http.MethodPost, "/ui/search", url.Values{"commit": {e.Commit}}); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/search: HTTP %d", r.Status)
	}
}

func truncateQ(s string) string {
	if len(s) > 60 {
		return s[:60] + "..."
	}
	return s
}

// TestConsoleSearchPaging: following the next links (the API's cursor)
// walks the whole result set once, in the order of one big page.
func TestConsoleSearchPaging(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	v.login("admin")
	all := resultDigests(v.get(searchPath("project", "demo/app", "limit", "500")).Body)
	if len(all) <= manySigned {
		t.Fatalf("only %d results in demo/app", len(all))
	}
	var paged []string
	path := searchPath("project", "demo/app", "limit", "7")
	for pages := 0; path != ""; pages++ {
		if pages > len(all) {
			t.Fatal("the next links do not end")
		}
		r := v.get(path)
		wantStatus(t, path, r, http.StatusOK)
		if pages > 0 && !strings.Contains(r.Body, "First page") {
			t.Errorf("page %d has no link to the first", pages+1)
		}
		paged = append(paged, resultDigests(r.Body)...)
		path = ""
		if m := nextRE.FindStringSubmatch(r.Body); m != nil {
			path = html.UnescapeString(m[1])
		}
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged results (%d) differ from one page (%d)", len(paged), len(all))
	}
}

// TestConsoleSearchAccess: the search shows only what the visitor may
// pull: anonymous visitors and users without the project never see the
// private project's image; its reporter does.
func TestConsoleSearchAccess(t *testing.T) {
	e := sharedEnv(t)
	private := e.Private.DigestStr()
	for _, tc := range []struct {
		user string
		sees bool
	}{{"", false}, {"alice", false}, {"carol", false}, {"bob", true}, {"dave", true}, {"admin", true}} {
		v := e.visitor(t)
		if tc.user != "" {
			v.login(tc.user)
		}
		for _, q := range []string{searchPath("runner", "1", "limit", "500"), searchPath("project", "secret/app"), searchPath("issuer", e.Issuer, "limit", "500")} {
			r := v.get(q)
			wantStatus(t, q, r, http.StatusOK)
			if got := slices.Contains(resultDigests(r.Body), private); got != tc.sees || strings.Contains(r.Body, "secret/app</a>") != tc.sees {
				t.Errorf("%q: %s: sees the private image %v, want %v", tc.user, q, got, tc.sees)
			}
		}
		// The export is the same search with the same access.
		_, rows := exportCSV(t, v, "/ui/search/export?format=csv&runner=1")
		seen := false
		for _, row := range rows {
			seen = seen || row[2] == private
		}
		if seen != tc.sees {
			t.Errorf("%q: CSV export has the private image %v, want %v", tc.user, seen, tc.sees)
		}
	}
}

// exportCSV downloads a CSV export through the console and parses it.
func exportCSV(t *testing.T, v *visitor, path string) ([]string, [][]string) {
	t.Helper()
	r := v.get(path)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("%s: HTTP %d %s\n%s", path, r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
		t.Errorf("%s: Content-Disposition %q", path, cd)
	}
	recs, err := csv.NewReader(strings.NewReader(r.Body)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("%s: not CSV (%v):\n%s", path, err, r.Body)
	}
	return recs[0], recs[1:]
}

// TestConsoleSearchExport: the search page links exports of its search;
// CSV parses with a row per signature, NDJSON a result per line, the
// bundles tar holds bundles; a bad export is a 400 page.
func TestConsoleSearchExport(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	page := v.get(searchPath("commit", e.Commit, "limit", "50"))
	m := exportCSVRE.FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("no CSV export link:\n%s", page.Body)
	}
	link := html.UnescapeString(m[1])
	header, rows := exportCSV(t, v, link)
	if len(header) < 3 || header[2] != "image_digest" {
		t.Fatalf("CSV header %v", header)
	}
	if n := len(resultDigests(page.Body)); len(rows) != n {
		t.Errorf("CSV has %d rows, the page %d results", len(rows), n)
	}
	found := false
	for _, row := range rows {
		found = found || row[1] == e.PublicRepo && row[2] == e.Signed.DigestStr() && row[12] == e.Commit
	}
	if !found {
		t.Errorf("no CSV row of %s with commit %s: %v", e.Signed, e.Commit, rows)
	}

	r := v.get(strings.Replace(link, "format=csv", "format=ndjson", 1))
	if r.Status != http.StatusOK {
		t.Fatalf("ndjson export: HTTP %d", r.Status)
	}
	sc := bufio.NewScanner(strings.NewReader(r.Body))
	lines := 0
	for sc.Scan() {
		var res struct {
			Repository string `json:"repository"`
			Subject    string `json:"subject"`
		}
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil || res.Subject == "" {
			t.Fatalf("ndjson line %q: %v", sc.Text(), err)
		}
		lines++
	}
	if lines != len(rows) {
		t.Errorf("ndjson has %d lines, CSV %d rows", lines, len(rows))
	}

	r = v.get(strings.Replace(link, "format=csv", "format=bundles", 1))
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("bundles export: HTTP %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	tr := tar.NewReader(strings.NewReader(r.Body))
	bundles := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(h.Name, ".sigstore.json") {
			bundles++
		}
	}
	if bundles == 0 {
		t.Error("the bundles tar has no bundle")
	}
	for q, status := range map[string]int{"format=xml&commit=" + e.Commit: 400, "format=csv&commit=zz": 400, "format=csv&max=0&commit=" + e.Commit: 400} {
		if r := v.get("/ui/search/export?" + q); r.Status != status || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
			t.Errorf("export %s: HTTP %d %s, want %d (an HTML page)", q, r.Status, r.Header.Get("Content-Type"), status)
		}
	}
}

// TestConsoleSearchXSS: markup in a signed annotation value renders inert
// on the search page (in the matched value and in the form).
func TestConsoleSearchXSS(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	r := v.get(searchPath("annotation", "com.gitlab.ci.user.name="+xssMarkup))
	wantStatus(t, "xss search", r, http.StatusOK)
	if !slices.Contains(resultDigests(r.Body), e.XSS.DigestStr()) {
		t.Fatalf("the search by the markup annotation does not find %s", e.XSS)
	}
	wantNot(t, "xss search", r, "<script>alert", "<img src=x")
	if !strings.Contains(r.Body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("the markup is not shown escaped")
	}
}

// pullError pulls ref's manifest anonymously (demo/app is public) and
// returns the registry's error, nil if the pull works.
func pullError(t *testing.T, e *consoleEnv, ref name.Digest) error {
	t.Helper()
	r, err := name.NewDigest(strings.TrimPrefix(e.URL, "http://")+"/"+ref.Context().RepositoryStr()+"@"+ref.DigestStr(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Get(r, remote.WithAuth(authn.Anonymous))
	return err
}

func wantDenied(t *testing.T, err error, reason string) {
	t.Helper()
	var te *transport.Error
	if !errors.As(err, &te) || te.StatusCode != http.StatusForbidden || !strings.Contains(te.Error(), reason) {
		t.Fatalf("pull: %v, want 403 DENIED with %q", err, reason)
	}
}

var quarantineFormRE = regexp.MustCompile(`(?s)<form method="post" action="/ui/quarantine"[^>]*>.*?name="csrf" value="([^"]+)"`)

// quarantineCSRF returns the CSRF token of the page's quarantine form.
func quarantineCSRF(t *testing.T, body string) string {
	t.Helper()
	m := quarantineFormRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no quarantine form in the page:\n%s", body)
	}
	return m[1]
}

func (v *visitor) post(path string, form url.Values) response {
	v.t.Helper()
	return v.do(http.MethodPost, path, form, "Origin", v.e.URL, "Sec-Fetch-Site", "same-origin")
}

// TestConsoleQuarantine: a maintainer quarantines an image from the search
// page (a pull is then refused with the reason) and lifts it from the
// image page (the pull works again); the form is shown to maintainers
// only; forged, tokenless and cross-site POSTs are refused and change
// nothing; another project's maintainer cannot quarantine the image.
func TestConsoleQuarantine(t *testing.T) {
	e := sharedEnv(t)
	many := e.Many
	item := e.PublicRepo + "@" + many.DigestStr()
	search := searchPath("project", "demo/app", "limit", "100")

	// Who sees the form.
	for user, sees := range map[string]bool{"": false, "alice": false, "bob": false, "dave": false, "carol": true, "admin": true} {
		v := e.visitor(t)
		if user != "" {
			v.login(user)
		}
		r := v.get(search)
		if got := strings.Contains(r.Body, `id="quarantine-form"`); got != sees {
			t.Errorf("%q sees the quarantine form: %v, want %v", user, got, sees)
		}
		if got := strings.Contains(v.get(imagePath(many)).Body, `id="quarantine-image-form"`); got != sees {
			t.Errorf("%q sees the image page's quarantine form: %v, want %v", user, got, sees)
		}
	}

	carol := e.visitor(t)
	carol.login("carol")
	token := quarantineCSRF(t, carol.get(search).Body)
	form := func(kv ...string) url.Values {
		f := url.Values{"do": {"quarantine"}, "reason": {"INC-42 compromised runner"}, "item": {item}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "" {
				f.Del(kv[i])
			} else {
				f.Set(kv[i], kv[i+1])
			}
		}
		return f
	}
	// Refused: no token, a wrong token, another site, anonymous, a
	// reporter's own valid token, another project's maintainer.
	bob, dave, anon := e.visitor(t), e.visitor(t), e.visitor(t)
	bob.login("bob")
	dave.login("dave")
	bobToken := csrf(t, bob.get("/ui/").Body)
	daveToken := csrf(t, dave.get("/ui/").Body)
	for _, tc := range []struct {
		name string
		r    response
		want int
	}{
		{"no token", carol.post("/ui/quarantine", form()), http.StatusForbidden},
		{"wrong token", carol.post("/ui/quarantine", form("csrf", "forged-token")), http.StatusForbidden},
		{"bob's token", carol.post("/ui/quarantine", form("csrf", bobToken)), http.StatusForbidden},
		{"cross-site", carol.do(http.MethodPost, "/ui/quarantine", form("csrf", token), "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"), http.StatusForbidden},
		{"anonymous", anon.post("/ui/quarantine", form("csrf", "x")), http.StatusForbidden},
		{"reporter", bob.post("/ui/quarantine", form("csrf", bobToken)), http.StatusForbidden},
		{"other project's maintainer", dave.post("/ui/quarantine", form("csrf", daveToken)), http.StatusForbidden},
		{"other project's maintainer, all", dave.post("/ui/quarantine", form("csrf", daveToken, "item", "", "scope", "all", "query", "project=demo%2Fapp")), http.StatusForbidden},
		{"GET", carol.get("/ui/quarantine"), http.StatusMethodNotAllowed},
		{"no reason", carol.post("/ui/quarantine", form("csrf", token, "reason", "")), http.StatusBadRequest},
		{"bad item", carol.post("/ui/quarantine", form("csrf", token, "item", "demo/app@sha256:nothex")), http.StatusBadRequest},
		{"no item", carol.post("/ui/quarantine", form("csrf", token, "item", "")), http.StatusBadRequest},
		{"bad do", carol.post("/ui/quarantine", form("csrf", token, "do", "delete")), http.StatusBadRequest},
		{"all without conditions", carol.post("/ui/quarantine", form("csrf", token, "item", "", "scope", "all", "query", "")), http.StatusBadRequest},
	} {
		if tc.r.Status != tc.want {
			t.Errorf("%s: HTTP %d, want %d\n%s", tc.name, tc.r.Status, tc.want, tc.r.Body)
		}
		if err := pullError(t, e, many); err != nil {
			t.Fatalf("after the refused %s: pull: %v", tc.name, err)
		}
	}
	tooMany := form("csrf", token)
	for range 1001 {
		tooMany.Add("item", item)
	}
	if r := carol.post("/ui/quarantine", tooMany); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "at most 1000") {
		t.Errorf("1002 items: HTTP %d\n%s", r.Status, r.Body)
	}

	// Quarantine from the search page: a mixed selection by dave is done
	// where he may and refused where he may not.
	r := carol.post("/ui/quarantine", form("csrf", token))
	wantStatus(t, "quarantine", r, http.StatusOK, "Quarantined: 1", `data-outcome="quarantined"`, "INC-42 compromised runner")
	wantDenied(t, pullError(t, e, many), "INC-42 compromised runner")
	r = carol.post("/ui/quarantine", form("csrf", token))
	wantStatus(t, "quarantine again", r, http.StatusOK, "already quarantined")

	mixed := url.Values{"do": {"quarantine"}, "reason": {"dave's incident"}, "csrf": {daveToken},
		"item": {item, e.PrivateRepo + "@" + e.Private.DigestStr()}}
	r = dave.post("/ui/quarantine", mixed)
	wantStatus(t, "mixed", r, http.StatusOK, "refused: 1", `data-outcome="refused"`, `data-outcome="quarantined"`)
	mixed.Set("do", "lift")
	wantStatus(t, "mixed lift", dave.post("/ui/quarantine", mixed), http.StatusOK, `data-outcome="lifted"`)
	// dave's lift did not lift carol's quarantine of demo/app.
	wantDenied(t, pullError(t, e, many), "INC-42 compromised runner")

	// The image page shows the quarantine and, to carol, the lift form.
	ip := carol.get(imagePath(many))
	wantStatus(t, "image page", ip, http.StatusOK, `id="quarantine-status"`, "INC-42 compromised runner", `id="lift-form"`)
	wantNot(t, "bob's image page", bob.get(imagePath(many)), `id="lift-form"`)
	r = carol.post("/ui/quarantine", url.Values{"do": {"lift"}, "item": {item}, "csrf": {quarantineCSRF(t, ip.Body)}, "back": {imagePath(many)}})
	wantStatus(t, "lift", r, http.StatusOK, "Lifted: 1", `href="`+html.EscapeString(imagePath(many))+`"`)
	if err := pullError(t, e, many); err != nil {
		t.Fatalf("after the lift: pull: %v", err)
	}

	// The whole result set of a search, then lifted the same way.
	all := url.Values{"do": {"quarantine"}, "reason": {"whole set"}, "csrf": {token}, "scope": {"all"},
		"query": {"commit=" + e.Commit + "&limit=5"}, "item": {item}}
	r = carol.post("/ui/quarantine", all)
	wantStatus(t, "quarantine all", r, http.StatusOK, `data-outcome="quarantined"`)
	n := strings.Count(r.Body, `data-outcome="quarantined"`)
	if n < 3 {
		t.Errorf("the commit's result set quarantined %d images", n)
	}
	wantDenied(t, pullError(t, e, e.Signed), "whole set")
	all.Set("do", "lift")
	r = carol.post("/ui/quarantine", all)
	if got := strings.Count(r.Body, `data-outcome="lifted"`); r.Status != http.StatusOK || got != n {
		t.Errorf("lift all: HTTP %d, %d lifted, want %d", r.Status, got, n)
	}
	if err := pullError(t, e, e.Signed); err != nil {
		t.Fatalf("after lifting the set: pull: %v", err)
	}
}
