package registry_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// indexOf builds an index (OCI or Docker list) over the given child
// manifests, which it pushes by digest first.
func (e *env) indexOf(repo, mt, childMT string, children ...[]byte) []byte {
	e.t.Helper()
	var ds []oci.Descriptor
	for i, c := range children {
		d := digest.FromBytes(c)
		wantStatus(e.t, "push child", e.pushManifest(repo, d.String(), childMT, c), http.StatusCreated)
		arch := []string{"amd64", "arm64", "s390x"}[i%3]
		ds = append(ds, oci.Descriptor{MediaType: childMT, Digest: d, Size: int64(len(c)), Platform: &oci.Platform{OS: "linux", Architecture: arch}})
	}
	return marshalOdd(e.t, map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": ds})
}

func TestManifestPushPull(t *testing.T) {
	e := newEnv(t, registry.Config{})
	tests := []struct {
		name string
		mt   string
		body func(repo string) []byte
	}{
		{"oci-image", oci.MediaTypeOCIManifest, func(repo string) []byte { return e.image(repo, oci.MediaTypeOCIManifest, nil) }},
		{"docker-schema2", oci.MediaTypeDockerManifest, func(repo string) []byte { return e.image(repo, oci.MediaTypeDockerManifest, nil) }},
		{"oci-index", oci.MediaTypeOCIIndex, func(repo string) []byte {
			return e.indexOf(repo, oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest,
				e.image(repo, oci.MediaTypeOCIManifest, nil), e.image(repo, oci.MediaTypeOCIManifest, nil))
		}},
		{"docker-list", oci.MediaTypeDockerList, func(repo string) []byte {
			return e.indexOf(repo, oci.MediaTypeDockerList, oci.MediaTypeDockerManifest,
				e.image(repo, oci.MediaTypeDockerManifest, nil), e.image(repo, oci.MediaTypeDockerManifest, nil), e.image(repo, oci.MediaTypeDockerManifest, nil))
		}},
		{"oci-artifact", oci.MediaTypeOCIManifest, func(repo string) []byte {
			e.pushBlob(repo, []byte("{}"))
			return e.image(repo, oci.MediaTypeOCIManifest, map[string]any{
				"artifactType": "application/vnd.example.sbom",
				"config":       desc(oci.MediaTypeOCIEmptyJSON, []byte("{}")),
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			repo := "group/sub/" + tc.name
			body := tc.body(repo)
			d := digest.FromBytes(body)
			r := e.pushManifest(repo, "v1", tc.mt, body)
			wantStatus(t, "PUT by tag", r, http.StatusCreated)
			if r.h.Get("Location") != "/v2/"+repo+"/manifests/"+d.String() {
				t.Errorf("Location %q", r.h.Get("Location"))
			}
			if r.h.Get("Docker-Content-Digest") != d.String() {
				t.Errorf("Docker-Content-Digest %q, want %s", r.h.Get("Docker-Content-Digest"), d)
			}
			if r.h.Get("OCI-Subject") != "" {
				t.Errorf("OCI-Subject %q on a manifest without subject", r.h.Get("OCI-Subject"))
			}
			for _, ref := range []string{"v1", d.String()} {
				r := e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", tc.mt)
				wantStatus(t, "GET "+ref, r, http.StatusOK)
				if !bytes.Equal(r.body, body) {
					t.Errorf("GET %s: bytes differ from what was pushed:\n%s\nvs\n%s", ref, r.body, body)
				}
				if r.h.Get("Content-Type") != tc.mt {
					t.Errorf("GET %s: Content-Type %q, want %q", ref, r.h.Get("Content-Type"), tc.mt)
				}
				if r.h.Get("Docker-Content-Digest") != d.String() {
					t.Errorf("GET %s: Docker-Content-Digest %q", ref, r.h.Get("Docker-Content-Digest"))
				}
				h := e.do(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", tc.mt)
				wantStatus(t, "HEAD "+ref, h, http.StatusOK)
				if len(h.body) != 0 {
					t.Errorf("HEAD %s returned a body", ref)
				}
				if h.h.Get("Content-Length") != strconv.Itoa(len(body)) || h.h.Get("Docker-Content-Digest") != d.String() || h.h.Get("Content-Type") != tc.mt {
					t.Errorf("HEAD %s: Content-Length %q digest %q type %q", ref, h.h.Get("Content-Length"), h.h.Get("Docker-Content-Digest"), h.h.Get("Content-Type"))
				}
			}
			// Pushing the same bytes by digest is idempotent.
			wantStatus(t, "PUT by digest", e.pushManifest(repo, d.String(), tc.mt, body), http.StatusCreated)
			// The manifest is also served through the blob endpoint.
			if r := e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+d.String(), nil); r.code != 200 || !bytes.Equal(r.body, body) {
				t.Errorf("manifest as blob: %d", r.code)
			}
			// Conditional GET.
			r = e.do(http.MethodGet, "/v2/"+repo+"/manifests/v1", nil, "If-None-Match", `"`+d.String()+`"`)
			wantStatus(t, "If-None-Match", r, http.StatusNotModified)
		})
	}
}

func TestManifestContentTypeAsPushed(t *testing.T) {
	e := newEnv(t, registry.Config{})
	// No mediaType in the body: the Content-Type of the PUT decides and is
	// returned on GET.
	full := e.image("app", oci.MediaTypeDockerManifest, nil)
	var m map[string]any
	json.Unmarshal(full, &m)
	delete(m, "mediaType")
	body := marshalOdd(t, m)
	wantStatus(t, "PUT", e.pushManifest("app", "nomt", oci.MediaTypeDockerManifest, body), http.StatusCreated)
	r := e.do(http.MethodGet, "/v2/app/manifests/nomt", nil)
	if r.h.Get("Content-Type") != oci.MediaTypeDockerManifest || !bytes.Equal(r.body, body) {
		t.Errorf("Content-Type %q", r.h.Get("Content-Type"))
	}
	// Content-Type with parameters is accepted.
	body2 := e.image("app", oci.MediaTypeOCIManifest, nil)
	wantStatus(t, "PUT with charset", e.pushManifest("app", "cs", oci.MediaTypeOCIManifest+"; charset=utf-8", body2), http.StatusCreated)
	if r := e.do(http.MethodGet, "/v2/app/manifests/cs", nil); r.h.Get("Content-Type") != oci.MediaTypeOCIManifest {
		t.Errorf("Content-Type %q", r.h.Get("Content-Type"))
	}
}

func TestManifestSubjectMissingAccepted(t *testing.T) {
	e := newEnv(t, registry.Config{})
	subject := oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: digest.FromString("not pushed yet"), Size: 123}
	e.pushBlob("app", []byte("{}"))
	body := e.image("app", oci.MediaTypeOCIManifest, map[string]any{
		"artifactType": "application/vnd.example.sig",
		"config":       desc(oci.MediaTypeOCIEmptyJSON, []byte("{}")),
		"subject":      subject,
	})
	r := e.pushManifest("app", digest.FromBytes(body).String(), oci.MediaTypeOCIManifest, body)
	wantStatus(t, "PUT referrer before its subject", r, http.StatusCreated)
	if r.h.Get("OCI-Subject") != subject.Digest.String() {
		t.Errorf("OCI-Subject %q, want %s", r.h.Get("OCI-Subject"), subject.Digest)
	}
}

func TestManifestErrors(t *testing.T) {
	e := newEnv(t, registry.Config{})
	good := e.image("app", oci.MediaTypeOCIManifest, nil)
	var gm map[string]any
	json.Unmarshal(good, &gm)
	mutate := func(f func(m map[string]any)) []byte {
		m := map[string]any{}
		json.Unmarshal(good, &m)
		f(m)
		return marshalOdd(t, m)
	}
	missing := desc(oci.MediaTypeOCILayerGzip, []byte("never pushed"))
	e.pushBlob("elsewhere", []byte("only in another repo"))
	tests := []struct {
		name   string
		ref    string
		mt     string
		body   []byte
		status int
		code   oci.ErrorCode
	}{
		{"missing layer", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			m["layers"] = []any{m["layers"].([]any)[0], missing}
		}), 400, oci.CodeManifestBlobUnknown},
		{"missing config", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			m["config"] = desc(oci.MediaTypeOCIConfig, []byte("no config"))
		}), 400, oci.CodeManifestBlobUnknown},
		{"blob only in another repo", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			m["layers"] = []any{desc(oci.MediaTypeOCILayerGzip, []byte("only in another repo"))}
		}), 400, oci.CodeManifestBlobUnknown},
		{"index child missing", "t", oci.MediaTypeOCIIndex, marshalOdd(t, map[string]any{
			"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex,
			"manifests": []oci.Descriptor{desc(oci.MediaTypeOCIManifest, []byte("{}"))},
		}), 400, oci.CodeManifestBlobUnknown},
		{"config size wrong", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			m["config"].(map[string]any)["size"] = 999999
		}), 400, oci.CodeManifestInvalid},
		{"layer size wrong", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			l := m["layers"].([]any)[0].(map[string]any)
			l["size"] = l["size"].(float64) - 1
		}), 400, oci.CodeManifestInvalid},
		{"invalid JSON", "t", oci.MediaTypeOCIManifest, []byte(`{"schemaVersion":2,`), 400, oci.CodeManifestInvalid},
		{"not an object", "t", oci.MediaTypeOCIManifest, []byte(`[1,2]`), 400, oci.CodeManifestInvalid},
		{"empty body", "t", oci.MediaTypeOCIManifest, []byte{}, 400, oci.CodeManifestInvalid},
		{"schemaVersion 1", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) { m["schemaVersion"] = 1 }), 400, oci.CodeManifestInvalid},
		{"no config", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) { delete(m, "config") }), 400, oci.CodeManifestInvalid},
		{"bad layer digest", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			m["layers"] = []any{map[string]any{"mediaType": oci.MediaTypeOCILayer, "digest": "sha256:123", "size": 1}}
		}), 400, oci.CodeManifestInvalid},
		{"negative size", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			l := m["layers"].([]any)[0].(map[string]any)
			l["size"] = -1
		}), 400, oci.CodeManifestInvalid},
		{"Content-Type differs from mediaType", "t", oci.MediaTypeDockerManifest, good, 400, oci.CodeManifestInvalid},
		{"unsupported Content-Type", "t", "text/plain", good, 400, oci.CodeManifestInvalid},
		{"index with layers", "t", oci.MediaTypeOCIIndex, mutate(func(m map[string]any) { m["mediaType"] = oci.MediaTypeOCIIndex }), 400, oci.CodeManifestInvalid},
		{"bad subject", "t", oci.MediaTypeOCIManifest, mutate(func(m map[string]any) {
			m["subject"] = map[string]any{"mediaType": oci.MediaTypeOCIManifest, "digest": "nope", "size": 2}
		}), 400, oci.CodeManifestInvalid},
		{"digest mismatch", digest.FromString("other").String(), oci.MediaTypeOCIManifest, good, 400, oci.CodeDigestInvalid},
		{"sha512 digest mismatch", digest.SHA512.FromString("other").String(), oci.MediaTypeOCIManifest, good, 400, oci.CodeDigestInvalid},
		{"malformed digest", "sha256:xyz", oci.MediaTypeOCIManifest, good, 400, oci.CodeDigestInvalid},
		{"invalid tag", "-bad", oci.MediaTypeOCIManifest, good, 400, oci.CodeManifestInvalid},
		{"tag too long", strings.Repeat("t", 129), oci.MediaTypeOCIManifest, good, 400, oci.CodeManifestInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.pushManifest("app", tc.ref, tc.mt, tc.body)
			wantError(t, "PUT", r, tc.status, tc.code)
			// Nothing was stored.
			if g := e.do(http.MethodGet, "/v2/app/manifests/"+digest.FromBytes(tc.body).String(), nil); g.code != http.StatusNotFound {
				t.Errorf("rejected manifest is served: %d", g.code)
			}
		})
	}
	if r := e.do(http.MethodGet, "/v2/app/manifests/t", nil); r.code != http.StatusNotFound {
		t.Errorf("tag t exists after only failed pushes: %d", r.code)
	}
	// The same manifest with the blobs present is fine.
	wantStatus(t, "good", e.pushManifest("app", "t", oci.MediaTypeOCIManifest, good), http.StatusCreated)
}

