package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/web"
)

func TestAPI(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg := digest.FromString("cfg")
	if err := store.LinkBlob(ctx, "group/sub/app", cfg, 3); err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cfg.String() + `","size":3},"layers":[]}`)
	img := &meta.Manifest{Repository: "group/sub/app", Digest: digest.FromBytes(raw), MediaType: "application/vnd.oci.image.manifest.v1+json", Payload: raw,
		References: []meta.Reference{{Digest: cfg, Kind: meta.RefBlob, Size: 3}}}
	if err := store.PutManifest(ctx, img, []string{"v1", "latest"}); err != nil {
		t.Fatal(err)
	}
	idx := int64(42)
	_, err = store.RecordSignatures(ctx, []meta.Signature{{
		Repository: "group/sub/app", Subject: img.Digest, Manifest: digest.FromString("sigm"), Layer: digest.FromString("l"), Key: "k1",
		Kind: "cosign", Signer: "SHA256:abc", LogIndex: &idx, Status: meta.StatusVerified,
		Annotations: map[string]string{"com.gitlab.ci.commit.sha": "deadbeef", "tag": "v1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	web.NewAPI(store, nil).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(path string, want int) map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s: body is not JSON: %v", path, err)
		}
		if resp.StatusCode != want {
			t.Fatalf("%s: status %d, want %d (%v)", path, resp.StatusCode, want, body)
		}
		return body
	}

	body := get("/api/v1/images/group/sub/app/signatures?digest="+img.Digest.String(), 200)
	sigs := body["signatures"].([]any)
	if len(sigs) != 1 || sigs[0].(map[string]any)["status"] != "verified" || sigs[0].(map[string]any)["logIndex"].(float64) != 42 {
		t.Fatalf("signatures = %v", body)
	}
	if tags := body["tags"].([]any); len(tags) != 2 || tags[0] != "latest" {
		t.Fatalf("tags = %v", tags)
	}
	body = get("/api/v1/images/group/sub/app/signatures?tag=v1", 200)
	if body["digest"] != img.Digest.String() {
		t.Fatalf("by tag: %v", body)
	}
	body = get("/api/v1/search?annotation=com.gitlab.ci.commit.sha=deadbeef", 200)
	res := body["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["repository"] != "group/sub/app" || res[0].(map[string]any)["subject"] != img.Digest.String() {
		t.Fatalf("search = %v", body)
	}
	if res := get("/api/v1/search?annotation=com.gitlab.ci.commit.sha=nope", 200)["results"].([]any); len(res) != 0 {
		t.Fatalf("search for unknown sha = %v", res)
	}
	for path, want := range map[string]int{
		"/api/v1/search?nope=1":                                             400,
		"/api/v1/search?annotation=novalue":                                 400,
		"/api/v1/search?annotation=a=b&limit=0":                             400,
		"/api/v1/images/group/app/signatures":                               400,
		"/api/v1/images/group/app/signatures?digest=sha256:1":               400,
		"/api/v1/images/Bad..Name/signatures?digest=" + img.Digest.String(): 400,
		"/api/v1/images/group/sub/app/signatures?tag=nope":                  404,
		"/api/v1/images/group/sub/app":                                      404,
	} {
		if e := get(path, want)["error"]; !strings.Contains(e.(string), " ") {
			t.Errorf("%s: error %q is not a sentence", path, e)
		}
	}
}

// pullOnly is an Authorizer for the unit test: Basic user "alice" may pull
// group/sub/app, anonymous callers nothing, any other credentials fail.
type pullOnly struct{}

func (pullOnly) Authorize(r *http.Request) (web.PullCheck, error) {
	user, _, ok := r.BasicAuth()
	switch {
	case !ok && r.Header.Get("Authorization") == "":
		return func(context.Context, string) (bool, error) { return false, nil }, nil
	case user == "alice":
		return func(_ context.Context, repo string) (bool, error) { return repo == "group/sub/app", nil }, nil
	}
	return nil, web.ErrUnauthenticated
}

