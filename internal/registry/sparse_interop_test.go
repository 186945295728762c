package registry_test

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// TestInteropRegctlSparsePlatforms: `regctl image copy --platforms` copies
// a multi-platform index with only the platforms asked for (regclient's
// sparse copy, which "registry validation must be disabled" for). Hallmark
// refuses it by default and, with --sparse-manifests, serves the index as
// pushed, the copied platforms in full and the others as unknown until a
// later copy brings them.
func TestInteropRegctlSparsePlatforms(t *testing.T) {
	regctl := testenv.Peer(t, "regctl")
	idx := multiArchSized(t, false, 2048)
	dir := writeLayout(t, idx, "multi")
	src := "ocidir://" + dir + ":multi"
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	platform := func(p *v1.Platform) string { return strings.TrimSuffix(p.OS+"/"+p.Architecture+"/"+p.Variant, "/") }
	amd64, arm64, s390x := im.Manifests[0], im.Manifests[1], im.Manifests[2]
	if platform(amd64.Platform) != "linux/amd64" || platform(arm64.Platform) != "linux/arm64/v8" || platform(s390x.Platform) != "linux/s390x" {
		t.Fatalf("unexpected platforms in the test index: %v %v %v", amd64.Platform, arm64.Platform, s390x.Platform)
	}

	t.Run("default refuses", func(t *testing.T) {
		srv := testenv.StartServer(t, nil)
		env := peerEnv(t)
		run(t, env, regctl, "registry", "set", "--tls", "disabled", srv.Addr)
		cmd := exec.Command(regctl, "image", "copy", "--platforms", "linux/amd64", src, srv.Addr+"/mirror/app:multi")
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("regctl copied a sparse index into a registry that refuses them:\n%s", out)
		}
		if !strings.Contains(string(out), "MANIFEST_BLOB_UNKNOWN") {
			t.Errorf("regctl's error does not carry MANIFEST_BLOB_UNKNOWN:\n%s", out)
		}
		if code, _, _ := httpGet(t, srv.URL+"/v2/mirror/app/manifests/multi"); code != 404 {
			t.Errorf("refused index is served: %d", code)
		}
	})

	t.Run("sparse-manifests", func(t *testing.T) {
		srv := testenv.StartServer(t, func(c *config.Server) { c.SparseManifests = true })
		env := peerEnv(t)
		run(t, env, regctl, "registry", "set", "--tls", "disabled", srv.Addr)
		const repo = "mirror/app"
		run(t, env, regctl, "image", "copy", "--platforms", "linux/amd64", src, srv.Addr+"/"+repo+":multi")

		raw, _ := idx.RawManifest()
		d, _ := idx.Digest()
		if code, _, body := httpGet(t, srv.URL+"/v2/"+repo+"/manifests/multi"); code != 200 || !bytes.Equal(body, raw) {
			t.Fatalf("sparse index: %d, bytes equal %v", code, bytes.Equal(body, raw))
		}
		served := func(desc v1.Descriptor) {
			t.Helper()
			img, err := idx.Image(desc.Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImageServed(t, srv.URL, repo, img)
		}
		absent := func(desc v1.Descriptor) {
			t.Helper()
			if code, _, body := httpGet(t, srv.URL+"/v2/"+repo+"/manifests/"+desc.Digest.String()); code != 404 || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
				t.Errorf("%s was not copied but answers %d %s", platform(desc.Platform), code, truncate(body))
			}
			img, _ := idx.Image(desc.Digest)
			layers, _ := img.Layers()
			for _, l := range layers {
				ld, _ := l.Digest()
				if code, _, body := httpGet(t, srv.URL+"/v2/"+repo+"/blobs/"+ld.String()); code != 404 || !strings.Contains(string(body), "BLOB_UNKNOWN") {
					t.Errorf("layer %s of %s was not copied but answers %d", ld, platform(desc.Platform), code)
				}
			}
		}
		served(amd64)
		absent(arm64)
		absent(s390x)
		// regctl reads the mirror back: the index, and the platform it has.
		if got := strings.TrimSpace(string(run(t, env, regctl, "image", "digest", srv.Addr+"/"+repo+":multi"))); got != d.String() {
			t.Errorf("regctl image digest %s, want %s", got, d)
		}
		run(t, env, regctl, "image", "digest", "--platform", "linux/amd64", srv.Addr+"/"+repo+":multi")

		// A later copy of another platform fills it in (--force-recursive:
		// the index is there already, so regctl would stop at it).
		run(t, env, regctl, "image", "copy", "--force-recursive", "--platforms", "linux/arm64/v8", src, srv.Addr+"/"+repo+":multi")
		served(arm64)
		absent(s390x)
		// A full copy completes the mirror.
		run(t, env, regctl, "image", "copy", "--force-recursive", src, srv.Addr+"/"+repo+":multi")
		checkIndexServed(t, srv.URL, repo, "multi", idx)
	})
}
