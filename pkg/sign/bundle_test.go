package sign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/internal/peertest"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// serveRegistryReferrers serves go-containerregistry's registry with the
// referrers API on (serveRegistry's has none: referrers then live in the
// referrers tag schema's index).
func serveRegistryReferrers(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// referrer reads the one bundle referrer of img: its manifest and bundle.
func referrer(t *testing.T, img name.Digest) (manifest, bundleJSON []byte) {
	t.Helper()
	h, _ := v1.NewHash(img.DigestStr())
	bs, err := oci.NewClient(oci.ClientConfig{}).BundleReferrers(context.Background(), img.Context(), h)
	if err != nil || len(bs) != 1 || bs[0].Err != nil {
		t.Fatalf("bundle referrers of %s: %+v %v", img, bs, err)
	}
	d, err := remote.Get(img.Context().Digest(bs[0].Manifest))
	if err != nil {
		t.Fatal(err)
	}
	return d.Manifest, bs[0].Raw
}

// withoutVolatile blanks, in the raw bytes, what differs between two
// signers of the same image with the same key: the bundle layer's digest
// and size, the creation time (checked to be RFC 3339) and the signature.
func withoutVolatile(t *testing.T, manifest, bundleJSON []byte) (string, string) {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("referrer manifest %s: %v", manifest, err)
	}
	created := m.Annotations[oci.AnnotationCreated]
	if _, err := time.Parse(time.RFC3339, created); err != nil {
		t.Errorf("created annotation: %v", err)
	}
	l := m.Layers[0]
	ms := strings.NewReplacer(`"`+created+`"`, `"T"`, l.Digest.String(), "D", fmt.Sprintf(`"size":%d,`, l.Size), `"size":0,`).Replace(string(manifest))
	b, err := bundle.Parse(bundleJSON)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(b.DSSEEnvelope.Signatures[0].Sig)
	return ms, strings.Replace(string(bundleJSON), sig, "SIG", 1)
}

// TestBundleLayoutMatchesCosign3: real cosign v3 and Hallmark sign the
// same image with the same key (no log) in two repositories, once with
// annotations and once without, on a registry without the referrers API
// (the referrers tag schema) and on one with it. The referrer manifests
// are the same but for the creation time and the bundle digest; the
// bundles are the same bytes but for the signature.
func TestBundleLayoutMatchesCosign3(t *testing.T) {
	bin := peertest.Peer(t, "cosign3")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cosign.key"), readTestdata(t, "cosign-v2.6.5.key"), 0o600)
	key, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	for _, api := range []bool{false, true} {
		host := serveRegistry(t, "127.0.0.1:0")
		if api {
			host = serveRegistryReferrers(t)
		}
		for i, ann := range []map[string]string{{"env": "prod", "html": "<a&b>"}, nil} {
			img := pushGoldenImage(t, host, false)
			theirRepo, _ := name.NewRepository(host + "/golden/cosign" + string(rune('a'+i)))
			if err := remote.Write(theirRepo.Tag("v1"), goldenImage(t, false)); err != nil {
				t.Fatal(err)
			}
			theirs := theirRepo.Digest(img.DigestStr())
			args := []string{"sign", "-y", "--key", "cosign.key", "--tlog-upload=false", "--use-signing-config=false"}
			for k, v := range ann {
				args = append(args, "-a", k+"="+v)
			}
			runCosign(t, bin, dir, testPassword, append(args, theirs.String())...)
			tm, tb := referrer(t, theirs)
			wantM, wantB := withoutVolatile(t, tm, tb)

			repo, _ := name.NewRepository(host + "/golden/hallmark" + string(rune('a'+i)))
			if err := remote.Write(repo.Tag("v1"), goldenImage(t, false)); err != nil {
				t.Fatal(err)
			}
			ours := repo.Digest(img.DigestStr())
			h, _ := v1.NewHash(img.DigestStr())
			res, err := Image(context.Background(), func() (Signer, error) { return KeySigner{Key: key}, nil },
				ImageRequest{Repo: repo, Digest: h, Annotations: ann, Bundle: true})
			if err != nil {
				t.Fatal(err)
			}
			om, ob := referrer(t, ours)
			gotM, gotB := withoutVolatile(t, om, ob)
			if gotM != wantM {
				t.Errorf("referrers API %v, annotations %v: manifest differs\nhallmark: %s\ncosign:   %s", api, ann, gotM, wantM)
			}
			if gotB != wantB {
				t.Errorf("referrers API %v, annotations %v: bundle differs\nhallmark: %s\ncosign:   %s", api, ann, gotB, wantB)
			}
			if res.Attached.Referrer.DigestStr() == "" || !bytes.Equal(res.Signature.Sigstore, []byte(strings.Replace(gotB, "SIG", base64.StdEncoding.EncodeToString(res.Signature.RawSignature), 1))) {
				t.Errorf("the result does not name the referrer and bundle written: %+v", res.Attached)
			}
		}
	}
}

