package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// testRegistry is go-containerregistry's registry implementation served
// over real HTTP on loopback.
func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

type fixture struct {
	t    *testing.T
	host string
	key  *ecdsa.PrivateKey
	cli  *oci.Client
}

func newFixture(t *testing.T) *fixture {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, host: testRegistry(t), key: key, cli: oci.NewClient(oci.ClientConfig{})}
}

func (f *fixture) image(repo string) name.Digest {
	f.t.Helper()
	img, _ := random.Image(64, 1)
	tag, _ := name.NewTag(f.host + "/" + repo + ":v1")
	if err := remote.Write(tag, img); err != nil {
		f.t.Fatal(err)
	}
	d, _ := img.Digest()
	return tag.Context().Digest(d.String())
}

func (f *fixture) payload(img name.Digest, ann map[string]string) []byte {
	b, err := payload.New(img.Context().Name(), img.DigestStr(), ann).Bytes()
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) sig(p []byte) string {
	h := sha256.Sum256(p)
	s, _ := ecdsa.SignASN1(rand.Reader, f.key, h[:])
	return base64.StdEncoding.EncodeToString(s)
}

// pushLayers writes a signature manifest with the given (payload,
// annotations) layers under img's .sig tag.
func (f *fixture) pushLayers(img name.Digest, layers ...mutate.Addendum) {
	f.t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	sigImg, err := mutate.Append(base, layers...)
	if err != nil {
		f.t.Fatal(err)
	}
	h, _ := v1.NewHash(img.DigestStr())
	if err := remote.Write(oci.SignatureTag(img.Context(), "", h), sigImg); err != nil {
		f.t.Fatal(err)
	}
}

func layer(p []byte, ann ...string) mutate.Addendum {
	a := map[string]string{}
	for i := 0; i+1 < len(ann); i += 2 {
		a[ann[i]] = ann[i+1]
	}
	return mutate.Addendum{Layer: static.NewLayer(p, sign.SimpleSigningMediaType), Annotations: a}
}

func (f *fixture) verify(ref name.Reference, ann map[string]string) (*verify.ImageResult, error) {
	trust, policy := f.keyTrust()
	policy.Annotations = ann
	return verify.Image(context.Background(), f.cli, verify.Target{Image: ref}, trust, policy)
}

// keyTrust trusts the fixture's key, without a log.
func (f *fixture) keyTrust() (*verify.Trust, verify.Policy) {
	k, err := verify.NewKey(&f.key.PublicKey)
	if err != nil {
		f.t.Fatal(err)
	}
	return verify.NewTrust(nil, k), verify.Policy{IgnoreTlogUnsafe: true}
}