func TestManifestSizeLimit(t *testing.T) {
	e := newEnv(t, registry.Config{})
	// A manifest of exactly 4 MiB (a large annotation) is accepted and
	// returned byte for byte.
	mk := func(size int) []byte {
		t.Helper()
		base := e.image("big", oci.MediaTypeOCIManifest, map[string]any{"annotations": map[string]string{"pad": ""}})
		pad := size - len(base)
		if pad < 0 {
			t.Fatal("base too large")
		}
		body := bytes.Replace(base, []byte(`"pad": ""`), []byte(`"pad": "`+strings.Repeat("x", pad)+`"`), 1)
		if len(body) != size {
			t.Fatalf("built %d bytes, want %d", len(body), size)
		}
		return body
	}
	body := mk(4 << 20)
	r := e.pushManifest("big", "four", oci.MediaTypeOCIManifest, body)
	wantStatus(t, "PUT 4 MiB", r, http.StatusCreated)
	if g := e.do(http.MethodGet, "/v2/big/manifests/four", nil); !bytes.Equal(g.body, body) {
		t.Fatal("4 MiB manifest differs")
	}
	// Above the limit: 413 with Content-Length, and when streamed without.
	over := mk(registry.DefaultMaxManifestSize + 1)
	wantError(t, "PUT oversized", e.pushManifest("big", "over", oci.MediaTypeOCIManifest, over), http.StatusRequestEntityTooLarge, oci.CodeSizeInvalid)
	r = e.doReader(http.MethodPut, "/v2/big/manifests/over", bytes.NewReader(over), -1, "Content-Type", oci.MediaTypeOCIManifest)
	wantError(t, "PUT oversized, chunked", r, http.StatusRequestEntityTooLarge, oci.CodeSizeInvalid)
	// A configured lower limit applies.
	small := newEnv(t, registry.Config{MaxManifestSize: 1000})
	b := small.image("app", oci.MediaTypeOCIManifest, map[string]any{"annotations": map[string]string{"pad": strings.Repeat("y", 1000)}})
	wantError(t, "PUT above configured limit", small.pushManifest("app", "x", oci.MediaTypeOCIManifest, b), http.StatusRequestEntityTooLarge, oci.CodeSizeInvalid)
}

