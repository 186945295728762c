package cli_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// TestVerifyNegative breaks signatures in the ways the issue lists and
// checks that hallmark verify fails each with its own message naming the
// check and the signature, with cosign's exit code (and that cosign, too,
// rejects each).
func TestVerifyNegative(t *testing.T) {
	host, data := startDistributionData(t)
	hm, cs := newTools(t)
	hm.ok("generate-key-pair")
	key, err := sign.LoadPrivateKey(mustRead(t, hm.path("cosign.key")), []byte("e2e-password"))
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	os.WriteFile(hm.path("rsa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	hm.ok("generate-key-pair", "--output-key-prefix", "other")

	signed := func(repo string, ann ...string) (string, []byte) {
		img := pushImage(t, host, repo, "v1")
		args := []string{"sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false"}
		for _, a := range ann {
			args = append(args, "-a", a)
		}
		hm.ok(append(args, img.String())...)
		return img.String(), mustPayload(t, sigTag(t, img.String()))
	}

	t.Run("tampered payload in storage", func(t *testing.T) {
		img, p := signed("neg/tampered", "env=prod")
		blob := filepath.Join(data, "docker/registry/v2/blobs/sha256", digestHex(p)[:2], digestHex(p), "data")
		tampered := strings.Replace(string(p), `"prod"`, `"dev!"`, 1)
		if err := os.WriteFile(blob, []byte(tampered), 0o644); err != nil {
			t.Fatalf("tampering with the stored blob: %v", err)
		}
		r := hm.fail(12, verifyArgs("cosign.pub", img)...)
		want := "signature 1 of 1 (layer sha256:" + digestHex(p) + "): payload digest check failed: the payload (" +
			strconv.Itoa(len(tampered)) + " bytes) hashes to sha256:" + digestHex([]byte(tampered)) + ", not to its layer digest: it was altered in the registry's storage or in transit"
		if !strings.Contains(r.stderr, want) {
			t.Errorf("want %q in\n%s", want, r.stderr)
		}
		cs.fail(12, verifyArgs("cosign.pub", img)...)
	})

	t.Run("swapped signatures", func(t *testing.T) {
		img := pushImage(t, host, "neg/swapped", "v1")
		p1 := []byte(`{"critical":{"identity":{"docker-reference":"` + img.Context().Name() + `"},"image":{"docker-manifest-digest":"` + img.DigestStr() + `"},"type":"cosign container image signature"},"optional":{"n":"1"}}`)
		p2 := []byte(strings.Replace(string(p1), `"1"`, `"2"`, 1))
		s1, _ := sign.SignBytes(key, p1)
		s2, _ := sign.SignBytes(key, p2)
		pushSigLayers(t, img.String(), [][]byte{p1, p2}, []map[string]string{
			{sign.AnnotationSignature: b64(s2)}, {sign.AnnotationSignature: b64(s1)}})
		r := hm.fail(12, verifyArgs("cosign.pub", img.String())...)
		for _, want := range []string{
			"signature 1 of 2 (layer sha256:" + digestHex(p1) + "): signature check failed: the signature annotation is a signature over the payload of layer 2",
			"signature 2 of 2 (layer sha256:" + digestHex(p2) + "): signature check failed: the signature annotation is a signature over the payload of layer 1",
			"signatures were swapped between layers",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("want %q in\n%s", want, r.stderr)
			}
		}
		cs.fail(12, verifyArgs("cosign.pub", img.String())...)
	})

	t.Run("signature for another digest", func(t *testing.T) {
		img := pushImage(t, host, "neg/otherdigest", "v1")
		other := pushImage(t, host, "neg/otherdigest", "v2")
		p := []byte(`{"critical":{"identity":{"docker-reference":"` + img.Context().Name() + `"},"image":{"docker-manifest-digest":"` + other.DigestStr() + `"},"type":"cosign container image signature"},"optional":null}`)
		s, _ := sign.SignBytes(key, p)
		pushSigLayers(t, img.String(), [][]byte{p}, []map[string]string{{sign.AnnotationSignature: b64(s)}})
		r := hm.fail(12, verifyArgs("cosign.pub", img.String())...)
		want := `digest claim check failed: payload is for "` + other.DigestStr() + `", not the image ` + img.DigestStr()
		if !strings.Contains(r.stderr, want) {
			t.Errorf("want %q in\n%s", want, r.stderr)
		}
		cs.fail(12, verifyArgs("cosign.pub", img.String())...)
	})

	t.Run("annotation mismatch, wrong key, RSA key", func(t *testing.T) {
		img, p := signed("neg/keys", "env=prod", "team=core")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{verifyArgs("cosign.pub", "-a", "env=dev", "-a", "team=core", img), `annotation check failed: annotation "env" is "prod" in the signed payload, want "dev"`},
			{verifyArgs("other.pub", img), "signature check failed: ECDSA signature does not verify with the ECDSA P-256 key: it was made with another key than SHA256:"},
			{verifyArgs("rsa.pub", img), "signature check failed: the key is RSA 2048 but the signature is"},
		} {
			r := hm.fail(12, tc.args...)
			if !strings.Contains(r.stderr, "signature 1 of 1 (layer sha256:"+digestHex(p)+"): "+tc.want) {
				t.Errorf("want %q in\n%s", tc.want, r.stderr)
			}
			cs.fail(12, tc.args...)
		}
	})

	t.Run("truncated and garbage annotations", func(t *testing.T) {
		img := pushImage(t, host, "neg/garbage", "v1")
		p := []byte(`{"critical":{"identity":{"docker-reference":"` + img.Context().Name() + `"},"image":{"docker-manifest-digest":"` + img.DigestStr() + `"},"type":"cosign container image signature"},"optional":null}`)
		s, _ := sign.SignBytes(key, p)
		good := b64(s)
		variants := []map[string]string{
			{sign.AnnotationSignature: good[:len(good)/2]}, // cut mid-way
			{sign.AnnotationSignature: good[:20]},          // cut on a base64 boundary
			{sign.AnnotationSignature: "!!not-base64!!"},   // garbage
			{sign.AnnotationSignature: ""},                 // empty
			{"dev.cosignproject.cosign/signatur": good},    // misspelt key
			{sign.AnnotationSignature: good + "AAAA"},      // trailing bytes
		}
		payloads := make([][]byte, len(variants))
		for i := range payloads {
			payloads[i] = p
		}
		pushSigLayers(t, img.String(), payloads, variants)
		r := hm.fail(12, verifyArgs("cosign.pub", img.String())...)
		for _, want := range []string{
			"signature 1 of 6", "is not standard base64",
			"signature 2 of 6", "the signature is not an ASN.1 ECDSA signature (15 bytes, unknown format)",
			"signature 3 of 6", "annotation dev.cosignproject.cosign/signature is not standard base64 (illegal base64 data at input byte 0)",
			"signature 4 of 6", "annotation dev.cosignproject.cosign/signature is empty",
			"signature 5 of 6", "layer has no dev.cosignproject.cosign/signature annotation",
			"signature 6 of 6", "not an ASN.1 ECDSA signature",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("want %q in\n%s", want, r.stderr)
			}
		}
		cs.fail(12, verifyArgs("cosign.pub", img.String())...)
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// pushSigLayers writes a signature manifest with the given payloads and
// layer annotations under ref's .sig tag.
func pushSigLayers(t *testing.T, ref string, payloads [][]byte, anns []map[string]string) {
	t.Helper()
	var adds []mutate.Addendum
	for i, p := range payloads {
		adds = append(adds, mutate.Addendum{Layer: static.NewLayer(p, sign.SimpleSigningMediaType), Annotations: anns[i]})
	}
	img, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), adds...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTag(t, ref), img); err != nil {
		t.Fatal(err)
	}
}