// TestImageBundle: a bundle signed with a key verifies (bundle layout,
// both layouts) with its annotations; the legacy layout alone finds
// nothing; an attestation bundle verifies as one; nothing is uploaded
// with NoUpload, and nothing signed when the image is missing.
func TestImageBundle(t *testing.T) {
	ctx := context.Background()
	img := pushGoldenImage(t, serveRegistryReferrers(t), false)
	h, _ := v1.NewHash(img.DigestStr())
	signer := func() (Signer, error) { return KeySigner{Key: testKey(t)}, nil }
	res, err := Image(ctx, signer, ImageRequest{Repo: img.Context(), Digest: h, Annotations: map[string]string{"tag": "v1"}, Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := verify.NewKey(testKey(t).Public())
	cli := oci.NewClient(oci.ClientConfig{})
	policy := verify.Policy{IgnoreTlogUnsafe: true, Annotations: map[string]string{"tag": "v1"}}
	for _, l := range []verify.Layout{verify.LayoutAll, verify.LayoutBundle} {
		vres, err := verify.Image(ctx, cli, verify.Target{Image: img, Layout: l}, verify.NewTrust(nil, k), policy)
		if err != nil || len(vres.Verified) != 1 || vres.Verified[0].Kind != verify.KindBundle || vres.Bundles != (verify.LayoutCount{Read: true, Found: 1, Verified: 1}) {
			t.Fatalf("layout %d: %+v, %v", l, vres, err)
		}
	}
	if _, err := verify.Image(ctx, cli, verify.Target{Image: img, Layout: verify.LayoutLegacy}, verify.NewTrust(nil, k), policy); err == nil ||
		!strings.Contains(err.Error(), "only the legacy layout was read") {
		t.Fatalf("legacy layout only: %v", err)
	}
	if res.Attached.Tag != (name.Tag{}) || res.Signature.Sigstore == nil {
		t.Fatalf("attached %+v", res.Attached)
	}

	att, err := Attestation(ctx, signer, AttestationRequest{Repo: img.Context(), Digest: h, Name: img.Context().Name(),
		PredicateType: payload.PredicateSLSA1, Predicate: []byte(`{"buildDefinition":{}}`), Bundle: true})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := remote.Get(att.Attached.Referrer)
	if !strings.Contains(string(m.Manifest), `"dev.sigstore.bundle.predicateType":"`+payload.PredicateSLSA1+`"`) {
		t.Errorf("attestation referrer: %s", m.Manifest)
	}
	vres, err := verify.Attestations(ctx, cli, verify.Target{Image: img}, payload.PredicateSLSA1, verify.NewTrust(nil, k), verify.Policy{IgnoreTlogUnsafe: true})
	if err != nil || len(vres.Verified) != 1 || vres.Bundles.Verified != 1 || vres.Legacy.Found != 0 {
		t.Fatalf("attestation: %+v, %v", vres, err)
	}
	// The image signature bundle is not counted among its attestations of
	// that type.
	if vres.Bundles.Found != 1 {
		t.Errorf("bundles found: %+v", vres.Bundles)
	}

	if r, err := Image(ctx, signer, ImageRequest{Repo: img.Context(), Digest: h, Bundle: true, NoUpload: true}); err != nil || r.Attached != nil || r.Signature.Sigstore == nil {
		t.Fatalf("NoUpload: %+v %v", r, err)
	}
	missing, _ := v1.NewHash("sha256:" + strings.Repeat("0", 64))
	if _, err := Image(ctx, signer, ImageRequest{Repo: img.Context(), Digest: missing, Bundle: true}); err == nil || !strings.Contains(err.Error(), "image tag not found") {
		t.Fatalf("missing image: %v", err)
	}
}

// testKey is the key of testdata/cosign-v2.6.5.key.
func testKey(t *testing.T) crypto.Signer {
	t.Helper()
	key, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	return key
}