func TestManifestNotFound(t *testing.T) {
	e := newEnv(t, registry.Config{})
	wantStatus(t, "PUT", e.pushManifest("app", "v1", oci.MediaTypeOCIManifest, e.image("app", oci.MediaTypeOCIManifest, nil)), http.StatusCreated)
	for _, ref := range []string{"nope", digest.FromString("nope").String(), digest.SHA512.FromString("nope").String()} {
		wantError(t, "GET "+ref, e.do(http.MethodGet, "/v2/app/manifests/"+ref, nil), http.StatusNotFound, oci.CodeManifestUnknown)
		r := e.do(http.MethodHead, "/v2/app/manifests/"+ref, nil)
		if r.code != http.StatusNotFound || len(r.body) != 0 {
			t.Errorf("HEAD %s: %d with %d body bytes", ref, r.code, len(r.body))
		}
		wantError(t, "DELETE "+ref, e.do(http.MethodDelete, "/v2/app/manifests/"+ref, nil), http.StatusNotFound, oci.CodeManifestUnknown)
	}
	// Unknown repository.
	wantError(t, "GET in unknown repo", e.do(http.MethodGet, "/v2/no/such/repo/manifests/v1", nil), http.StatusNotFound, oci.CodeNameUnknown)
	wantError(t, "DELETE in unknown repo", e.do(http.MethodDelete, "/v2/no/such/repo/manifests/v1", nil), http.StatusNotFound, oci.CodeNameUnknown)
	wantError(t, "GET blob in unknown repo", e.do(http.MethodGet, "/v2/no/such/repo/blobs/"+digest.FromString("x").String(), nil), http.StatusNotFound, oci.CodeNameUnknown)
	// Invalid references.
	wantError(t, "GET invalid tag", e.do(http.MethodGet, "/v2/app/manifests/-x", nil), http.StatusBadRequest, oci.CodeManifestInvalid)
	wantError(t, "GET invalid digest", e.do(http.MethodGet, "/v2/app/manifests/sha256:abc", nil), http.StatusBadRequest, oci.CodeDigestInvalid)
}

