package registry_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// sparseIndex returns an index over two platform images of repo: amd64,
// pushed with its blobs, and arm64, built (its blobs pushed) but not
// pushed itself. It returns the index and the arm64 manifest.
func (e *env) sparseIndex(repo string) (index, absent []byte) {
	e.t.Helper()
	present := e.image(repo, oci.MediaTypeOCIManifest, nil)
	wantStatus(e.t, "push amd64", e.pushManifest(repo, digest.FromBytes(present).String(), oci.MediaTypeOCIManifest, present), http.StatusCreated)
	absent = e.image(repo, oci.MediaTypeOCIManifest, nil)
	index = marshalOdd(e.t, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIIndex, "manifests": []oci.Descriptor{
		{MediaType: oci.MediaTypeOCIManifest, Digest: digest.FromBytes(present), Size: int64(len(present)), Platform: &oci.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: oci.MediaTypeOCIManifest, Digest: digest.FromBytes(absent), Size: int64(len(absent)), Platform: &oci.Platform{OS: "linux", Architecture: "arm64"}},
	}})
	return index, absent
}

// errorDetail returns the detail of the first error in an OCI error body.
func errorDetail(t *testing.T, r resp) map[string]string {
	t.Helper()
	var body struct {
		Errors []struct {
			Detail map[string]string `json:"detail"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || len(body.Errors) == 0 {
		t.Fatalf("not an OCI error body: %s", r.body)
	}
	return body.Errors[0].Detail
}

// TestSparseIndexRefusedByDefault: without SparseManifests an index whose
// child manifest is absent is refused as before (MANIFEST_BLOB_UNKNOWN
// naming the child) and nothing of it is stored.
func TestSparseIndexRefusedByDefault(t *testing.T) {
	e := newEnv(t, registry.Config{})
	index, absent := e.sparseIndex("mirror/app")
	r := e.pushManifest("mirror/app", "multi", oci.MediaTypeOCIIndex, index)
	wantError(t, "sparse index", r, http.StatusBadRequest, oci.CodeManifestBlobUnknown)
	if d := errorDetail(t, r)["digest"]; d != digest.FromBytes(absent).String() {
		t.Errorf("error detail names %q, want the absent child %s", d, digest.FromBytes(absent))
	}
	wantError(t, "GET refused index", e.do(http.MethodGet, "/v2/mirror/app/manifests/multi", nil), http.StatusNotFound, oci.CodeManifestUnknown)
	// An image manifest with an absent layer is refused too.
	img := e.image("mirror/app", oci.MediaTypeOCIManifest, nil)
	var m map[string]any
	json.Unmarshal(img, &m)
	m["layers"] = append(m["layers"].([]any), desc(oci.MediaTypeOCILayerGzip, []byte("layer not pushed")))
	wantError(t, "image with an absent layer", e.pushManifest("mirror/app", "img", oci.MediaTypeOCIManifest, marshalOdd(t, m)), http.StatusBadRequest, oci.CodeManifestBlobUnknown)
}

// TestSparseManifests: with SparseManifests an index one of whose
// platforms is absent is accepted and served; the absent platform answers
// MANIFEST_UNKNOWN until it is pushed, which then works. An image manifest
// may likewise name absent blobs (BLOB_UNKNOWN until pushed). What is
// present is still checked against its descriptor.
func TestSparseManifests(t *testing.T) {
	e := newEnv(t, registry.Config{SparseManifests: true})
	const repo = "mirror/app"
	index, absent := e.sparseIndex(repo)
	absentD := digest.FromBytes(absent)

	r := e.pushManifest(repo, "multi", oci.MediaTypeOCIIndex, index)
	wantStatus(t, "sparse index", r, http.StatusCreated)
	if got := r.h.Get("Docker-Content-Digest"); got != digest.FromBytes(index).String() {
		t.Errorf("Docker-Content-Digest %q, want %s", got, digest.FromBytes(index))
	}
	for _, ref := range []string{"multi", digest.FromBytes(index).String()} {
		g := e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", oci.MediaTypeOCIIndex)
		wantStatus(t, "GET sparse index "+ref, g, http.StatusOK)
		if !bytes.Equal(g.body, index) || g.h.Get("Content-Type") != oci.MediaTypeOCIIndex {
			t.Errorf("GET %s: %s %q, want the pushed index", ref, g.h.Get("Content-Type"), truncate(g.body))
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		g := e.do(method, "/v2/"+repo+"/manifests/"+absentD.String(), nil)
		if method == http.MethodHead {
			wantStatus(t, "HEAD absent child", g, http.StatusNotFound)
			continue
		}
		wantError(t, "GET absent child", g, http.StatusNotFound, oci.CodeManifestUnknown)
	}

	// The absent platform pushed later is accepted and served; the index
	// is unchanged.
	wantStatus(t, "push absent child later", e.pushManifest(repo, absentD.String(), oci.MediaTypeOCIManifest, absent), http.StatusCreated)
	if g := e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+absentD.String(), nil); g.code != http.StatusOK || !bytes.Equal(g.body, absent) {
		t.Errorf("GET child pushed later: %d", g.code)
	}
	if g := e.do(http.MethodGet, "/v2/"+repo+"/manifests/multi", nil); g.code != http.StatusOK || !bytes.Equal(g.body, index) {
		t.Errorf("GET index after its child: %d", g.code)
	}

	// An image manifest whose config and one layer are absent.
	cfg := []byte(`{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer, missing := randBytes(t, 700), randBytes(t, 900)
	e.pushBlob(repo, layer)
	img := marshalOdd(t, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
		"config": desc(oci.MediaTypeOCIConfig, cfg),
		"layers": []oci.Descriptor{desc(oci.MediaTypeOCILayerGzip, layer), desc(oci.MediaTypeOCILayerGzip, missing)}})
	wantStatus(t, "image with absent config and layer", e.pushManifest(repo, "img", oci.MediaTypeOCIManifest, img), http.StatusCreated)
	wantError(t, "GET absent layer", e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+digest.FromBytes(missing).String(), nil), http.StatusNotFound, oci.CodeBlobUnknown)
	e.pushBlob(repo, missing)
	if g := e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+digest.FromBytes(missing).String(), nil); g.code != http.StatusOK || !bytes.Equal(g.body, missing) {
		t.Errorf("GET layer pushed later: %d", g.code)
	}

	// Naming another repository's blob does not make it this one's: it
	// stays unknown here (no read of content the pusher may not pull).
	other := randBytes(t, 600)
	e.pushBlob("private/other", other)
	foreign := marshalOdd(t, map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
		"config": desc(oci.MediaTypeOCIConfig, cfg), "layers": []oci.Descriptor{desc(oci.MediaTypeOCILayerGzip, other)}})
	wantStatus(t, "image naming another repository's blob", e.pushManifest(repo, "foreign", oci.MediaTypeOCIManifest, foreign), http.StatusCreated)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		if g := e.do(method, "/v2/"+repo+"/blobs/"+digest.FromBytes(other).String(), nil); g.code != http.StatusNotFound {
			t.Errorf("%s of another repository's blob named by a sparse manifest: %d, want 404", method, g.code)
		}
	}

	// Present content must still match its descriptor: a wrong size of a
	// present child or layer is refused, sparse or not.
	var im map[string]any
	json.Unmarshal(index, &im)
	im["manifests"].([]any)[0].(map[string]any)["size"] = 1
	wantError(t, "present child with a wrong size", e.pushManifest(repo, "bad", oci.MediaTypeOCIIndex, marshalOdd(t, im)), http.StatusBadRequest, oci.CodeManifestInvalid)
	json.Unmarshal(img, &im)
	im["layers"].([]any)[0].(map[string]any)["size"] = 1
	wantError(t, "present layer with a wrong size", e.pushManifest(repo, "bad", oci.MediaTypeOCIManifest, marshalOdd(t, im)), http.StatusBadRequest, oci.CodeManifestInvalid)
	wantError(t, "GET refused manifest", e.do(http.MethodGet, "/v2/"+repo+"/manifests/bad", nil), http.StatusNotFound, oci.CodeManifestUnknown)
	// A digest that is not one is still malformed, sparse or not.
	json.Unmarshal(img, &im)
	im["layers"].([]any)[1].(map[string]any)["digest"] = "sha256:nothex"
	wantError(t, "malformed absent digest", e.pushManifest(repo, "bad", oci.MediaTypeOCIManifest, marshalOdd(t, im)), http.StatusBadRequest, oci.CodeManifestInvalid)

	// Deleting the sparse index leaves its children.
	wantStatus(t, "delete index", e.do(http.MethodDelete, "/v2/"+repo+"/manifests/"+digest.FromBytes(index).String(), nil), http.StatusAccepted)
	wantStatus(t, "child after deleting the index", e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+absentD.String(), nil), http.StatusOK)
}
