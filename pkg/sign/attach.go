package sign

import (
	"encoding/base64"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Media types and annotation keys of cosign's signature layout.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	AnnotationSignature    = "dev.cosignproject.cosign/signature"
	AnnotationCertificate  = "dev.sigstore.cosign/certificate"
	AnnotationChain        = "dev.sigstore.cosign/chain"
	AnnotationBundle       = "dev.sigstore.cosign/bundle"
	SignatureTagSuffix     = "sig"
	AttestationTagSuffix   = "att"
)

// SignatureTag returns the tag cosign stores signatures of digest under in
// repo: "<alg>-<hex>.<suffix>".
func SignatureTag(repo name.Repository, digest v1.Hash, suffix string) name.Tag {
	return repo.Tag(fmt.Sprintf("%s-%s.%s", digest.Algorithm, digest.Hex, suffix))
}

// TargetRepository is where signatures of an image in repo are stored:
// repo itself, or the COSIGN_REPOSITORY override when set.
func TargetRepository(repo name.Repository, override string, opts ...name.Option) (name.Repository, error) {
	if override == "" {
		return repo, nil
	}
	r, err := name.NewRepository(override, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("COSIGN_REPOSITORY %q: %w", override, err)
	}
	return r, nil
}

// Layer returns the annotations cosign puts on a signature layer.
func (s *Signature) annotations() map[string]string {
	ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(s.Signature)}
	if s.Certificate != nil {
		ann[AnnotationCertificate] = string(s.Certificate)
		ann[AnnotationChain] = string(s.Chain)
	}
	if s.Bundle != nil {
		ann[AnnotationBundle] = string(s.Bundle)
	}
	return ann
}

// AttachResult says what Attach did.
type AttachResult struct {
	Tag       name.Tag
	Digest    v1.Hash // digest of the pushed signature manifest
	Duplicate bool    // an identical signature was already attached
}

// Attach appends sig as a new layer of the signature image stored under
// the ".sig" tag for subject in repo (creating it if absent) and pushes it,
// exactly as cosign lays signatures out. An identical signature (same
// payload and annotations) already present is not added twice.
func Attach(repo name.Repository, subject v1.Hash, sig *Signature, opts ...remote.Option) (*AttachResult, error) {
	tag := SignatureTag(repo, subject, SignatureTagSuffix)
	base, err := remote.Image(tag, opts...)
	if err != nil {
		if !oci.IsNotFound(err) {
			return nil, fmt.Errorf("reading existing signatures %s: %w", tag, err)
		}
		base = mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	}
	layer := static.NewLayer(sig.Payload, SimpleSigningMediaType)
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	ann := sig.annotations()
	if m, err := base.Manifest(); err == nil {
		for _, l := range m.Layers {
			if l.Digest == ld && sameAnnotations(l.Annotations, ann) {
				d, _ := base.Digest()
				return &AttachResult{Tag: tag, Digest: d, Duplicate: true}, nil
			}
		}
		if len(m.Layers) >= maxLayers {
			return nil, fmt.Errorf("%s already holds %d signatures, the most cosign reads; remove old ones first", tag, len(m.Layers))
		}
	} else {
		return nil, fmt.Errorf("reading existing signatures %s: %w", tag, err)
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, Annotations: ann})
	if err != nil {
		return nil, err
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return nil, fmt.Errorf("pushing signature to %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return &AttachResult{Tag: tag, Digest: d}, nil
}

// maxLayers is the number of signature layers cosign reads at most.
const maxLayers = 1000

func sameAnnotations(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