func TestManifestTagQuery(t *testing.T) {
	e := newEnv(t, registry.Config{})
	body := e.image("app", oci.MediaTypeOCIManifest, nil)
	d := digest.FromBytes(body)
	tags := []string{"a", "b", "v1.2.3", "latest", "x_y", "z-9", "A", "B", "C", "D", "E"} // more than 10
	u := "/v2/app/manifests/" + d.String()
	for i, tg := range tags {
		if i == 0 {
			u += "?tag=" + tg
		} else {
			u += "&tag=" + tg
		}
	}
	r := e.do(http.MethodPut, u, body, "Content-Type", oci.MediaTypeOCIManifest)
	wantStatus(t, "PUT ?tag=", r, http.StatusCreated)
	got := r.h.Values("OCI-Tag")
	if len(got) != len(tags) {
		t.Fatalf("OCI-Tag %v, want %v", got, tags)
	}
	for i := range tags {
		if got[i] != tags[i] {
			t.Errorf("OCI-Tag[%d] = %q, want %q", i, got[i], tags[i])
		}
	}
	for _, tg := range tags {
		if g := e.do(http.MethodGet, "/v2/app/manifests/"+tg, nil); g.code != 200 || !bytes.Equal(g.body, body) {
			t.Errorf("GET %s: %d", tg, g.code)
		}
	}
	// One invalid tag rejects the whole push.
	body2 := e.image("app", oci.MediaTypeOCIManifest, nil)
	d2 := digest.FromBytes(body2)
	r = e.do(http.MethodPut, "/v2/app/manifests/"+d2.String()+"?tag=ok2&tag=.bad", body2, "Content-Type", oci.MediaTypeOCIManifest)
	wantError(t, "PUT with invalid ?tag", r, http.StatusBadRequest, oci.CodeManifestInvalid)
	for _, ref := range []string{"ok2", d2.String()} {
		if g := e.do(http.MethodGet, "/v2/app/manifests/"+ref, nil); g.code != 404 {
			t.Errorf("GET %s after rejected push: %d", ref, g.code)
		}
	}
}

