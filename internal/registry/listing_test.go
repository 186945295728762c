package registry_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// page follows Link headers from first and returns every page's items.
func (e *env) pages(t *testing.T, first string, field string) (all [][]string) {
	t.Helper()
	next := first
	for i := 0; next != ""; i++ {
		if i > 100 {
			t.Fatal("pagination does not end")
		}
		r := e.do(http.MethodGet, next, nil)
		wantStatus(t, "GET "+next, r, http.StatusOK)
		if ct := r.h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("GET %s: %v", next, err)
		}
		var items []string
		if err := json.Unmarshal(body[field], &items); err != nil || items == nil {
			t.Fatalf("GET %s: %s is not a list: %s", next, field, r.body)
		}
		all = append(all, items)
		next = ""
		if l := r.h.Get("Link"); l != "" {
			m := linkRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("malformed Link %q", l)
			}
			next = m[1]
		}
	}
	return all
}

func flatten(p [][]string) []string {
	var out []string
	for _, x := range p {
		out = append(out, x...)
	}
	return out
}

func TestTagsList(t *testing.T) {
	e := newEnv(t, registry.Config{})
	body := e.image("group/app", oci.MediaTypeOCIManifest, nil)
	tags := []string{"v1", "v10", "v2", "latest", "A", "Z_last", "b-1", "b.2"}
	for _, tg := range tags {
		wantStatus(t, "PUT "+tg, e.pushManifest("group/app", tg, oci.MediaTypeOCIManifest, body), http.StatusCreated)
	}
	sorted := slices.Clone(tags)
	slices.Sort(sorted)

	r := e.do(http.MethodGet, "/v2/group/app/tags/list", nil)
	wantStatus(t, "tags/list", r, http.StatusOK)
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(r.body, &tl); err != nil {
		t.Fatal(err)
	}
	if tl.Name != "group/app" || !slices.Equal(tl.Tags, sorted) {
		t.Fatalf("tags/list = %+v, want %v", tl, sorted)
	}
	if r.h.Get("Link") != "" {
		t.Errorf("Link on a complete list: %q", r.h.Get("Link"))
	}

	for _, n := range []int{1, 3, 8, 9} {
		p := e.pages(t, "/v2/group/app/tags/list?n="+itoa(n), "tags")
		if got := flatten(p); !slices.Equal(got, sorted) {
			t.Errorf("n=%d: pages %v, want %v", n, p, sorted)
		}
		for i, page := range p {
			if len(page) > n || (i < len(p)-1 && len(page) != n) {
				t.Errorf("n=%d: page %d has %d items", n, i, len(page))
			}
		}
	}
	// last=: strictly after.
	p := e.pages(t, "/v2/group/app/tags/list?last=latest", "tags")
	if got := flatten(p); !slices.Equal(got, sorted[slices.Index(sorted, "latest")+1:]) {
		t.Errorf("last=latest: %v", got)
	}
	p = e.pages(t, "/v2/group/app/tags/list?n=2&last=v2", "tags")
	if got := flatten(p); len(got) != 0 {
		t.Errorf("after the last tag: %v", got)
	}
	// n=0: empty list, no Link.
	r = e.do(http.MethodGet, "/v2/group/app/tags/list?n=0", nil)
	wantStatus(t, "n=0", r, http.StatusOK)
	if r.h.Get("Link") != "" || !strings.Contains(string(r.body), `"tags":[]`) {
		t.Errorf("n=0: Link %q body %s", r.h.Get("Link"), r.body)
	}
	// Errors.
	wantError(t, "n=-1", e.do(http.MethodGet, "/v2/group/app/tags/list?n=-1", nil), http.StatusBadRequest, oci.CodePaginationInvalid)
	wantError(t, "n=x", e.do(http.MethodGet, "/v2/group/app/tags/list?n=x", nil), http.StatusBadRequest, oci.CodePaginationInvalid)
	wantError(t, "unknown repo", e.do(http.MethodGet, "/v2/no/such/tags/list", nil), http.StatusNotFound, oci.CodeNameUnknown)
	wantError(t, "unknown repo n=0", e.do(http.MethodGet, "/v2/no/such/tags/list?n=0", nil), http.StatusNotFound, oci.CodeNameUnknown)

	// A repository with blobs but no tags lists an empty array.
	e.pushBlob("untagged", []byte("x"))
	r = e.do(http.MethodGet, "/v2/untagged/tags/list", nil)
	wantStatus(t, "untagged", r, http.StatusOK)
	if !strings.Contains(string(r.body), `"tags":[]`) {
		t.Errorf("untagged: %s", r.body)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCatalog(t *testing.T) {
	e := newEnv(t, registry.Config{})
	repos := []string{"a", "b/c", "b/c/d", "group/sub/project", "z", "a-b", "a.b", "a_b"}
	for _, r := range repos {
		e.pushBlob(r, []byte(r))
	}
	sorted := slices.Clone(repos)
	slices.Sort(sorted)
	p := e.pages(t, "/v2/_catalog", "repositories")
	if got := flatten(p); !slices.Equal(got, sorted) {
		t.Fatalf("catalog %v, want %v", got, sorted)
	}
	for _, n := range []int{1, 3, 8} {
		p := e.pages(t, "/v2/_catalog?n="+itoa(n), "repositories")
		if got := flatten(p); !slices.Equal(got, sorted) {
			t.Errorf("n=%d: %v", n, p)
		}
		if len(p[0]) != n {
			t.Errorf("n=%d: first page has %d", n, len(p[0]))
		}
	}
	r := e.do(http.MethodGet, "/v2/_catalog?n=2", nil)
	if l := r.h.Get("Link"); l != `</v2/_catalog?last=a-b&n=2>; rel="next"` {
		t.Errorf("Link %q", l)
	}
	r = e.do(http.MethodGet, "/v2/_catalog?n=0", nil)
	if r.code != 200 || r.h.Get("Link") != "" || !strings.Contains(string(r.body), `"repositories":[]`) {
		t.Errorf("n=0: %d Link %q %s", r.code, r.h.Get("Link"), r.body)
	}
	p = e.pages(t, "/v2/_catalog?last=b/c", "repositories")
	if got := flatten(p); !slices.Equal(got, sorted[slices.Index(sorted, "b/c")+1:]) {
		t.Errorf("last=b/c: %v", got)
	}
	wantError(t, "n=-5", e.do(http.MethodGet, "/v2/_catalog?n=-5", nil), http.StatusBadRequest, oci.CodePaginationInvalid)
	// Empty registry.
	empty := newEnv(t, registry.Config{})
	if r := empty.do(http.MethodGet, "/v2/_catalog", nil); r.code != 200 || !strings.Contains(string(r.body), `"repositories":[]`) {
		t.Errorf("empty catalog: %d %s", r.code, r.body)
	}
}

func TestReferrers(t *testing.T) {
	e := newEnv(t, registry.Config{})
	subject := e.image("app", oci.MediaTypeOCIManifest, nil)
	sd := digest.FromBytes(subject)
	wantStatus(t, "PUT subject", e.pushManifest("app", "v1", oci.MediaTypeOCIManifest, subject), http.StatusCreated)
	sdesc := oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: sd, Size: int64(len(subject))}
	e.pushBlob("app", []byte("{}"))

	type pushed struct {
		mt, artifactType string
		ann              map[string]string
		body             []byte
	}
	var want []pushed
	// 1: artifactType set.
	b := e.image("app", oci.MediaTypeOCIManifest, map[string]any{
		"artifactType": "application/vnd.example.sbom",
		"config":       desc(oci.MediaTypeOCIEmptyJSON, []byte("{}")),
		"subject":      sdesc,
		"annotations":  map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "k": "v"},
	})
	want = append(want, pushed{oci.MediaTypeOCIManifest, "application/vnd.example.sbom", map[string]string{"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "k": "v"}, b})
	// 2: no artifactType: the config media type stands in.
	b = e.image("app", oci.MediaTypeOCIManifest, map[string]any{
		"config":  desc("application/vnd.example.sig.config", []byte("{}")),
		"subject": sdesc,
	})
	want = append(want, pushed{oci.MediaTypeOCIManifest, "application/vnd.example.sig.config", nil, b})
	// 3: an index referrer with an artifactType.
	child := e.image("app", oci.MediaTypeOCIManifest, nil)
	wantStatus(t, "child", e.pushManifest("app", digest.FromBytes(child).String(), oci.MediaTypeOCIManifest, child), http.StatusCreated)
	b = marshalOdd(t, map[string]any{
		"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex, "artifactType": "application/vnd.example.sbom",
		"manifests": []oci.Descriptor{desc(oci.MediaTypeOCIManifest, child)},
		"subject":   sdesc, "annotations": map[string]string{"i": "j"},
	})
	want = append(want, pushed{oci.MediaTypeOCIIndex, "application/vnd.example.sbom", map[string]string{"i": "j"}, b})
	// 4: an index referrer without artifactType.
	b = marshalOdd(t, map[string]any{
		"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex,
		"manifests": []oci.Descriptor{}, "subject": sdesc,
	})
	want = append(want, pushed{oci.MediaTypeOCIIndex, "", nil, b})
	for i, p := range want {
		r := e.pushManifest("app", digest.FromBytes(p.body).String(), p.mt, p.body)
		wantStatus(t, "PUT referrer", r, http.StatusCreated)
		if r.h.Get("OCI-Subject") != sd.String() {
			t.Errorf("referrer %d: OCI-Subject %q", i, r.h.Get("OCI-Subject"))
		}
	}
	// A referrer of the same subject in another repository is not listed.
	e.pushBlob("other", []byte("{}"))
	ob := e.image("other", oci.MediaTypeOCIManifest, map[string]any{"artifactType": "application/vnd.example.sbom", "subject": sdesc})
	wantStatus(t, "PUT other referrer", e.pushManifest("other", "x", oci.MediaTypeOCIManifest, ob), http.StatusCreated)

	get := func(path string) (resp, []map[string]any) {
		t.Helper()
		r := e.do(http.MethodGet, path, nil)
		wantStatus(t, "GET "+path, r, http.StatusOK)
		if r.h.Get("Content-Type") != oci.MediaTypeOCIIndex {
			t.Errorf("GET %s: Content-Type %q", path, r.h.Get("Content-Type"))
		}
		var idx struct {
			SchemaVersion int              `json:"schemaVersion"`
			MediaType     string           `json:"mediaType"`
			Manifests     []map[string]any `json:"manifests"`
		}
		if err := json.Unmarshal(r.body, &idx); err != nil {
			t.Fatal(err)
		}
		if idx.SchemaVersion != 2 || idx.MediaType != oci.MediaTypeOCIIndex || idx.Manifests == nil {
			t.Fatalf("GET %s: not an image index with a manifests array: %s", path, r.body)
		}
		return r, idx.Manifests
	}
	r, list := get("/v2/app/referrers/" + sd.String())
	if r.h.Get("OCI-Filters-Applied") != "" {
		t.Errorf("OCI-Filters-Applied without a filter: %q", r.h.Get("OCI-Filters-Applied"))
	}
	if len(list) != len(want) {
		t.Fatalf("%d referrers, want %d: %s", len(list), len(want), r.body)
	}
	byDigest := map[string]map[string]any{}
	for _, d := range list {
		byDigest[d["digest"].(string)] = d
	}
	for i, p := range want {
		d := byDigest[digest.FromBytes(p.body).String()]
		if d == nil {
			t.Errorf("referrer %d missing", i)
			continue
		}
		if d["mediaType"] != p.mt || d["size"] != float64(len(p.body)) {
			t.Errorf("referrer %d: mediaType %v size %v", i, d["mediaType"], d["size"])
		}
		at, has := d["artifactType"]
		if p.artifactType == "" && has {
			t.Errorf("referrer %d: artifactType %v should be omitted", i, at)
		} else if p.artifactType != "" && at != p.artifactType {
			t.Errorf("referrer %d: artifactType %v, want %s", i, at, p.artifactType)
		}
		ann, _ := d["annotations"].(map[string]any)
		if len(ann) != len(p.ann) {
			t.Errorf("referrer %d: annotations %v, want %v", i, ann, p.ann)
		}
		for k, v := range p.ann {
			if ann[k] != v {
				t.Errorf("referrer %d: annotation %s=%v, want %s", i, k, ann[k], v)
			}
		}
	}
	// Filter.
	r, list = get("/v2/app/referrers/" + sd.String() + "?artifactType=application/vnd.example.sbom")
	if r.h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("OCI-Filters-Applied %q", r.h.Get("OCI-Filters-Applied"))
	}
	if len(list) != 2 {
		t.Errorf("filtered: %d referrers, want 2: %s", len(list), r.body)
	}
	for _, d := range list {
		if d["artifactType"] != "application/vnd.example.sbom" {
			t.Errorf("filter let through %v", d)
		}
	}
	_, list = get("/v2/app/referrers/" + sd.String() + "?artifactType=application/none")
	if len(list) != 0 {
		t.Errorf("filter on absent type: %v", list)
	}
	// Unknown subject, unknown repository: 200 and an empty index.
	if _, list := get("/v2/app/referrers/" + digest.FromString("unknown").String()); len(list) != 0 {
		t.Errorf("unknown subject: %v", list)
	}
	if _, list := get("/v2/no/such/repo/referrers/" + sd.String()); len(list) != 0 {
		t.Errorf("unknown repo: %v", list)
	}
	// Deleting a referrer removes it from the list.
	wantStatus(t, "DELETE referrer", e.do(http.MethodDelete, "/v2/app/manifests/"+digest.FromBytes(want[0].body).String(), nil), http.StatusAccepted)
	if _, list := get("/v2/app/referrers/" + sd.String()); len(list) != len(want)-1 {
		t.Errorf("after delete: %d referrers", len(list))
	}
	// Bad digests.
	for _, bad := range []string{"sha256:abc", "latest", "md5:" + strings.Repeat("a", 32)} {
		wantError(t, "referrers "+bad, e.do(http.MethodGet, "/v2/app/referrers/"+bad, nil), http.StatusBadRequest, oci.CodeDigestInvalid)
	}
}
