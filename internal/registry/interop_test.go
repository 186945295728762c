package registry_test

// Integration tests with real third-party registry clients (crane, oras,
// regctl, skopeo) against a real in-process Hallmark server. Each test
// pushes content that was built and hashed independently of the server,
// pulls it back with the client and compares bytes and digests.
//
// Which client exercises which upload path (checked through the server's
// request metrics, not assumed):
//   - crane push / copy: POST + PUT (monolithic per blob), HEAD checks, and
//     cross-repository mount (POST ?mount=&from= -> 201) on `crane copy`
//     between two repositories of the same registry;
//   - oras push / attach: POST + PUT, manifests with subject (referrers);
//   - regctl blob put / image copy with `registry set --blob-chunk
//     --blob-max`: chunked PATCH uploads with Content-Range;
//   - skopeo copy --all: multi-arch OCI index from an OCI layout;
//   - go-containerregistry remote.WriteLayer with a stream.Layer: streamed
//     PATCH without Content-Range, then PUT ?digest=.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// peerEnv is an isolated HOME/DOCKER_CONFIG for the client binaries.
func peerEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	return append(os.Environ(),
		"HOME="+home,
		"DOCKER_CONFIG="+filepath.Join(home, ".docker"),
		"REGCTL_CONFIG="+filepath.Join(home, "regctl.json"),
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_RUNTIME_DIR="+home,
		"REGISTRY_AUTH_FILE="+filepath.Join(home, "auth.json"),
	)
}

// run runs a peer binary and returns its stdout; it fails the test with
// stderr on a non-zero exit.
func run(t *testing.T, env []string, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), err, truncate(stdout.Bytes()), stderr.String())
	}
	return stdout.Bytes()
}

// metric returns the sum of hallmark_http_requests_total samples whose
// labels include all of want.
func metric(t *testing.T, base string, want ...string) float64 {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	sum := 0.0
	re := regexp.MustCompile(`(?m)^hallmark_http_requests_total\{([^}]*)\} (\S+)$`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		ok := true
		for _, w := range want {
			if !strings.Contains(m[1], w) {
				ok = false
			}
		}
		if ok {
			v, _ := strconv.ParseFloat(m[2], 64)
			sum += v
		}
	}
	return sum
}

// httpGet fetches a path from the server.
func httpGet(t *testing.T, url string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// multiArch builds a three-platform image index (OCI or Docker flavour)
// with go-containerregistry, entirely offline.
func multiArch(t *testing.T, docker bool) v1.ImageIndex {
	t.Helper()
	return multiArchSized(t, docker, 3000)
}

// multiArchSized is multiArch with layers of about size bytes.
func multiArchSized(t *testing.T, docker bool, size int64) v1.ImageIndex {
	t.Helper()
	idxMT, imgMT, cfgMT, layerMT := types.OCIImageIndex, types.OCIManifestSchema1, types.OCIConfigJSON, types.OCILayer
	if docker {
		idxMT, imgMT, cfgMT, layerMT = types.DockerManifestList, types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerLayer
	}
	var adds []mutate.IndexAddendum
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "s390x"}} {
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, imgMT), cfgMT)
		for i := 0; i < 2; i++ {
			l, err := random.Layer(size, layerMT)
			if err != nil {
				t.Fatal(err)
			}
			if img, err = mutate.AppendLayers(img, l); err != nil {
				t.Fatal(err)
			}
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, idxMT), adds...)
}

// writeLayout writes idx into a new OCI layout as the single entry
// "ref", and returns the layout path.
func writeLayout(t *testing.T, idx v1.ImageIndex, ref string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkIndexServed checks that the server serves idx and every manifest
// and blob under it byte for byte, in repo, by tag and by digest.
func checkIndexServed(t *testing.T, base, repo, tag string, idx v1.ImageIndex) {
	t.Helper()
	raw, _ := idx.RawManifest()
	d, _ := idx.Digest()
	mt, _ := idx.MediaType()
	for _, ref := range []string{tag, d.String()} {
		code, h, body := httpGet(t, base+"/v2/"+repo+"/manifests/"+ref, "Accept", string(mt))
		if code != 200 || !bytes.Equal(body, raw) || h.Get("Content-Type") != string(mt) || h.Get("Docker-Content-Digest") != d.String() {
			t.Fatalf("index %s:%s: %d type %q digest %q; bytes equal: %v", repo, ref, code, h.Get("Content-Type"), h.Get("Docker-Content-Digest"), bytes.Equal(body, raw))
		}
	}
	im, _ := idx.IndexManifest()
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkImageServed(t, base, repo, img)
	}
}