func TestTagMoveAndDelete(t *testing.T) {
	e := newEnv(t, registry.Config{})
	m1 := e.image("app", oci.MediaTypeOCIManifest, nil)
	m2 := e.image("app", oci.MediaTypeOCIManifest, nil)
	d1, d2 := digest.FromBytes(m1), digest.FromBytes(m2)
	wantStatus(t, "PUT m1 latest", e.pushManifest("app", "latest", oci.MediaTypeOCIManifest, m1), http.StatusCreated)
	wantStatus(t, "PUT m1 stable", e.pushManifest("app", "stable", oci.MediaTypeOCIManifest, m1), http.StatusCreated)
	wantStatus(t, "PUT m1 v1", e.pushManifest("app", "v1", oci.MediaTypeOCIManifest, m1), http.StatusCreated)
	// Move latest to m2.
	wantStatus(t, "PUT m2 latest", e.pushManifest("app", "latest", oci.MediaTypeOCIManifest, m2), http.StatusCreated)
	if r := e.do(http.MethodGet, "/v2/app/manifests/latest", nil); r.h.Get("Docker-Content-Digest") != d2.String() || !bytes.Equal(r.body, m2) {
		t.Fatalf("latest points at %s after the move, want %s", r.h.Get("Docker-Content-Digest"), d2)
	}
	if r := e.do(http.MethodGet, "/v2/app/manifests/"+d1.String(), nil); r.code != 200 {
		t.Fatalf("m1 gone after its tag moved: %d", r.code)
	}
	// Delete a tag: the manifest and its other tags stay.
	wantStatus(t, "DELETE tag v1", e.do(http.MethodDelete, "/v2/app/manifests/v1", nil), http.StatusAccepted)
	wantError(t, "GET deleted tag", e.do(http.MethodGet, "/v2/app/manifests/v1", nil), http.StatusNotFound, oci.CodeManifestUnknown)
	wantStatus(t, "GET m1 by digest", e.do(http.MethodGet, "/v2/app/manifests/"+d1.String(), nil), http.StatusOK)
	wantStatus(t, "GET stable", e.do(http.MethodGet, "/v2/app/manifests/stable", nil), http.StatusOK)
	wantError(t, "DELETE tag again", e.do(http.MethodDelete, "/v2/app/manifests/v1", nil), http.StatusNotFound, oci.CodeManifestUnknown)
	// Delete m1 by digest: its remaining tag goes with it; m2 untouched.
	wantStatus(t, "DELETE m1", e.do(http.MethodDelete, "/v2/app/manifests/"+d1.String(), nil), http.StatusAccepted)
	wantError(t, "GET stable after delete", e.do(http.MethodGet, "/v2/app/manifests/stable", nil), http.StatusNotFound, oci.CodeManifestUnknown)
	wantError(t, "GET m1 after delete", e.do(http.MethodGet, "/v2/app/manifests/"+d1.String(), nil), http.StatusNotFound, oci.CodeManifestUnknown)
	wantStatus(t, "GET latest", e.do(http.MethodGet, "/v2/app/manifests/latest", nil), http.StatusOK)
	var tl struct{ Tags []string }
	json.Unmarshal(e.do(http.MethodGet, "/v2/app/tags/list", nil).body, &tl)
	if len(tl.Tags) != 1 || tl.Tags[0] != "latest" {
		t.Errorf("tags after deletes: %v, want [latest]", tl.Tags)
	}
	// Re-pushing the deleted manifest works and the tag can point back.
	wantStatus(t, "re-PUT m1", e.pushManifest("app", "latest", oci.MediaTypeOCIManifest, m1), http.StatusCreated)
	if r := e.do(http.MethodGet, "/v2/app/manifests/latest", nil); r.h.Get("Docker-Content-Digest") != d1.String() {
		t.Errorf("latest -> %s, want %s", r.h.Get("Docker-Content-Digest"), d1)
	}
}

