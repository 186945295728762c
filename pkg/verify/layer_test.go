package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const testDigest = "sha256:71b2d9e2a34d6f8a3ab6fb5bc5f7fe14a2e1b7a3a0a6a91b9f3b1b5f4b7d140f"

func testPayload(dig string, optional string) []byte {
	return []byte(`{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/group/app"},"image":{"docker-manifest-digest":"` + dig +
		`"},"type":"cosign container image signature"},"optional":` + optional + `}`)
}

func signLayer(t *testing.T, key *ecdsa.PrivateKey, payload []byte) Layer {
	t.Helper()
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return Layer{Digest: "sha256:layer", Payload: payload, Annotations: map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(sig)}}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyLayer(t *testing.T) {
	key, other := newKey(t), newKey(t)
	good := signLayer(t, key, testPayload(testDigest, `{"tag":"v1","com.gitlab.ci.commit.sha":"abc"}`))
	otherDigest := signLayer(t, key, testPayload("sha256:"+strings.Repeat("0", 64), `{"tag":"v1"}`))
	byOther := signLayer(t, other, good.Payload)
	tampered := good
	tampered.Payload = []byte(strings.Replace(string(good.Payload), `"v1"`, `"v2"`, 1))
	swapped := good
	swapped.Annotations = otherDigest.Annotations
	noSig := good
	noSig.Annotations = map[string]string{}
	garbage := good
	garbage.Annotations = map[string]string{AnnotationSignature: "%%%not base64"}
	truncated := good
	truncated.Annotations = map[string]string{AnnotationSignature: good.Annotations[AnnotationSignature][:20]}
	notJSON := signLayer(t, key, []byte("not json"))
	noDigest := signLayer(t, key, []byte(`{"critical":{"type":"cosign container image signature"}}`))
	nonString := signLayer(t, key, testPayload(testDigest, `{"tag":1}`))

	tests := []struct {
		name      string
		layer     Layer
		ann       map[string]string
		wantCheck string
		wantText  string
	}{
		{"valid", good, map[string]string{"tag": "v1", "com.gitlab.ci.commit.sha": "abc"}, "", ""},
		{"empty annotation matches missing key", good, map[string]string{"absent": ""}, "", ""},
		{"tampered payload", tampered, nil, CheckSignature, "does not verify"},
		{"swapped signature", swapped, nil, CheckSignature, "does not verify"},
		{"signature for another digest", otherDigest, nil, CheckDigestClaim, "not the image"},
		{"annotation mismatch", good, map[string]string{"tag": "v2"}, CheckAnnotation, `"tag" is "v1", want "v2"`},
		{"annotation missing", good, map[string]string{"pipeline": "7"}, CheckAnnotation, `"pipeline" is missing`},
		{"annotation not a string", nonString, map[string]string{"tag": "1"}, CheckAnnotation, "not the string"},
		{"wrong key", byOther, nil, CheckSignature, "wrong key"},
		{"no signature annotation", noSig, nil, CheckFormat, "no dev.cosignproject.cosign/signature"},
		{"garbage signature annotation", garbage, nil, CheckFormat, "not a base64"},
		{"truncated signature", truncated, nil, CheckSignature, "does not verify"},
		{"payload not JSON", notJSON, nil, CheckPayload, "not simple-signing JSON"},
		{"payload without digest", noDigest, nil, CheckPayload, "no critical.image.docker-manifest-digest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := VerifyLayer(tc.layer, testDigest, Options{PublicKey: &key.PublicKey, Annotations: tc.ann, IgnoreTlog: true})
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
			if ce.Check != tc.wantCheck || !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), "sha256:layer") {
				t.Fatalf("got check %q, error %q; want check %q containing %q and the layer digest", ce.Check, err, tc.wantCheck, tc.wantText)
			}
		})
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

func FuzzParseClaims(f *testing.F) {
	f.Add(testPayload(testDigest, `{"tag":"v1"}`))
	f.Add([]byte(`{"critical":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseClaims(b)
		if err == nil && c.Critical.Image.DockerManifestDigest == "" {
			t.Fatal("accepted a payload without a digest claim")
		}
	})
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
		l := Layer{Digest: "sha256:x", Payload: payload, Annotations: map[string]string{AnnotationSignature: sigB64}}
		v, err := VerifyLayer(l, testDigest, Options{PublicKey: &key.PublicKey, Annotations: map[string]string{"tag": "v1"}, IgnoreTlog: true})
		if err == nil && (v.Claims.Critical.Image.DockerManifestDigest != testDigest || v.Claims.Optional["tag"] != "v1") {
			t.Fatal("accepted a layer that does not satisfy the claims")
		}
	})
}