func checkImageServed(t *testing.T, base, repo string, img v1.Image) {
	t.Helper()
	raw, _ := img.RawManifest()
	d, _ := img.Digest()
	code, _, body := httpGet(t, base+"/v2/"+repo+"/manifests/"+d.String())
	if code != 200 || !bytes.Equal(body, raw) {
		t.Fatalf("manifest %s@%s: %d, bytes equal %v", repo, d, code, bytes.Equal(body, raw))
	}
	cfgName, _ := img.ConfigName()
	cfgRaw, _ := img.RawConfigFile()
	if code, _, body := httpGet(t, base+"/v2/"+repo+"/blobs/"+cfgName.String()); code != 200 || !bytes.Equal(body, cfgRaw) {
		t.Fatalf("config %s: %d", cfgName, code)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		ld, _ := l.Digest()
		rc, _ := l.Compressed()
		want, _ := io.ReadAll(rc)
		rc.Close()
		if code, _, body := httpGet(t, base+"/v2/"+repo+"/blobs/"+ld.String()); code != 200 || !bytes.Equal(body, want) {
			t.Fatalf("layer %s: %d", ld, code)
		}
	}
}

// layoutBlobs maps digest -> bytes of every blob in an OCI layout.
func layoutBlobs(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, alg := range []string{"sha256", "sha512"} {
		entries, _ := os.ReadDir(filepath.Join(dir, "blobs", alg))
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, "blobs", alg, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if digest.Digest(alg+":"+e.Name()) != digest.Algorithm(alg).FromBytes(b) {
				t.Fatalf("layout blob %s:%s does not match its digest", alg, e.Name())
			}
			out[alg+":"+e.Name()] = b
		}
	}
	return out
}