func TestSHA512Manifests(t *testing.T) {
	e := newEnv(t, registry.Config{})
	cfg := []byte(`{"architecture":"arm64","os":"linux"}`)
	layer := randBytes(t, 999)
	cd, ld := digest.SHA512.FromBytes(cfg), digest.SHA512.FromBytes(layer)
	for _, b := range [][]byte{cfg, layer} {
		d := digest.SHA512.FromBytes(b)
		wantStatus(t, "push sha512 blob", e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest="+d.String(), b), http.StatusCreated)
	}
	body := marshalOdd(t, map[string]any{
		"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
		"config": oci.Descriptor{MediaType: oci.MediaTypeOCIConfig, Digest: cd, Size: int64(len(cfg))},
		"layers": []oci.Descriptor{{MediaType: oci.MediaTypeOCILayer, Digest: ld, Size: int64(len(layer))}},
	})
	d := digest.SHA512.FromBytes(body)
	r := e.pushManifest("app", d.String(), oci.MediaTypeOCIManifest, body)
	wantStatus(t, "PUT by sha512 digest", r, http.StatusCreated)
	if r.h.Get("Docker-Content-Digest") != d.String() || r.h.Get("Location") != "/v2/app/manifests/"+d.String() {
		t.Errorf("Docker-Content-Digest %q Location %q", r.h.Get("Docker-Content-Digest"), r.h.Get("Location"))
	}
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		g := e.do(m, "/v2/app/manifests/"+d.String(), nil)
		wantStatus(t, m+" sha512", g, http.StatusOK)
		if g.h.Get("Docker-Content-Digest") != d.String() {
			t.Errorf("%s: Docker-Content-Digest %q", m, g.h.Get("Docker-Content-Digest"))
		}
		if m == http.MethodGet && !bytes.Equal(g.body, body) {
			t.Error("sha512 manifest bytes differ")
		}
	}
	// A referrer of the sha512 manifest.
	e.pushBlob("app", []byte("{}"))
	ref := marshalOdd(t, map[string]any{
		"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest, "artifactType": "application/vnd.example.sig",
		"config":  desc(oci.MediaTypeOCIEmptyJSON, []byte("{}")),
		"layers":  []oci.Descriptor{{MediaType: oci.MediaTypeOCILayer, Digest: ld, Size: int64(len(layer))}},
		"subject": oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: d, Size: int64(len(body))},
	})
	r = e.pushManifest("app", digest.SHA512.FromBytes(ref).String(), oci.MediaTypeOCIManifest, ref)
	wantStatus(t, "PUT sha512 referrer", r, http.StatusCreated)
	if r.h.Get("OCI-Subject") != d.String() {
		t.Errorf("OCI-Subject %q", r.h.Get("OCI-Subject"))
	}
	var idx struct{ Manifests []oci.Descriptor }
	json.Unmarshal(e.do(http.MethodGet, "/v2/app/referrers/"+d.String(), nil).body, &idx)
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.SHA512.FromBytes(ref) {
		t.Errorf("referrers of sha512 subject: %+v", idx.Manifests)
	}
	wantStatus(t, "DELETE sha512", e.do(http.MethodDelete, "/v2/app/manifests/"+d.String(), nil), http.StatusAccepted)
	wantError(t, "GET deleted sha512", e.do(http.MethodGet, "/v2/app/manifests/"+d.String(), nil), http.StatusNotFound, oci.CodeManifestUnknown)
}

