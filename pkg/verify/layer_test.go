package verify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

const testDigest = "sha256:71b2d9e2a34d6f8a3ab6fb5bc5f7fe14a2e1b7a3a0a6a91b9f3b1b5f4b7d140f"

func testPayload(dig string, optional string) []byte {
	return []byte(`{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/group/app"},"image":{"docker-manifest-digest":"` + dig +
		`"},"type":"cosign container image signature"},"optional":` + optional + `}`)
}

func signLayer(t testing.TB, key *ecdsa.PrivateKey, payload []byte) Layer {
	t.Helper()
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return Layer{Digest: layerDigest(payload), Payload: payload, Annotations: map[string]string{oci.AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}}
}

func layerDigest(p []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(p)) }

// withPayload returns l carrying payload p; consistent keeps the layer
// digest in step (a manifest rewritten along with the blob).
func withPayload(l Layer, p []byte, consistent bool) Layer {
	l.Payload = p
	if consistent {
		l.Digest = layerDigest(p)
	}
	return l
}

func withAnnotations(l Layer, kv ...string) Layer {
	l.Annotations = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l.Annotations[kv[i]] = kv[i+1]
	}
	return l
}

// newKey is a fresh ECDSA P-256 key.
var newKey = rekortest.NewKey

func TestVerifyLayer(t *testing.T) {
	key, other := newKey(t), newKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	good := signLayer(t, key, testPayload(testDigest, `{"tag":"v1","com.gitlab.ci.commit.sha":"abc"}`))
	goodSig := good.Annotations[oci.AnnotationSignature]
	otherDigest := signLayer(t, key, testPayload("sha256:"+strings.Repeat("0", 64), `{"tag":"v1"}`))
	tamperedPayload := []byte(strings.Replace(string(good.Payload), `"v1"`, `"v2"`, 1))
	edSigned := withAnnotations(good, oci.AnnotationSignature, base64.StdEncoding.EncodeToString(ed25519.Sign(edPriv, good.Payload)))
	notJSON := signLayer(t, key, []byte("not json"))
	noDigest := signLayer(t, key, []byte(`{"critical":{"type":"cosign container image signature"}}`))
	nonString := signLayer(t, key, testPayload(testDigest, `{"tag":1}`))

	ecdsaOpts := Options{PublicKey: &key.PublicKey, IgnoreTlog: true}
	tests := []struct {
		name      string
		layer     Layer
		opts      Options
		ann       map[string]string
		wantCheck string
		wantText  string
	}{
		{"valid", good, ecdsaOpts, map[string]string{"tag": "v1", "com.gitlab.ci.commit.sha": "abc"}, "", ""},
		{"tampered payload in storage", withPayload(good, tamperedPayload, false), ecdsaOpts, nil, CheckIntegrity,
			"hashes to " + layerDigest(tamperedPayload) + ", not to its layer digest: it was altered in the registry's storage or in transit"},
		{"tampered payload with rewritten manifest", withPayload(good, tamperedPayload, true), ecdsaOpts, nil, CheckSignature,
			"ECDSA signature does not verify with the ECDSA P-256 key: it was made with another key than SHA256:"},
		{"signature for another digest", otherDigest, ecdsaOpts, nil, CheckDigestClaim,
			`payload is for "sha256:` + strings.Repeat("0", 64) + `", not the image ` + testDigest},
		{"annotation mismatch", good, ecdsaOpts, map[string]string{"tag": "v2"}, CheckAnnotation,
			`annotation "tag" is "v1" in the signed payload, want "v2"`},
		{"annotation missing", good, ecdsaOpts, map[string]string{"pipeline": "7"}, CheckAnnotation,
			`annotation "pipeline" is not in the signed payload (want "7")`},
		{"empty value does not match a missing key", good, ecdsaOpts, map[string]string{"absent": ""}, CheckAnnotation,
			`annotation "absent" is not in the signed payload (want "")`},
		{"annotation not a string", nonString, ecdsaOpts, map[string]string{"tag": "1"}, CheckAnnotation,
			`annotation "tag" is the non-string JSON value 1 in the signed payload, want the string "1"`},
		{"two annotations differ", good, ecdsaOpts, map[string]string{"tag": "v2", "com.gitlab.ci.commit.sha": "def"}, CheckAnnotation,
			`annotation "com.gitlab.ci.commit.sha" is "abc" in the signed payload, want "def"; annotation "tag" is "v1" in the signed payload, want "v2"`},
		{"wrong key", signLayer(t, other, good.Payload), ecdsaOpts, nil, CheckSignature,
			"ECDSA signature does not verify with the ECDSA P-256 key: it was made with another key than SHA256:"},
		{"RSA key, ECDSA signature", good, Options{PublicKey: &rsaKey.PublicKey, IgnoreTlog: true}, nil, CheckSignature,
			"the key is RSA 2048 but the signature is " + fmt.Sprint(len(mustB64(goodSig))) + " bytes (ECDSA), not an RSA-2048 signature"},
		{"Ed25519 key, ECDSA signature", good, Options{PublicKey: edPub, IgnoreTlog: true}, nil, CheckSignature,
			"the key is Ed25519 but the signature is " + fmt.Sprint(len(mustB64(goodSig))) + " bytes (ECDSA), not a 64-byte Ed25519 signature"},
		{"ECDSA key, Ed25519 signature", edSigned, ecdsaOpts, nil, CheckSignature,
			"the key is ECDSA P-256 but the signature is not an ASN.1 ECDSA signature (64 bytes, looks like Ed25519)"},
		{"no signature annotation", withAnnotations(good), ecdsaOpts, nil, CheckFormat, "layer has no dev.cosignproject.cosign/signature annotation"},
		{"empty signature annotation", withAnnotations(good, oci.AnnotationSignature, ""), ecdsaOpts, nil, CheckFormat,
			"annotation dev.cosignproject.cosign/signature is empty"},
		{"garbage base64", withAnnotations(good, oci.AnnotationSignature, "%%%not base64"), ecdsaOpts, nil, CheckFormat,
			"annotation dev.cosignproject.cosign/signature is not standard base64 (illegal base64 data at input byte 0)"},
		{"base64 cut mid-quantum", withAnnotations(good, oci.AnnotationSignature, goodSig[:21]), ecdsaOpts, nil, CheckFormat,
			"is not standard base64"},
		{"truncated signature", withAnnotations(good, oci.AnnotationSignature, goodSig[:20]), ecdsaOpts, nil, CheckSignature,
			"the key is ECDSA P-256 but the signature is not an ASN.1 ECDSA signature (15 bytes, unknown format)"},
		{"garbage bundle when the log is required", withAnnotations(good, oci.AnnotationSignature, goodSig, oci.AnnotationBundle, "{garbage"),
			Options{PublicKey: &key.PublicKey}, nil, CheckTlog, "bundle annotation is not valid JSON"},
		{"payload not JSON", notJSON, ecdsaOpts, nil, CheckPayload, "payload is not simple-signing JSON"},
		{"payload without digest", noDigest, ecdsaOpts, nil, CheckPayload, "payload has no critical.image.docker-manifest-digest"},
		{"unsupported layer digest", func() Layer { l := good; l.Digest = "md5:abc"; return l }(), ecdsaOpts, nil, CheckIntegrity,
			`layer digest "md5:abc" is not a sha256 or sha512 digest`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Annotations = tc.ann
			v, err := VerifyLayer(tc.layer, testDigest, opts)
			if tc.wantCheck == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if v.Claims.Critical.Image.DockerManifestDigest != testDigest {
					t.Fatalf("claims digest = %q", v.Claims.Critical.Image.DockerManifestDigest)
				}
				return
			}
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *CheckError", err)
			}
			if ce.Check != tc.wantCheck || !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), tc.layer.Digest) {
				t.Fatalf("got check %q, error\n  %q\nwant check %q containing\n  %q\nand the layer digest", ce.Check, err, tc.wantCheck, tc.wantText)
			}
		})
	}
}