func TestInteropCrane(t *testing.T) {
	crane := testenv.Peer(t, "crane")
	srv := testenv.StartServer(t, nil)
	env := peerEnv(t)
	host := srv.Addr

	// Multi-arch OCI index from a layout, and a Docker manifest list.
	for _, tc := range []struct {
		repo   string
		docker bool
	}{{"interop/crane/oci", false}, {"interop/crane/docker", true}} {
		idx := multiArch(t, tc.docker)
		dir := writeLayout(t, idx, "multi")
		run(t, env, crane, "push", "--insecure", dir, host+"/"+tc.repo+":multi")
		checkIndexServed(t, srv.URL, tc.repo, "multi", idx)

		// crane's own view: digest and raw manifest.
		d, _ := idx.Digest()
		if got := strings.TrimSpace(string(run(t, env, crane, "digest", "--insecure", host+"/"+tc.repo+":multi"))); got != d.String() {
			t.Errorf("crane digest %s, want %s", got, d)
		}
		raw, _ := idx.RawManifest()
		if got := run(t, env, crane, "manifest", "--insecure", host+"/"+tc.repo+":multi"); !bytes.Equal(got, raw) {
			t.Errorf("crane manifest differs from what was pushed")
		}
		// Pull everything back into a layout and compare blob by blob.
		out := filepath.Join(t.TempDir(), "pulled")
		run(t, env, crane, "pull", "--insecure", "--format", "oci", host+"/"+tc.repo+":multi", out)
		pushed, pulled := layoutBlobs(t, dir), layoutBlobs(t, out)
		for d, b := range pushed {
			if !bytes.Equal(pulled[d], b) {
				t.Errorf("blob %s: pulled bytes differ (present: %v)", d, pulled[d] != nil)
			}
		}
	}

	// Cross-repository mount: crane copy between two repositories of the
	// same registry mounts every blob instead of uploading it.
	mounts := metric(t, srv.URL, `route="upload_start"`, `code="201"`, `method="POST"`)
	patches := metric(t, srv.URL, `route="upload_patch"`)
	run(t, env, crane, "copy", "--insecure", host+"/interop/crane/oci:multi", host+"/interop/crane/copy:multi")
	idx := multiArchFromServer(t, srv.URL, "interop/crane/oci", "multi")
	checkIndexServed(t, srv.URL, "interop/crane/copy", "multi", idx)
	got := metric(t, srv.URL, `route="upload_start"`, `code="201"`, `method="POST"`) - mounts
	// 3 images x (config + 2 layers) = 9 blobs, all mountable.
	if got < 9 {
		t.Errorf("crane copy mounted %v blobs, want 9 (cross-repo mount answered 201)", got)
	}
	if p := metric(t, srv.URL, `route="upload_patch"`) - patches; p != 0 {
		t.Errorf("crane copy uploaded data (%v PATCH requests) instead of mounting", p)
	}

	// crane append: a single image built by the client itself.
	layerTar := filepath.Join(t.TempDir(), "layer.tar")
	writeTar(t, layerTar, map[string][]byte{"hello.txt": []byte("hello from crane\n")})
	run(t, env, crane, "append", "--insecure", "-f", layerTar, "-t", host+"/interop/crane/appended:v1")
	rawM := run(t, env, crane, "manifest", "--insecure", host+"/interop/crane/appended:v1")
	if code, _, body := httpGet(t, srv.URL+"/v2/interop/crane/appended/manifests/v1"); code != 200 || !bytes.Equal(body, rawM) {
		t.Fatalf("appended manifest: %d", code)
	}
	export := run(t, env, crane, "export", "--insecure", host+"/interop/crane/appended:v1", "-")
	if !bytes.Contains(export, []byte("hello from crane\n")) {
		t.Error("crane export does not contain the appended file")
	}
	// Tags listing through crane.
	tags := strings.Fields(string(run(t, env, crane, "ls", "--insecure", host+"/interop/crane/oci")))
	if len(tags) != 1 || tags[0] != "multi" {
		t.Errorf("crane ls = %v", tags)
	}
	cat := string(run(t, env, crane, "catalog", "--insecure", host))
	for _, r := range []string{"interop/crane/oci", "interop/crane/docker", "interop/crane/copy", "interop/crane/appended"} {
		if !strings.Contains(cat, r+"\n") {
			t.Errorf("crane catalog lacks %s: %s", r, cat)
		}
	}
	// Delete by digest through crane.
	d, _ := idx.Digest()
	run(t, env, crane, "delete", "--insecure", host+"/interop/crane/copy@"+d.String())
	if code, _, _ := httpGet(t, srv.URL+"/v2/interop/crane/copy/manifests/multi"); code != 404 {
		t.Errorf("tag after crane delete: %d", code)
	}
}