// TestConditionalTagPut: If-Match / If-None-Match on a PUT by tag are
// checked against where the tag points, so two writers of one tag (signers
// appending to ".sig") cannot overwrite each other unseen.
func TestConditionalTagPut(t *testing.T) {
	e := newEnv(t, registry.Config{})
	one := e.image("app", oci.MediaTypeOCIManifest, nil)
	two := e.image("app", oci.MediaTypeOCIManifest, nil)
	three := e.image("app", oci.MediaTypeOCIManifest, nil)
	etag := func(b []byte) string { return `"` + digest.FromBytes(b).String() + `"` }
	put := func(body []byte, hdr ...string) resp {
		return e.do(http.MethodPut, "/v2/app/manifests/sig", body, append([]string{"Content-Type", oci.MediaTypeOCIManifest}, hdr...)...)
	}
	steps := []struct {
		name   string
		body   []byte
		hdr    []string
		status int
		at     []byte // where the tag points afterwards
	}{
		{"If-Match on a missing tag", one, []string{"If-Match", "*"}, 412, nil},
		{"If-None-Match: * creates", one, []string{"If-None-Match", "*"}, 201, one},
		{"If-None-Match: * when it exists", two, []string{"If-None-Match", "*"}, 412, one},
		{"If-Match the version read", two, []string{"If-Match", etag(one)}, 201, two},
		{"If-Match a stale version", three, []string{"If-Match", etag(one)}, 412, two},
		{"If-Match one of a list", three, []string{"If-Match", etag(one) + ", " + etag(two)}, 201, three},
		{"If-Match a weak tag", one, []string{"If-Match", "W/" + etag(three)}, 412, three},
		{"If-None-Match the current version", one, []string{"If-None-Match", etag(three)}, 412, three},
		{"If-None-Match another version", one, []string{"If-None-Match", etag(two)}, 201, one},
		{"unconditional", two, nil, 201, two},
	}
	for _, st := range steps {
		r := put(st.body, st.hdr...)
		if st.status == 412 {
			wantError(t, st.name, r, http.StatusPreconditionFailed, oci.CodeDenied)
		} else {
			wantStatus(t, st.name, r, st.status)
		}
		g := e.do(http.MethodGet, "/v2/app/manifests/sig", nil, "Accept", oci.MediaTypeOCIManifest)
		if st.at == nil {
			if g.code != http.StatusNotFound {
				t.Fatalf("%s: tag exists (%d)", st.name, g.code)
			}
			continue
		}
		if g.code != http.StatusOK || !bytes.Equal(g.body, st.at) || g.h.Get("ETag") != etag(st.at) {
			t.Fatalf("%s: tag at %s (ETag %s), want %s", st.name, digest.FromBytes(g.body), g.h.Get("ETag"), etag(st.at))
		}
	}
	// A PUT by digest ignores them: its content is its name.
	wantStatus(t, "by digest", e.do(http.MethodPut, "/v2/app/manifests/"+digest.FromBytes(three).String(), three,
		"Content-Type", oci.MediaTypeOCIManifest, "If-Match", `"sha256:nothing"`), http.StatusCreated)
}