func mustB64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestCheckErrorText(t *testing.T) {
	e := &CheckError{Check: CheckAnnotation, Signature: "sha256:abc", Index: 2, Total: 3, Reason: "x"}
	if got, want := e.Error(), "signature 2 of 3 (layer sha256:abc): annotation check failed: x"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e.Index, e.Total = 0, 0
	if got, want := e.Error(), "signature sha256:abc: annotation check failed: x"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestSkipClaims(t *testing.T) {
	key := newKey(t)
	l := signLayer(t, key, testPayload("sha256:"+strings.Repeat("1", 64), `null`))
	if _, err := VerifyLayer(l, testDigest, Options{PublicKey: &key.PublicKey, SkipClaims: true, IgnoreTlog: true}); err != nil {
		t.Fatalf("SkipClaims should ignore the digest claim: %v", err)
	}
}

func TestParsePublicKeyErrors(t *testing.T) {
	for _, in := range []string{"", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"} {
		if _, err := ParsePublicKey([]byte(in)); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded", in)
		}
	}
}

func FuzzVerifyLayer(f *testing.F) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	p := testPayload(testDigest, `{"tag":"v1"}`)
	h := sha256.Sum256(p)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
	f.Add(p, base64.StdEncoding.EncodeToString(sig))
	f.Add([]byte("{}"), "")
	f.Fuzz(func(t *testing.T, payload []byte, sigB64 string) {
		l := Layer{Digest: layerDigest(payload), Payload: payload, Annotations: map[string]string{oci.AnnotationSignature: sigB64}}
		v, err := VerifyLayer(l, testDigest, Options{PublicKey: &key.PublicKey, Annotations: map[string]string{"tag": "v1"}, IgnoreTlog: true})
		if err == nil && (v.Claims.Critical.Image.DockerManifestDigest != testDigest || v.Claims.Optional["tag"] != "v1") {
			t.Fatal("accepted a layer that does not satisfy the claims")
		}
	})
}