// multiArchFromServer reads an index back with go-containerregistry.
func multiArchFromServer(t *testing.T, base, repo, tag string) v1.ImageIndex {
	t.Helper()
	ref, err := name.ParseReference(strings.TrimPrefix(base, "http://")+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func writeTar(t *testing.T, path string, files map[string][]byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, b := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestInteropOras(t *testing.T) {
	oras := testenv.Peer(t, "oras")
	srv := testenv.StartServer(t, nil)
	env := peerEnv(t)
	host := srv.Addr
	work := t.TempDir()

	sbom := []byte(`{"spdxVersion":"SPDX-2.3","name":"example"}` + "\n")
	big := randBytes(t, 6<<20+11)
	os.WriteFile(filepath.Join(work, "sbom.json"), sbom, 0o600)
	os.WriteFile(filepath.Join(work, "big.bin"), big, 0o600)
	// Push an artifact.
	cmd := exec.Command(oras, "push", "--plain-http", "--artifact-type", "application/vnd.example.bundle",
		"--annotation", "org.example.k=v", host+"/interop/oras/art:v1",
		"sbom.json:application/spdx+json", "big.bin:application/octet-stream")
	cmd.Dir, cmd.Env = work, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras push: %v\n%s", err, out)
	}
	// Pull it back and compare files.
	out := filepath.Join(t.TempDir(), "out")
	run(t, env, oras, "pull", "--plain-http", "-o", out, host+"/interop/oras/art:v1")
	for n, want := range map[string][]byte{"sbom.json": sbom, "big.bin": big} {
		got, err := os.ReadFile(filepath.Join(out, n))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("oras pull %s: bytes differ (%v)", n, err)
		}
	}
	// The manifest oras fetches is the one the server stores.
	raw := run(t, env, oras, "manifest", "fetch", "--plain-http", host+"/interop/oras/art:v1")
	code, h, body := httpGet(t, srv.URL+"/v2/interop/oras/art/manifests/v1")
	if code != 200 || !bytes.Equal(body, raw) {
		t.Fatalf("manifest: %d", code)
	}
	subject := digest.FromBytes(raw)
	if h.Get("Docker-Content-Digest") != subject.String() {
		t.Errorf("Docker-Content-Digest %s, want %s", h.Get("Docker-Content-Digest"), subject)
	}
	var m oci.Manifest
	json.Unmarshal(raw, &m)
	if m.ArtifactType != "application/vnd.example.bundle" || m.Annotations["org.example.k"] != "v" {
		t.Errorf("artifact manifest: %s", raw)
	}

	// Attach a signature-like artifact with a subject; discover it via
	// oras and via the referrers API directly.
	os.WriteFile(filepath.Join(work, "sig.txt"), []byte("signature"), 0o600)
	cmd = exec.Command(oras, "attach", "--plain-http", "--artifact-type", "application/vnd.example.sig",
		"--annotation", "org.example.signer=alice", host+"/interop/oras/art:v1", "sig.txt:text/plain")
	cmd.Dir, cmd.Env = work, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras attach: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(work, "sbom2.json"), []byte("{}"), 0o600)
	cmd = exec.Command(oras, "attach", "--plain-http", "--artifact-type", "application/vnd.example.sbom", host+"/interop/oras/art:v1", "sbom2.json:application/json")
	cmd.Dir, cmd.Env = work, env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oras attach: %v\n%s", err, out)
	}
	disc := run(t, env, oras, "discover", "--plain-http", "--format", "json", host+"/interop/oras/art:v1")
	var dres struct {
		Referrers []struct {
			Digest       string            `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"referrers"`
		Manifests []struct {
			Digest       string            `json:"digest"`
			ArtifactType string            `json:"artifactType"`
			Annotations  map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(disc, &dres); err != nil {
		t.Fatalf("oras discover output: %v: %s", err, disc)
	}
	refs := append(dres.Referrers, dres.Manifests...)
	byType := map[string]string{}
	for _, r := range refs {
		byType[r.ArtifactType] = r.Digest
		if r.ArtifactType == "application/vnd.example.sig" && r.Annotations["org.example.signer"] != "alice" {
			t.Errorf("discover: signature annotations %v", r.Annotations)
		}
	}
	if len(refs) != 2 || byType["application/vnd.example.sig"] == "" || byType["application/vnd.example.sbom"] == "" {
		t.Fatalf("oras discover: %s", disc)
	}
	// The referrers API directly (oras must not have fallen back to a tag
	// schema: no sha256-<hex> tag exists).
	code, h, body = httpGet(t, srv.URL+"/v2/interop/oras/art/referrers/"+subject.String())
	var idx oci.Manifest
	json.Unmarshal(body, &idx)
	if code != 200 || len(idx.Manifests) != 2 || h.Get("Content-Type") != oci.MediaTypeOCIIndex {
		t.Fatalf("referrers: %d %s", code, body)
	}
	code, h, body = httpGet(t, srv.URL+"/v2/interop/oras/art/referrers/"+subject.String()+"?artifactType=application/vnd.example.sig")
	json.Unmarshal(body, &idx)
	if code != 200 || len(idx.Manifests) != 1 || idx.Manifests[0].Digest.String() != byType["application/vnd.example.sig"] ||
		idx.Manifests[0].Annotations["org.example.signer"] != "alice" || h.Get("OCI-Filters-Applied") != "artifactType" {
		t.Fatalf("filtered referrers: %d %s", code, body)
	}
	_, _, tl := httpGet(t, srv.URL+"/v2/interop/oras/art/tags/list")
	if strings.Contains(string(tl), "sha256-") {
		t.Errorf("oras used the referrers tag fallback: %s", tl)
	}
	// Filtered discover through oras.
	disc = run(t, env, oras, "discover", "--plain-http", "--format", "json", "--artifact-type", "application/vnd.example.sbom", host+"/interop/oras/art:v1")
	if !strings.Contains(string(disc), byType["application/vnd.example.sbom"]) || strings.Contains(string(disc), byType["application/vnd.example.sig"]) {
		t.Errorf("filtered discover: %s", disc)
	}
	// Blob fetch by digest.
	bd := digest.FromBytes(big)
	got := run(t, env, oras, "blob", "fetch", "--plain-http", "--output", "-", host+"/interop/oras/art@"+bd.String())
	if !bytes.Equal(got, big) {
		t.Error("oras blob fetch differs")
	}
	// oras copy to another repo of the same registry (mounts).
	mounts := metric(t, srv.URL, `route="upload_start"`, `code="201"`)
	run(t, env, oras, "cp", "--from-plain-http", "--to-plain-http", "-r", host+"/interop/oras/art:v1", host+"/interop/oras/copy:v1")
	if code, _, body := httpGet(t, srv.URL+"/v2/interop/oras/copy/manifests/v1"); code != 200 || !bytes.Equal(body, raw) {
		t.Errorf("oras cp: %d", code)
	}
	code, _, body = httpGet(t, srv.URL+"/v2/interop/oras/copy/referrers/"+subject.String())
	json.Unmarshal(body, &idx)
	if code != 200 || len(idx.Manifests) != 2 {
		t.Errorf("oras cp -r did not carry the referrers: %s", body)
	}
	t.Logf("oras cp: %v cross-repo mounts", metric(t, srv.URL, `route="upload_start"`, `code="201"`)-mounts)
}

func TestInteropRegctl(t *testing.T) {
	regctl := testenv.Peer(t, "regctl")
	srv := testenv.StartServer(t, nil)
	env := peerEnv(t)
	host := srv.Addr
	// Plain HTTP, and chunked uploads: 1 MiB chunks for blobs above 1 MiB.
	run(t, env, regctl, "registry", "set", "--tls", "disabled", "--blob-chunk", "1048576", "--blob-max", "1048576", host)

	// A blob streamed from stdin: size unknown, so regclient uploads it in
	// chunks (PATCH with Content-Range).
	patches := metric(t, srv.URL, `route="upload_patch"`, `code="202"`)
	data := randBytes(t, 5<<20+123)
	cmd := exec.Command(regctl, "blob", "put", host+"/interop/regctl/blobs")
	cmd.Env, cmd.Stdin = env, bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("regctl blob put: %v", err)
	}
	want := digest.FromBytes(data)
	if !strings.Contains(string(out), want.String()) {
		t.Errorf("regctl blob put printed %q, want %s", out, want)
	}
	if n := metric(t, srv.URL, `route="upload_patch"`, `code="202"`) - patches; n < 6 {
		t.Errorf("regctl sent %v accepted PATCH chunks, want >= 6 (1 MiB chunks of 5 MiB)", n)
	}
	if code, _, body := httpGet(t, srv.URL+"/v2/interop/regctl/blobs/blobs/"+want.String()); code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("chunked blob: %d", code)
	}
	got := run(t, env, regctl, "blob", "get", host+"/interop/regctl/blobs", want.String())
	if !bytes.Equal(got, data) {
		t.Error("regctl blob get differs")
	}

	// A multi-arch image from an OCI layout, copied with regctl (layers
	// above 1 MiB go in chunks).
	idx := multiArchSized(t, false, 3<<20) // layers above 1 MiB
	dir := writeLayout(t, idx, "multi")
	patches = metric(t, srv.URL, `route="upload_patch"`, `code="202"`)
	run(t, env, regctl, "image", "copy", "ocidir://"+dir+":multi", host+"/interop/regctl/img:multi")
	checkIndexServed(t, srv.URL, "interop/regctl/img", "multi", idx)
	if n := metric(t, srv.URL, `route="upload_patch"`, `code="202"`) - patches; n < 2 {
		t.Errorf("regctl image copy sent %v PATCH chunks; expected chunked layer uploads", n)
	}
	d, _ := idx.Digest()
	if got := strings.TrimSpace(string(run(t, env, regctl, "image", "digest", host+"/interop/regctl/img:multi"))); got != d.String() {
		t.Errorf("regctl image digest %s, want %s", got, d)
	}
	raw, _ := idx.RawManifest()
	if got := run(t, env, regctl, "manifest", "get", "--format", "raw-body", host+"/interop/regctl/img:multi"); !bytes.Equal(got, raw) {
		t.Error("regctl manifest get differs")
	}
	// Back into a new layout.
	out2 := filepath.Join(t.TempDir(), "back")
	run(t, env, regctl, "image", "copy", host+"/interop/regctl/img:multi", "ocidir://"+out2+":multi")
	pushed, pulled := layoutBlobs(t, dir), layoutBlobs(t, out2)
	for d, b := range pushed {
		if !bytes.Equal(pulled[d], b) {
			t.Errorf("blob %s: round trip through regctl differs", d)
		}
	}
	// Artifact with a subject, listed by regctl through the referrers API.
	cmd = exec.Command(regctl, "artifact", "put", "--by-digest", "--artifact-type", "application/vnd.example.attestation",
		"--annotation", "org.example.builder=ci", "--subject", host+"/interop/regctl/img:multi", host+"/interop/regctl/img")
	cmd.Env, cmd.Stdin = env, strings.NewReader(`{"predicate":"x"}`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("regctl artifact put: %v\n%s", err, out)
	}
	list := run(t, env, regctl, "artifact", "list", "--format", "{{jsonPretty .}}", host+"/interop/regctl/img:multi")
	if !strings.Contains(string(list), "application/vnd.example.attestation") || !strings.Contains(string(list), "org.example.builder") {
		t.Errorf("regctl artifact list: %s", list)
	}
	code, _, body := httpGet(t, srv.URL+"/v2/interop/regctl/img/referrers/"+d.String())
	if code != 200 || !strings.Contains(string(body), "application/vnd.example.attestation") {
		t.Errorf("referrers: %d %s", code, body)
	}
	// Tag listing and delete through regctl.
	if tags := strings.Fields(string(run(t, env, regctl, "tag", "ls", host+"/interop/regctl/img"))); len(tags) != 1 || tags[0] != "multi" {
		t.Errorf("regctl tag ls: %v", tags)
	}
	run(t, env, regctl, "tag", "delete", host+"/interop/regctl/img:multi")
	if code, _, _ := httpGet(t, srv.URL+"/v2/interop/regctl/img/manifests/multi"); code != 404 {
		t.Errorf("after regctl tag delete: %d", code)
	}
}

