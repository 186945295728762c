package sign

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// TestImage signs an image with Image as the CLI and the demo do: the
// signature verifies, signing again with the same key attaches nothing,
// NoUpload attaches nothing, and nothing is signed when Ready fails.
func TestImage(t *testing.T) {
	ctx := context.Background()
	img := pushGoldenImage(t, serveRegistry(t, "127.0.0.1:0"), false)
	h, _ := v1.NewHash(img.DigestStr())
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer := func() (Signer, error) { return KeySigner{Key: key}, nil }
	req := ImageRequest{Repo: img.Context(), Digest: h, DockerReference: img.Context().Name(), Annotations: map[string]string{"tag": "v1"}}
	var seen *Signature
	req.Signed = func(s *Signature) error { seen = s; return nil }

	res, err := Image(ctx, signer, req)
	if err != nil {
		t.Fatal(err)
	}
	if seen != res.Signature || res.Attached == nil || res.Attached.Duplicate || res.Attached.Layers != 1 {
		t.Fatalf("first signature: %+v, attached %+v", res.Signature, res.Attached)
	}
	k, _ := verify.NewKey(&key.PublicKey)
	vres, err := verify.Image(ctx, oci.NewClient(oci.ClientConfig{}), verify.Target{Image: img}, verify.NewTrust(nil, k),
		verify.Policy{IgnoreTlogUnsafe: true, Annotations: map[string]string{"tag": "v1"}})
	if err != nil || len(vres.Verified) != 1 {
		t.Fatalf("verify: %+v, %v", vres, err)
	}

	again, err := Image(ctx, signer, req)
	if err != nil || !again.Attached.Duplicate || again.Attached.Layers != 1 {
		t.Fatalf("the same key and payload again: %+v, %v", again.Attached, err)
	}
	req.NoUpload, req.Annotations = true, map[string]string{"tag": "v2"}
	if res, err := Image(ctx, signer, req); err != nil || res.Attached != nil || res.Signature == nil {
		t.Fatalf("NoUpload: %+v, %v", res, err)
	}

	req.NoUpload = false
	notFound := errors.New("image not found")
	called := false
	req.Ready = func() error { return notFound }
	if _, err := Image(ctx, func() (Signer, error) { called = true; return signer() }, req); !errors.Is(err, notFound) || called {
		t.Fatalf("Ready failed: %v (signer made: %v)", err, called)
	}
}

// TestAttestation attests an image as cosign attest does, and verifies it.
func TestAttestation(t *testing.T) {
	ctx := context.Background()
	img := pushGoldenImage(t, serveRegistry(t, "127.0.0.1:0"), false)
	h, _ := v1.NewHash(img.DigestStr())
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	res, err := Attestation(ctx, func() (Signer, error) { return KeySigner{Key: key}, nil }, AttestationRequest{Repo: img.Context(), Digest: h,
		Name: img.Context().Name(), PredicateType: payload.PredicateSLSA1, Predicate: []byte(`{"buildDefinition":{}}`)})
	if err != nil || res.Attached == nil {
		t.Fatalf("%+v, %v", res, err)
	}
	k, _ := verify.NewKey(&key.PublicKey)
	vres, err := verify.Attestations(ctx, oci.NewClient(oci.ClientConfig{}), verify.Target{Image: img}, payload.PredicateSLSA1,
		verify.NewTrust(nil, k), verify.Policy{IgnoreTlogUnsafe: true})
	if err != nil || len(vres.Verified) != 1 || vres.Verified[0].Statement.PredicateType != payload.PredicateSLSA1 {
		t.Fatalf("verify: %+v, %v", vres, err)
	}
	if _, err := Attestation(ctx, func() (Signer, error) { return signerOnly{}, nil }, AttestationRequest{Repo: img.Context(), Digest: h,
		Name: img.Context().Name(), PredicateType: payload.PredicateSLSA1}); err == nil {
		t.Fatal("a signer that cannot sign DSSE attested")
	}
}

// signerOnly signs payloads but not DSSE envelopes.
type signerOnly struct{}

func (signerOnly) Sign(context.Context, []byte) (*Signature, error) {
	return nil, errors.New("not used")
}
