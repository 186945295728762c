package sign

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// ImageRequest is one image to sign, as cosign sign signs it.
type ImageRequest struct {
	// Repo is where the signature is stored: the image's repository, or
	// the COSIGN_REPOSITORY override (TargetRepository).
	Repo   name.Repository
	Digest v1.Hash
	// DockerReference is written in the payload: the image's repository,
	// or --sign-container-identity.
	DockerReference string
	// Annotations are signed in the payload's optional map.
	Annotations map[string]string
	// NoUpload signs without attaching (cosign's --upload=false).
	NoUpload bool
	// Bundle signs and attaches as cosign v3 does (--new-bundle-format):
	// a sigstore bundle referrer instead of a layer of the .sig tag.
	Bundle bool
	// ImageRepo is the image's own repository, where a bundle's subject
	// is read (default Repo).
	ImageRepo *name.Repository
	Attach    AttachOptions
	// Ready, when set, must return nil before anything is signed or
	// logged (e.g. the image was found in the registry).
	Ready func() error
	// Signed, when set, sees the signature before it is attached.
	Signed func(*Signature) error
}

// SignedImage is what Image did.
type SignedImage struct {
	Signature *Signature
	Attached  *AttachResult // nil with NoUpload
}

// subject is the image as a bundle's subject.
func subject(repo name.Repository, imageRepo *name.Repository, d v1.Hash) name.Digest {
	if imageRepo != nil {
		repo = *imageRepo
	}
	return repo.Digest(d.String())
}

// Image signs one image as cosign sign does: it builds the simple-signing
// payload, has signer sign (and log) it, and attaches the signature as a
// new layer of the image's .sig manifest. The registry work that needs
// only the payload (reading the existing signatures, uploading the payload
// and config blobs) runs while the signer is made, the payload signed and
// the signature logged. signer may block (a key being decrypted, a
// certificate being issued); a key-based signature already attached is
// not attached twice.
//
// With req.Bundle it signs as cosign v3 does instead: a DSSE envelope over
// an in-toto statement v1 about the image (predicate type
// payload.CosignSignPredicateType, the annotations on its subject, an
// empty predicate), logged as a dsse entry, attached as a sigstore bundle
// referrer (BundleAttachment).
func Image(ctx context.Context, signer func() (Signer, error), req ImageRequest) (*SignedImage, error) {
	if req.Bundle {
		ann := make(map[string]any, len(req.Annotations))
		for k, v := range req.Annotations {
			ann[k] = v
		}
		st := payload.NewStatement(payload.CosignSignPredicateType, json.RawMessage("{}"),
			payload.Subject{Digest: map[string]string{req.Digest.Algorithm: req.Digest.Hex}, Annotations: ann})
		return signBundle(ctx, signer, req.Ready, req.Signed, st, bundleTarget{repo: req.Repo, imageRepo: req.ImageRepo, digest: req.Digest,
			noUpload: req.NoUpload, attach: req.Attach})
	}
	body, err := payload.New(req.DockerReference, req.Digest.String(), req.Annotations).Bytes()
	if err != nil {
		return nil, err
	}
	var prepared chan *Attachment
	if !req.NoUpload {
		prepared = make(chan *Attachment, 1)
		go func() { prepared <- PrepareAttach(ctx, req.Repo, req.Digest, body, req.Attach) }()
	}
	sig, s, err := signWhenReady(ctx, signer, req.Ready, func(ctx context.Context, s Signer) (*Signature, error) {
		sig, err := s.Sign(ctx, body)
		if err != nil {
			return nil, fmt.Errorf("signing %s: %w", req.Digest, err)
		}
		return sig, nil
	})
	if err == nil && req.Signed != nil {
		err = req.Signed(sig)
	}
	if err != nil {
		return nil, err // the blobs uploaded meanwhile are content addressed: harmless
	}
	out := &SignedImage{Signature: sig}
	if req.NoUpload {
		return out, nil
	}
	var verifier crypto.PublicKey
	if ks, ok := s.(KeySigner); ok {
		verifier = ks.PublicKey()
	}
	if out.Attached, err = (<-prepared).Commit(sig, verifier); err != nil {
		return nil, err
	}
	return out, nil
}

// signWhenReady waits for ready, then for the signer, and signs with it.
func signWhenReady(ctx context.Context, signer func() (Signer, error), ready func() error, sign func(context.Context, Signer) (*Signature, error)) (*Signature, Signer, error) {
	if ready != nil {
		if err := ready(); err != nil {
			return nil, nil, err
		}
	}
	s, err := signer()
	if err != nil {
		return nil, nil, err
	}
	sig, err := sign(ctx, s)
	return sig, s, err
}

