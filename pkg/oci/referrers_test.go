package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// rawManifest is a manifest pushed as is.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestBundleReferrersBounded: go-containerregistry's registry lists every
// referrer with its config media type, so a bundle referrer shows the
// empty type and is found by reading its manifest; a flood of other
// empty-config referrers costs a bounded number of manifest reads.
func TestBundleReferrersBounded(t *testing.T) {
	var manifestReads atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			manifestReads.Add(1)
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/group/app")
	img, _ := random.Image(64, 1)
	if err := remote.Write(repo.Tag("v1"), img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	desc, _ := remote.Head(repo.Digest(d.String()))
	push := func(layerType string, layer []byte) {
		t.Helper()
		l := static.NewLayer(layer, types.MediaType(layerType))
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteLayer(repo, static.NewLayer([]byte("{}"), types.OCIConfigJSON)); err != nil {
			t.Fatal(err)
		}
		ld, _ := l.Digest()
		cd, _, _ := v1.SHA256(bytes.NewReader([]byte("{}")))
		m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
			"config":  map[string]any{"mediaType": oci.MediaTypeOCIEmptyJSON, "digest": cd.String(), "size": 2},
			"layers":  []any{map[string]any{"mediaType": layerType, "digest": ld.String(), "size": len(layer)}},
			"subject": map[string]any{"mediaType": string(desc.MediaType), "digest": d.String(), "size": desc.Size}})
		md, _, _ := v1.SHA256(bytes.NewReader(m))
		if err := remote.Put(repo.Digest(md.String()), rawManifest(m)); err != nil {
			t.Fatal(err)
		}
	}
	push(oci.BundleMediaTypeV03, []byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	cli := oci.NewClient(oci.ClientConfig{})
	bs, err := cli.BundleReferrers(context.Background(), repo, d)
	if err != nil || len(bs) != 1 || bs[0].Err != nil {
		t.Fatalf("a bundle listed with the empty type: %+v %v", bs, err)
	}
	for i := range 250 {
		push("application/vnd.example.other", []byte(fmt.Sprintf("artifact %d", i)))
	}
	manifestReads.Store(0)
	if _, err := cli.BundleReferrers(context.Background(), repo, d); err != nil {
		t.Fatal(err)
	}
	if n := manifestReads.Load(); n > 200 {
		t.Errorf("%d referrer manifests read for one image; the bound is 200", n)
	}
}
