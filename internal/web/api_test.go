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
		References: []meta.Reference{{Digest: cfg, Kind: meta.RefBlob}}}
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
		"/api/v1/search":                                                    400,
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