// canonicalLayout writes idx into a new OCI layout, re-encoding the index
// itself in the field order and field set of containers/image (descriptors
// as mediaType, digest, size, platform for OCI; mediaType, size, digest,
// platform for Docker lists). skopeo --preserve-digests refuses an index it
// would re-serialize differently, as go-containerregistry's (which adds
// artifactType to descriptors) would be. It returns the layout directory and
// the index as stored there.
func canonicalLayout(t *testing.T, idx v1.ImageIndex, docker bool) (string, v1.ImageIndex) {
	t.Helper()
	type plat struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant,omitempty"`
	}
	type ociDesc struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int64  `json:"size"`
		Platform  *plat  `json:"platform,omitempty"`
	}
	type dockerDesc struct {
		MediaType string `json:"mediaType"`
		Size      int64  `json:"size"`
		Digest    string `json:"digest"`
		Platform  *plat  `json:"platform"`
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	var descs []any
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WriteImage(img); err != nil {
			t.Fatal(err)
		}
		pl := &plat{Architecture: d.Platform.Architecture, OS: d.Platform.OS, Variant: d.Platform.Variant}
		if docker {
			descs = append(descs, dockerDesc{string(d.MediaType), d.Size, d.Digest.String(), pl})
		} else {
			descs = append(descs, ociDesc{string(d.MediaType), d.Digest.String(), d.Size, pl})
		}
	}
	raw, err := json.Marshal(struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Manifests     []any  `json:"manifests"`
	}{2, string(im.MediaType), descs})
	if err != nil {
		t.Fatal(err)
	}
	h, size, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteBlob(h, io.NopCloser(bytes.NewReader(raw))); err != nil {
		t.Fatal(err)
	}
	desc := v1.Descriptor{MediaType: im.MediaType, Digest: h, Size: size, Annotations: map[string]string{"org.opencontainers.image.ref.name": "multi"}}
	if err := p.AppendDescriptor(desc); err != nil {
		t.Fatal(err)
	}
	out, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := out.ImageIndex(h)
	if err != nil {
		t.Fatal(err)
	}
	return dir, stored
}

