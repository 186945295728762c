package sign

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/internal/peertest"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// The golden files under testdata/cosign-layout were written by real
// cosign v2.6.5 (TestCaptureCosignGolden, run once with
// HALLMARK_CAPTURE_GOLDEN=1) signing goldenImage in a registry at
// goldenRegistry with the key testdata/cosign-v2.6.5.key, three times:
//
//  1. -a env=prod -a team=core
//  2. -a 'html=<a&b>' -a 'unicode=grüße'
//  3. no annotations
//
// and once more, with COSIGN_DOCKER_MEDIA_TYPES=1 and -a env=prod, a second
// image (goldenImage with another layer). After each step the signature
// manifest, its config blob and the new payload were saved.
const (
	goldenRegistry = "127.0.0.1:5099" // only the docker-reference carries it
	goldenRepo     = "golden/app"
	goldenDir      = "testdata/cosign-layout"
)

var goldenSteps = []struct {
	file        string
	annotations []string
	docker      bool
}{
	{"step1", []string{"env=prod", "team=core"}, false},
	{"step2", []string{"html=<a&b>", "unicode=grüße"}, false},
	{"step3", nil, false},
	{"docker", []string{"env=prod"}, true},
}

// goldenImage is a fixed image, so its digest is the same in every run.
func goldenImage(t *testing.T, docker bool) v1.Image {
	t.Helper()
	content := "hallmark golden image\n"
	if docker {
		content = "hallmark golden image (docker media types)\n"
	}
	img, err := mutate.AppendLayers(empty.Image, static.NewLayer([]byte(content), types.OCIUncompressedLayer))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func annotationMap(kv []string) map[string]string {
	m := map[string]string{}
	for _, a := range kv {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

// serveRegistry serves go-containerregistry's registry on addr.
func serveRegistry(t *testing.T, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}}
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

func pushGoldenImage(t *testing.T, host string, docker bool) name.Digest {
	t.Helper()
	img := goldenImage(t, docker)
	ref, _ := name.NewTag(host + "/" + goldenRepo + ":v1")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return ref.Context().Digest(d.String())
}

// sigArtifacts fetches the signature manifest of img, its config blob and
// the last layer's payload.
func sigArtifacts(t *testing.T, img name.Digest) (manifest, config, lastPayload []byte) {
	t.Helper()
	h, _ := v1.NewHash(img.DigestStr())
	tag := oci.SignatureTag(img.Context(), "", h)
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	si, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	if config, err = si.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	layers, err := si.Layers()
	if err != nil || len(layers) == 0 {
		t.Fatalf("layers: %v", err)
	}
	rc, err := layers[len(layers)-1].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if lastPayload, err = io.ReadAll(rc); err != nil {
		t.Fatal(err)
	}
	return desc.Manifest, config, lastPayload
}

func TestCaptureCosignGolden(t *testing.T) {
	if os.Getenv("HALLMARK_CAPTURE_GOLDEN") != "1" {
		t.Skip("writes testdata/cosign-layout from real cosign; run with HALLMARK_CAPTURE_GOLDEN=1")
	}
	bin := peertest.Peer(t, "cosign")
	host := serveRegistry(t, goldenRegistry)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cosign.key"), readTestdata(t, "cosign-v2.6.5.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, step := range goldenSteps {
		img := pushGoldenImage(t, host, step.docker)
		args := []string{"sign", "--key", "cosign.key", "--tlog-upload=false"}
		for _, a := range step.annotations {
			args = append(args, "-a", a)
		}
		if step.docker {
			t.Setenv("COSIGN_DOCKER_MEDIA_TYPES", "1")
		}
		runCosign(t, bin, dir, testPassword, append(args, img.String())...)
		os.Unsetenv("COSIGN_DOCKER_MEDIA_TYPES")
		m, c, p := sigArtifacts(t, img)
		for suffix, b := range map[string][]byte{".manifest.json": m, ".config.json": c, ".payload.json": p} {
			if err := os.WriteFile(filepath.Join(goldenDir, step.file+suffix), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func readGolden(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatalf("golden file missing (capture it with HALLMARK_CAPTURE_GOLDEN=1): %v", err)
	}
	return b
}

// withoutSignatures replaces every signature annotation value in a
// manifest (ECDSA signatures are randomized) by "<signature>", keeping all
// other bytes, and returns the signatures it removed.
func withoutSignatures(t *testing.T, raw []byte) (string, []string) {
	t.Helper()
	var m struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	var sigs []string
	out := string(raw)
	for _, l := range m.Layers {
		if s, ok := l.Annotations[AnnotationSignature]; ok {
			sigs = append(sigs, s)
			out = strings.Replace(out, `"`+AnnotationSignature+`":"`+s+`"`, `"`+AnnotationSignature+`":"<signature>"`, 1)
		}
	}
	return out, sigs
}

// TestGoldenLayout signs the golden image as cosign did, with Hallmark's
// payload builder, signer and Attach, and compares every byte cosign wrote
// except the randomized signatures: payloads and config blobs byte for
// byte, manifests after blanking the signature values (same digests, sizes,
// media types, annotation keys and key order).
func TestGoldenLayout(t *testing.T) {
	key, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := LoadPublicKey(readTestdata(t, "cosign-v2.6.5.pub"))
	host := serveRegistry(t, "127.0.0.1:0")
	signer := KeySigner{Key: key}
	for _, step := range goldenSteps {
		t.Run(step.file, func(t *testing.T) {
			img := pushGoldenImage(t, host, step.docker)
			h, _ := v1.NewHash(img.DigestStr())
			body, err := payload.New(goldenRegistry+"/"+goldenRepo, img.DigestStr(), annotationMap(step.annotations)).Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if want := readGolden(t, step.file+".payload.json"); !bytes.Equal(body, want) {
				t.Fatalf("payload differs from cosign's\nhallmark: %s\ncosign:   %s", body, want)
			}
			sig, err := signer.Sign(context.Background(), body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Attach(img.Context(), h, sig, AttachOptions{Verifier: pub, DockerMediaTypes: step.docker}); err != nil {
				t.Fatal(err)
			}
			m, c, p := sigArtifacts(t, img)
			if want := readGolden(t, step.file+".config.json"); !bytes.Equal(c, want) {
				t.Errorf("config blob differs\nhallmark: %s\ncosign:   %s", c, want)
			}
			if !bytes.Equal(p, body) {
				t.Errorf("stored payload differs from the signed bytes")
			}
			got, ours := withoutSignatures(t, m)
			want, theirs := withoutSignatures(t, readGolden(t, step.file+".manifest.json"))
			if got != want {
				t.Errorf("manifest differs from cosign's (signatures blanked)\nhallmark:\n%s\ncosign:\n%s", got, want)
			}
			// Both tools' signatures verify over the same payloads.
			payloads := goldenPayloads(t, step.file)
			for i := range theirs {
				for who, s := range map[string]string{"cosign": theirs[i], "hallmark": ours[i]} {
					raw, _ := base64.StdEncoding.DecodeString(s)
					if err := verify.VerifySignature(pub, payloads[i], raw); err != nil {
						t.Errorf("%s signature %d: %v", who, i+1, err)
					}
				}
			}
		})
	}
}

// goldenPayloads are the payloads of the layers present after step.
func goldenPayloads(t *testing.T, step string) [][]byte {
	t.Helper()
	if step == "docker" {
		return [][]byte{readGolden(t, "docker.payload.json")}
	}
	var out [][]byte
	for _, s := range goldenSteps[:3] {
		out = append(out, readGolden(t, s.file+".payload.json"))
		if s.file == step {
			break
		}
	}
	return out
}

// TestLiveLayoutMatchesCosign repeats the comparison against the cosign
// binary of this run (so a cosign upgrade that changes the layout shows
// up): cosign and Hallmark sign the same image in two repositories of the
// same registry; everything but the signatures must be equal.
func TestLiveLayoutMatchesCosign(t *testing.T) {
	bin := peertest.Peer(t, "cosign")
	host := serveRegistry(t, "127.0.0.1:0")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cosign.key"), readTestdata(t, "cosign-v2.6.5.key"), 0o600)
	key, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	img := pushGoldenImage(t, host, false)
	h, _ := v1.NewHash(img.DigestStr())
	runCosign(t, bin, dir, testPassword, "sign", "--key", "cosign.key", "--tlog-upload=false", "-a", "env=prod", img.String())
	runCosign(t, bin, dir, testPassword, "sign", "--key", "cosign.key", "--tlog-upload=false", img.String())
	wantM, wantC, _ := sigArtifacts(t, img)

	// Hallmark writes into a copy of the repository without signatures.
	store, _ := name.NewRepository(host + "/golden/hallmark")
	for _, ann := range []map[string]string{{"env": "prod"}, nil} {
		body, _ := payload.New(img.Context().Name(), img.DigestStr(), ann).Bytes()
		sig, _ := KeySigner{Key: key}.Sign(context.Background(), body)
		if _, err := Attach(store, h, sig, AttachOptions{Verifier: key.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	gotM, gotC, _ := sigArtifacts(t, store.Digest(img.DigestStr()))
	if !bytes.Equal(gotC, wantC) {
		t.Errorf("config differs\nhallmark: %s\ncosign:   %s", gotC, wantC)
	}
	got, _ := withoutSignatures(t, gotM)
	want, _ := withoutSignatures(t, wantM)
	if got != want {
		t.Errorf("manifest differs\nhallmark:\n%s\ncosign:\n%s", got, want)
	}
}
