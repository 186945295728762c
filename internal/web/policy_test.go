package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/web"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// TestPolicyAPI: the trust policy and rebuild endpoints (access control
// off: the registry is open, so is the API; with it on, test/abuse checks
// who may do what) and an image's index state.
func TestPolicyAPI(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.CreateProject(ctx, auth.Project{Path: "grp/app", Visibility: auth.VisibilityPrivate}); err != nil {
		t.Fatal(err)
	}
	ix := index.New(store, nil, nil, index.Config{Issuer: "https://hallmark.example", Roots: map[string]*root.Material{index.RootHallmark: {}}, Workers: -1})
	mux := http.NewServeMux()
	web.NewAPI(store, nil, web.WithPolicies(ix)).Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	call := func(method, path, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s (%v), want %d", method, path, resp.StatusCode, raw, err, want)
		}
		return out
	}
	got := call(http.MethodGet, "/api/v1/projects/grp/app/policy", "", 200)
	eff := got["effective"].(map[string]any)
	if got["version"].(float64) != 0 || eff["roots"].([]any)[0] != "hallmark" ||
		eff["identities"].([]any)[0].(map[string]any)["identityRegexp"] != `^https://hallmark\.example/grp/app//\.gitlab-ci\.yml@refs/.+$` {
		t.Fatalf("default policy: %v", got)
	}
	call(http.MethodGet, "/api/v1/projects/nope/policy", "", 404)
	call(http.MethodGet, "/api/v1/projects/grp/app", "", 404)
	call(http.MethodGet, "/api/v1/projects/GRP/app/policy", "", 400)
	call(http.MethodPut, "/api/v1/projects/grp/app/policy", `{"identities":[{"identityRegexp":"("}]}`, 400)
	call(http.MethodPut, "/api/v1/projects/grp/app/policy", `{"roots":["public-good"]}`, 400)
	call(http.MethodPut, "/api/v1/projects/nope/policy", `{}`, 404)
	call(http.MethodPut, "/api/v1/projects/grp/app/policy", `{"roots":["hallmark"]`+strings.Repeat(" ", index.MaxPolicySize)+`}`, 413)
	got = call(http.MethodPut, "/api/v1/projects/grp/app/policy", `{"annotations":{"tag":"v1"},"identities":[{"identity":"https://x.example/a","issuer":"https://x.example"}]}`, 200)
	if got["version"].(float64) != 1 || got["updatedBy"] != "anonymous" || got["policy"].(map[string]any)["annotations"].(map[string]any)["tag"] != "v1" {
		t.Fatalf("PUT: %v", got)
	}
	if again := call(http.MethodGet, "/api/v1/projects/grp/app/policy", "", 200); again["version"].(float64) != 1 {
		t.Fatalf("GET after PUT: %v", again)
	}

	// A signature manifest pushed and not indexed yet: the image is pending.
	subject := digest.FromString("image")
	raw := []byte(`{"schemaVersion":2,"layers":[]}`)
	sm := &meta.Manifest{Repository: "grp/app", Digest: digest.FromBytes(raw), MediaType: "application/vnd.oci.image.manifest.v1+json", Payload: raw}
	if err := store.PutManifest(ctx, sm, []string{"sha256-" + subject.Encoded() + ".sig"}); err != nil {
		t.Fatal(err)
	}
	img := call(http.MethodGet, "/api/v1/images/grp/app/signatures?digest="+subject.String(), "", 200)
	if img["indexState"] != "pending" || img["pendingManifests"].(float64) != 1 {
		t.Fatalf("image with a queued signature manifest: %v", img)
	}
	if err := ix.Settle(ctx, "grp/app", subject); err != nil {
		t.Fatal(err)
	}
	img = call(http.MethodGet, "/api/v1/images/grp/app/signatures?digest="+subject.String(), "", 200)
	if img["indexState"] != "indexed" || len(img["signatures"].([]any)) != 1 {
		t.Fatalf("after indexing: %v", img)
	}

	call(http.MethodPost, "/api/v1/index/rebuild", `{"project":"x","y":1}`, 400)
	call(http.MethodPost, "/api/v1/index/rebuild", `{"project":"Bad Path"}`, 400)
	got = call(http.MethodPost, "/api/v1/index/rebuild", `{"project":"grp/app"}`, 200)
	if got["queued"].(float64) != 1 || got["generation"].(float64) < 1 {
		t.Fatalf("rebuild: %v", got)
	}
	if got = call(http.MethodPost, "/api/v1/index/rebuild", ``, 200); got["queued"].(float64) != 1 {
		t.Fatalf("rebuild of everything: %v", got)
	}
}