func TestInteropSkopeo(t *testing.T) {
	skopeo := testenv.Peer(t, "skopeo")
	srv := testenv.StartServer(t, nil)
	env := peerEnv(t)
	host := srv.Addr

	// OCI index: layout -> registry -> layout, digests preserved.
	dir, idx := canonicalLayout(t, multiArch(t, false), false)
	run(t, env, skopeo, "copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
		"oci:"+dir+":multi", "docker://"+host+"/interop/skopeo/oci:multi")
	checkIndexServed(t, srv.URL, "interop/skopeo/oci", "multi", idx)
	raw, _ := idx.RawManifest()
	if got := run(t, env, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+host+"/interop/skopeo/oci:multi"); !bytes.Equal(got, raw) {
		t.Errorf("skopeo inspect --raw differs")
	}
	out := filepath.Join(t.TempDir(), "back")
	run(t, env, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
		"docker://"+host+"/interop/skopeo/oci:multi", "oci:"+out+":multi")
	pushed, pulled := layoutBlobs(t, dir), layoutBlobs(t, out)
	for d, b := range pushed {
		if !bytes.Equal(pulled[d], b) {
			t.Errorf("blob %s: round trip through skopeo differs", d)
		}
	}
	// One platform only, by digest, into another repository.
	im, _ := idx.IndexManifest()
	child := im.Manifests[1].Digest
	run(t, env, skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+host+"/interop/skopeo/oci@"+child.String(), "docker://"+host+"/interop/skopeo/arm64:latest")
	img, _ := idx.Image(child)
	checkImageServed(t, srv.URL, "interop/skopeo/arm64", img)

	// Docker manifest list (an OCI layout cannot hold one for skopeo):
	// seeded with go-containerregistry, then copied registry -> registry
	// and registry -> dir: by skopeo.
	_, list := canonicalLayout(t, multiArch(t, true), true)
	ref, err := name.ParseReference(host+"/interop/skopeo/list-src:multi", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, list); err != nil {
		t.Fatal(err)
	}
	run(t, env, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false",
		"docker://"+host+"/interop/skopeo/list-src:multi", "docker://"+host+"/interop/skopeo/list:multi")
	checkIndexServed(t, srv.URL, "interop/skopeo/list", "multi", list)
	dirOut := filepath.Join(t.TempDir(), "dir")
	run(t, env, skopeo, "copy", "--all", "--preserve-digests", "--src-tls-verify=false",
		"docker://"+host+"/interop/skopeo/list:multi", "dir:"+dirOut)
	listRaw, _ := list.RawManifest()
	if got, err := os.ReadFile(filepath.Join(dirOut, "manifest.json")); err != nil || !bytes.Equal(got, listRaw) {
		t.Errorf("skopeo dir: manifest list differs (%v)", err)
	}
	lm, _ := list.IndexManifest()
	for _, d := range lm.Manifests {
		img, _ := list.Image(d.Digest)
		layers, _ := img.Layers()
		for _, l := range layers {
			ld, _ := l.Digest()
			rc, _ := l.Compressed()
			want, _ := io.ReadAll(rc)
			rc.Close()
			if got, err := os.ReadFile(filepath.Join(dirOut, ld.Hex)); err != nil || !bytes.Equal(got, want) {
				t.Errorf("skopeo dir: layer %s differs (%v)", ld, err)
			}
		}
	}
	tags := run(t, env, skopeo, "list-tags", "--tls-verify=false", "docker://"+host+"/interop/skopeo/oci")
	if !strings.Contains(string(tags), `"multi"`) {
		t.Errorf("skopeo list-tags: %s", tags)
	}
}

// TestInteropStreamedLayer uploads a layer with go-containerregistry's
// streaming layer, which uses a PATCH without Content-Range (size unknown
// up front) followed by PUT ?digest=.
func TestInteropStreamedLayer(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	data := randBytes(t, 4<<20)
	ref, err := name.ParseReference(srv.Addr+"/interop/ggcr/stream:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	patches := metric(t, srv.URL, `route="upload_patch"`, `code="202"`)
	l := stream.NewLayer(io.NopCloser(bytes.NewReader(data)))
	if err := remote.WriteLayer(ref.Context(), l); err != nil {
		t.Fatal(err)
	}
	if n := metric(t, srv.URL, `route="upload_patch"`, `code="202"`) - patches; n < 1 {
		t.Errorf("no streamed PATCH seen (%v)", n)
	}
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := httpGet(t, srv.URL+"/v2/interop/ggcr/stream/blobs/"+d.String())
	if code != 200 || digest.FromBytes(body).String() != d.String() {
		t.Fatalf("streamed layer: %d", code)
	}
	// The stored gzip stream decompresses to the original data.
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("streamed layer content differs (%v)", err)
	}
}