func (pullOnly) Visible(r *http.Request) (auth.Visible, error) {
	user, _, ok := r.BasicAuth()
	switch {
	case !ok && r.Header.Get("Authorization") == "":
		return auth.Visible{}, nil
	case user == "alice":
		return auth.Visible{Repositories: []string{"group/sub/app"}}, nil
	}
	return auth.Visible{}, web.ErrUnauthenticated
}

func TestAPICertificateSearchAndAccess(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, repo := range []string{"group/sub/app", "other/app"} {
		_, err = store.RecordSignatures(ctx, []meta.Signature{{
			Repository: repo, Subject: digest.FromString(repo), Manifest: digest.FromString("m" + repo), Layer: digest.FromString("l"),
			Key: "k" + repo, Kind: "cosign", Signer: "https://ci.example/" + repo + "//.gitlab-ci.yml@refs/heads/main", CertIssuer: "https://ci.example",
			Status: meta.StatusVerified, Annotations: map[string]string{"n": string(rune('0' + i))},
			CertExtensions: map[string]string{"1.3.6.1.4.1.57264.1.13": "cafe", "1.3.6.1.4.1.57264.1.11": "self-hosted"},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, authz := range []bool{false, true} {
		mux := http.NewServeMux()
		var opts []web.Option
		if authz {
			opts = append(opts, web.WithAuthorizer(pullOnly{}))
		}
		web.NewAPI(store, nil, opts...).Register(mux)
		srv := httptest.NewServer(mux)
		get := func(path, user string, want int) []any {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			if user != "" {
				req.SetBasicAuth(user, "pw")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != want {
				t.Fatalf("authz=%v %s as %q: %d, want %d (%v)", authz, path, user, resp.StatusCode, want, body)
			}
			r, _ := body["results"].([]any)
			return r
		}
		all, alice := 2, 1
		if !authz {
			alice = 2
		}
		for _, q := range []string{"certificate=sourceRepositoryDigest=cafe", "certificate=13=cafe", "certificate=1.3.6.1.4.1.57264.1.13=cafe",
			"certificate=runnerEnvironment=self-hosted"} {
			if !authz {
				if n := len(get("/api/v1/search?"+q, "", 200)); n != all {
					t.Errorf("%s: %d results", q, n)
				}
			}
			if n := len(get("/api/v1/search?"+q, "alice", 200)); n != alice {
				t.Errorf("authz=%v %s as alice: %d results, want %d", authz, q, n, alice)
			}
		}
		res := get("/api/v1/search?identity=https://ci.example/other/app//.gitlab-ci.yml@refs/heads/main", "", 200)
		if authz && len(res) != 0 || !authz && len(res) != 1 {
			t.Errorf("identity search: %v", res)
		}
		if !authz {
			// Search results are brief: no certificate extensions (the
			// image's signatures have them), what matched and on what.
			r := res[0].(map[string]any)
			m, _ := r["matches"].([]any)
			if r["certificateExtensions"] != nil || r["certificateIssuer"] != "https://ci.example" || len(m) != 1 ||
				m[0].(map[string]any)["basis"] != "certificate" || m[0].(map[string]any)["evidence"] != true {
				t.Errorf("result: %v", r)
			}
		}
		get("/api/v1/search?certificate=nope=1", "", 400)
		get("/api/v1/search?annotation=a=b&identity=x&identity=y", "", 400)
		if authz {
			get("/api/v1/search?identity=x", "mallory", 401)
			get("/api/v1/images/other/app/signatures?digest="+digest.FromString("other/app").String(), "alice", 404)
			get("/api/v1/images/group/sub/app/signatures?digest="+digest.FromString("group/sub/app").String(), "alice", 200)
			get("/api/v1/images/group/sub/app/signatures?digest="+digest.FromString("group/sub/app").String(), "", 404)
		}
		srv.Close()
	}
}