func TestImage(t *testing.T) {
	f := newFixture(t)

	t.Run("signed with sign.Attach", func(t *testing.T) {
		img := f.image("app/attached")
		for _, v := range []string{"a", "b"} {
			p := f.payload(img, map[string]string{"n": v})
			s, _ := sign.KeySigner{Key: f.key}.Sign(context.Background(), p)
			h, _ := v1.NewHash(img.DigestStr())
			if _, err := sign.Attach(img.Context(), h, s, sign.AttachOptions{Verifier: &f.key.PublicKey}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := f.verify(img.Context().Tag("v1"), map[string]string{"n": "b"})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Verified) != 1 || len(res.Failed) != 1 || res.Digest.String() != img.DigestStr() {
			t.Fatalf("got %d verified, %d failed, digest %s", len(res.Verified), len(res.Failed), res.Digest)
		}
		if !strings.Contains(res.Failed[0].Error(), `signature 1 of 2 (layer sha256:`) {
			t.Errorf("failure does not place the signature: %v", res.Failed[0])
		}
	})

	t.Run("swapped signatures", func(t *testing.T) {
		img := f.image("app/swapped")
		p1, p2 := f.payload(img, map[string]string{"n": "1"}), f.payload(img, map[string]string{"n": "2"})
		f.pushLayers(img, layer(p1, sign.AnnotationSignature, f.sig(p2)), layer(p2, sign.AnnotationSignature, f.sig(p1)))
		_, err := f.verify(img, nil)
		if !errors.Is(err, verify.ErrNoMatching) {
			t.Fatalf("err = %v", err)
		}
		for _, want := range []string{
			"signature 1 of 2 (layer " + digestOf(p1) + "): signature check failed: the signature annotation is a signature over the payload of layer 2 (" + digestOf(p2) + "), not over this layer's payload: signatures were swapped between layers",
			"signature 2 of 2 (layer " + digestOf(p2) + "): signature check failed: the signature annotation is a signature over the payload of layer 1",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
	})

	t.Run("no signatures", func(t *testing.T) {
		img := f.image("app/unsigned")
		_, err := f.verify(img, nil)
		if !errors.Is(err, verify.ErrNoSignatures) || !strings.Contains(err.Error(), "the signature tag "+img.Context().Name()+":sha256-") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("image tag not found", func(t *testing.T) {
		ref, _ := name.NewTag(f.host + "/app/none:v9")
		_, err := f.verify(ref, nil)
		if !errors.Is(err, oci.ErrImageNotFound) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("missing blob", func(t *testing.T) {
		img := f.image("app/noblob")
		p := f.payload(img, nil)
		f.pushLayers(img, layer(p, sign.AnnotationSignature, f.sig(p)))
		// Re-point the tag at a manifest naming a blob that was never pushed.
		h, _ := v1.NewHash(img.DigestStr())
		tag := oci.SignatureTag(img.Context(), "", h)
		missing := fmt.Sprintf("sha256:%x", sha256.Sum256([]byte("never pushed")))
		raw := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":"` +
			sign.SimpleSigningMediaType + `","size":12,"digest":"` + missing + `","annotations":{"dev.cosignproject.cosign/signature":"` + f.sig(p) + `"}}]}`
		putManifest(t, tag, raw)
		_, err := f.verify(img, nil)
		if !errors.Is(err, verify.ErrNoMatching) || !strings.Contains(err.Error(), "signature layer format check failed: fetching signature payload "+missing+": blob not found") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("index under the signature tag", func(t *testing.T) {
		img := f.image("app/indexsig")
		h, _ := v1.NewHash(img.DigestStr())
		if err := remote.WriteIndex(oci.SignatureTag(img.Context(), "", h), empty.Index); err != nil {
			t.Fatal(err)
		}
		_, err := f.verify(img, nil)
		if !errors.Is(err, oci.ErrInvalidSignatureManifest) || !strings.Contains(err.Error(), "holds an image index") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("tag prefix and signature repository", func(t *testing.T) {
		img := f.image("app/elsewhere")
		p := f.payload(img, nil)
		h, _ := v1.NewHash(img.DigestStr())
		store, _ := name.NewRepository(f.host + "/sigs/store")
		s, _ := sign.KeySigner{Key: f.key}.Sign(context.Background(), p)
		if _, err := sign.Attach(store, h, s, sign.AttachOptions{TagPrefix: "x-"}); err != nil {
			t.Fatal(err)
		}
		trust, policy := f.keyTrust()
		res, err := verify.Image(context.Background(), f.cli, verify.Target{Image: img, SignatureRepo: &store, TagPrefix: "x-"}, trust, policy)
		if err != nil || res.SignatureTag.String() != store.Name()+":x-sha256-"+h.Hex+".sig" {
			t.Fatalf("res %+v, err %v", res, err)
		}
		if _, err := f.verify(img, nil); !errors.Is(err, verify.ErrNoSignatures) {
			t.Fatalf("without the override: %v", err)
		}
	})
}

func digestOf(p []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(p)) }

func putManifest(t *testing.T, tag name.Tag, raw string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+tag.RegistryStr()+"/v2/"+tag.RepositoryStr()+"/manifests/"+tag.TagStr(), strings.NewReader(raw))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest: %s", resp.Status)
	}
}

// TestMixedLayoutCounts: an image signed in both layouts is verified in
// both (or the one asked for), each signature against the whole policy:
// -a passes on the signature that carries the annotation only, and the
// counts say what each layout held.
func TestMixedLayoutCounts(t *testing.T) {
	f := newFixture(t)
	img := f.image("group/mixed")
	h, _ := v1.NewHash(img.DigestStr())
	signer := func() (sign.Signer, error) { return sign.KeySigner{Key: f.key}, nil }
	for _, bundle := range []bool{false, true} {
		tag := map[bool]string{false: "legacy", true: "bundle"}[bundle]
		if _, err := sign.Image(context.Background(), signer, sign.ImageRequest{Repo: img.Context(), Digest: h, DockerReference: img.Context().Name(),
			Annotations: map[string]string{"tag": tag}, Bundle: bundle}); err != nil {
			t.Fatal(err)
		}
	}
	trust, policy := f.keyTrust()
	one := verify.LayoutCount{Read: true, Found: 1, Verified: 1}
	none := verify.LayoutCount{Read: true, Found: 1}
	for _, tc := range []struct {
		layout          verify.Layout
		tag             string
		legacy, bundles verify.LayoutCount
		fail            bool
	}{
		{verify.LayoutAll, "", one, one, false},
		{verify.LayoutAll, "legacy", one, none, false},
		{verify.LayoutAll, "bundle", none, one, false},
		{verify.LayoutAll, "other", none, none, true},
		{verify.LayoutBundle, "legacy", verify.LayoutCount{}, none, true},
		{verify.LayoutLegacy, "bundle", none, verify.LayoutCount{}, true},
		{verify.LayoutLegacy, "legacy", one, verify.LayoutCount{}, false},
	} {
		p := policy
		if tc.tag != "" {
			p.Annotations = map[string]string{"tag": tc.tag}
		}
		res, err := verify.Image(context.Background(), f.cli, verify.Target{Image: img, Layout: tc.layout}, trust, p)
		if (err != nil) != tc.fail || res.Legacy != tc.legacy || res.Bundles != tc.bundles {
			t.Errorf("layout %d -a tag=%s: legacy %+v bundles %+v, err %v", tc.layout, tc.tag, res.Legacy, res.Bundles, err)
			continue
		}
		if tc.fail && (!errors.Is(err, verify.ErrNoMatching) || !strings.Contains(err.Error(), "checked (")) {
			t.Errorf("layout %d -a tag=%s: %v", tc.layout, tc.tag, err)
		}
		for _, v := range res.Verified {
			if tc.tag != "" && v.Annotations["tag"] != tc.tag {
				t.Errorf("layout %d -a tag=%s verified a signature of tag=%s", tc.layout, tc.tag, v.Annotations["tag"])
			}
		}
	}
}