// AttestationRequest is one image to attest, as cosign attest does.
type AttestationRequest struct {
	// Repo is where the attestation is stored (TargetRepository).
	Repo   name.Repository
	Digest v1.Hash
	// Name is the statement's subject name: the image's repository.
	Name string
	// PredicateType and Predicate make the in-toto statement.
	PredicateType string
	Predicate     json.RawMessage
	// Replace drops earlier attestations of the same predicate type (in
	// the legacy layout; bundles are never replaced).
	Replace  bool
	NoUpload bool
	// Bundle attaches the attestation as cosign v3 does: a sigstore bundle
	// referrer annotated with the predicate type.
	Bundle bool
	// ImageRepo is the image's own repository (default Repo).
	ImageRepo *name.Repository
	Attach    AttachOptions
	// Signed, when set, sees the signed envelope before it is attached.
	Signed func(*Signature) error
}

// Attestation attests one image as cosign attest does: an in-toto
// statement v1 about the image, signed (and logged) as a DSSE envelope by
// signer, attached as a new layer of the image's .att manifest.
func Attestation(ctx context.Context, signer func() (Signer, error), req AttestationRequest) (*SignedImage, error) {
	st := payload.NewStatement(req.PredicateType, req.Predicate, payload.Subject{Name: req.Name, Digest: map[string]string{req.Digest.Algorithm: req.Digest.Hex}})
	if req.Bundle {
		return signBundle(ctx, signer, nil, req.Signed, st, bundleTarget{repo: req.Repo, imageRepo: req.ImageRepo, digest: req.Digest,
			noUpload: req.NoUpload, attach: req.Attach})
	}
	body, err := st.Bytes()
	if err != nil {
		return nil, err
	}
	sig, _, err := signWhenReady(ctx, signer, nil, signStatement(body))
	if err == nil && req.Signed != nil {
		err = req.Signed(sig)
	}
	if err != nil {
		return nil, err
	}
	out := &SignedImage{Signature: sig}
	if req.NoUpload {
		return out, nil
	}
	if out.Attached, err = AttachAttestation(req.Repo, req.Digest, sig, req.PredicateType, req.Replace, req.Attach); err != nil {
		return nil, err
	}
	return out, nil
}

// signStatement signs an in-toto statement as a DSSE envelope.
func signStatement(body []byte) func(context.Context, Signer) (*Signature, error) {
	return func(ctx context.Context, s Signer) (*Signature, error) {
		as, ok := s.(AttestationSigner)
		if !ok {
			return nil, fmt.Errorf("signer %T cannot sign attestations", s)
		}
		return as.SignDSSE(ctx, payload.InTotoPayloadType, body)
	}
}

// bundleTarget is where signBundle attaches.
type bundleTarget struct {
	repo      name.Repository
	imageRepo *name.Repository
	digest    v1.Hash
	noUpload  bool
	attach    AttachOptions
}

// signBundle signs st as a DSSE envelope, makes the sigstore bundle
// (Signature.Sigstore) and attaches it as a referrer of the image; the
// image's descriptor is read and the config blob uploaded while the
// statement is signed and logged.
func signBundle(ctx context.Context, signer func() (Signer, error), ready func() error, signed func(*Signature) error, st payload.Statement, t bundleTarget) (*SignedImage, error) {
	body, err := st.Bytes()
	if err != nil {
		return nil, err
	}
	var prepared chan *BundleAttachment
	if !t.noUpload {
		prepared = make(chan *BundleAttachment, 1)
		go func() { prepared <- PrepareBundle(ctx, t.repo, subject(t.repo, t.imageRepo, t.digest), t.attach) }()
	}
	sig, s, err := signWhenReady(ctx, signer, ready, signStatement(body))
	if err == nil {
		sig.Sigstore, err = sig.SigstoreBundle(PublicKeyOf(s))
	}
	if err == nil && signed != nil {
		err = signed(sig)
	}
	if err != nil {
		return nil, err
	}
	out := &SignedImage{Signature: sig}
	if t.noUpload {
		return out, nil
	}
	if out.Attached, err = (<-prepared).Commit(sig.Sigstore, st.PredicateType, time.Now()); err != nil {
		return nil, err
	}
	return out, nil
}