// FuzzRekorBundle: a hostile bundle annotation never crashes the log check
// and is never accepted without a valid signed entry timestamp.
func FuzzRekorBundle(f *testing.F) {
	p := newPKI(f)
	payload := testPayload(testDigest, `{"tag":"v1"}`)
	good := p.layer(f, payload, p.logKey)
	f.Add(good.Annotations[oci.AnnotationBundle])
	f.Add(`{"SignedEntryTimestamp":"","Payload":{"body":"","integratedTime":0,"logIndex":0,"logID":""}}`)
	f.Add(`{}`)
	f.Add(`null`)
	opts := p.opts(Identity{Subject: p.identity, Issuer: p.issuer})
	f.Fuzz(func(t *testing.T, raw string) {
		l := good
		l.Annotations = maps.Clone(good.Annotations)
		l.Annotations[oci.AnnotationBundle] = raw
		v, err := VerifyLayer(l, testDigest, opts)
		if err == nil && (!v.TlogVerified || v.Bundle == nil || v.Bundle.Payload.LogID != p.logID) {
			t.Fatalf("accepted bundle %q", raw)
		}
	})
}

// TestBundleKeptWhenLogIgnored: with IgnoreTlog a bundle annotation is not
// checked but still printed, as cosign does; a malformed one is dropped.
func TestBundleKeptWhenLogIgnored(t *testing.T) {
	key := newKey(t)
	l := signLayer(t, key, testPayload(testDigest, `null`))
	l.Annotations[oci.AnnotationBundle] = `{"SignedEntryTimestamp":"AAAA","Payload":{"body":"e30=","integratedTime":1,"logIndex":7,"logID":"ab"}}`
	v, err := VerifyLayer(l, testDigest, Options{PublicKey: &key.PublicKey, IgnoreTlog: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.TlogVerified || v.Bundle == nil || v.Claims.Optional["Bundle"] == nil {
		t.Fatalf("bundle %+v verified=%v optional=%v", v.Bundle, v.TlogVerified, v.Claims.Optional)
	}
	b, _ := json.Marshal(v.Claims)
	if !strings.Contains(string(b), `"optional":{"Bundle":{"SignedEntryTimestamp":"AAAA","Payload":{"body":"e30=","integratedTime":1,"logIndex":7,"logID":"ab"}}}`) {
		t.Errorf("printed %s", b)
	}
	l.Annotations[oci.AnnotationBundle] = "{garbage"
	if v, err = VerifyLayer(l, testDigest, Options{PublicKey: &key.PublicKey, IgnoreTlog: true}); err != nil || v.Bundle != nil {
		t.Fatalf("malformed bundle with the log ignored: %+v, %v", v, err)
	}
}

// BenchmarkVerifyLayer is the per-signature CPU cost of a key-based check
// (payload digest, ECDSA P-256, claims, annotations), next to the bare
// ecdsa.VerifyASN1 it is bound by.
func BenchmarkVerifyLayer(b *testing.B) {
	key := newKey(b)
	l := signLayer(b, key, testPayload(testDigest, `{"tag":"v1","com.gitlab.ci.commit.sha":"abc"}`))
	opts := Options{PublicKey: &key.PublicKey, IgnoreTlog: true, Annotations: map[string]string{"tag": "v1"}}
	b.Run("VerifyLayer", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifyLayer(l, testDigest, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ecdsa.VerifyASN1", func(b *testing.B) {
		h := sha256.Sum256(l.Payload)
		sig := mustB64(l.Annotations[oci.AnnotationSignature])
		for b.Loop() {
			ecdsa.VerifyASN1(&key.PublicKey, h[:], sig)
		}
	})
}
