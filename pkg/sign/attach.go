package sign

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"maps"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/verify"
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

// MaxSignatureLayers is the number of signature layers cosign reads; Attach
// refuses to grow a signature manifest beyond it.
const MaxSignatureLayers = verify.MaxSignatureLayers

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
		return name.Repository{}, fmt.Errorf("COSIGN_REPOSITORY %q is not a repository reference (want registry/path): %w", override, err)
	}
	return r, nil
}

// annotations returns the annotations cosign puts on a signature layer.
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

// AttachOptions tune Attach.
type AttachOptions struct {
	// Verifier, when set, is the signer's public key: an existing layer
	// with the same payload, the same other annotations and a signature
	// that verifies with it is a duplicate and nothing is pushed (cosign's
	// duplicate detection; randomized ECDSA signatures never repeat).
	Verifier crypto.PublicKey
	// TagPrefix is prepended to the signature tag (--attachment-tag-prefix).
	TagPrefix string
	// DockerMediaTypes writes a Docker schema 2 manifest and config instead
	// of OCI ones (cosign's COSIGN_DOCKER_MEDIA_TYPES=1).
	DockerMediaTypes bool
	// Remote are the registry client options (auth, transport, context).
	Remote []remote.Option
}

// AttachResult says what Attach did.
type AttachResult struct {
	Tag       name.Tag
	Digest    v1.Hash // digest of the signature manifest now under Tag
	Layers    int     // signature layers in it
	Duplicate bool    // the same signature was already attached; nothing pushed
}

// Attach appends sig as a new layer of the signature image stored under
// the ".sig" tag of subject in repo (creating it if absent) and pushes it,
// laid out exactly as cosign v2 does: an OCI manifest over go-containerregistry's
// empty image whose config gets one history entry and diff_id per layer,
// the payload as an uncompressed layer of media type SimpleSigningMediaType
// carrying the signature (and certificate, chain, bundle) as annotations.
func Attach(repo name.Repository, subject v1.Hash, sig *Signature, o AttachOptions) (*AttachResult, error) {
	tag := repo.Tag(fmt.Sprintf("%s%s-%s.%s", o.TagPrefix, subject.Algorithm, subject.Hex, SignatureTagSuffix))
	base, err := remote.Image(tag, o.Remote...)
	if err != nil {
		if !oci.IsNotFound(err) {
			return nil, fmt.Errorf("reading existing signatures %s: %w", tag, err)
		}
		base = emptySignatureImage(o.DockerMediaTypes)
	}
	m, err := base.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading existing signatures %s: %w (the tag does not hold a signature manifest; delete it or sign into another repository with COSIGN_REPOSITORY)", tag, err)
	}
	layer := static.NewLayer(sig.Payload, SimpleSigningMediaType)
	ld, err := layer.Digest()
	if err != nil {
		return nil, err
	}
	ann := sig.annotations()
	if o.Verifier != nil {
		for _, l := range m.Layers {
			if l.Digest == ld && l.MediaType == SimpleSigningMediaType && sameExceptSignature(l.Annotations, ann) && verifiesWith(o.Verifier, sig.Payload, l.Annotations) {
				d, err := base.Digest()
				if err != nil {
					return nil, err
				}
				return &AttachResult{Tag: tag, Digest: d, Layers: len(m.Layers), Duplicate: true}, nil
			}
		}
	}
	if len(m.Layers) >= MaxSignatureLayers {
		return nil, fmt.Errorf("%s already holds %d signatures, the most cosign reads; remove old ones (e.g. cosign clean) before signing again", tag, len(m.Layers))
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, Annotations: ann})
	if err != nil {
		return nil, err
	}
	if err := remote.Write(tag, img, o.Remote...); err != nil {
		return nil, fmt.Errorf("pushing signature to %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return &AttachResult{Tag: tag, Digest: d, Layers: len(m.Layers) + 1}, nil
}

// emptySignatureImage is the base cosign appends the first signature to.
func emptySignatureImage(docker bool) v1.Image {
	if docker {
		return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.DockerManifestSchema2), types.DockerConfigJSON)
	}
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

func sameExceptSignature(a, b map[string]string) bool {
	a, b = maps.Clone(a), maps.Clone(b)
	delete(a, AnnotationSignature)
	delete(b, AnnotationSignature)
	return maps.Equal(a, b)
}

func verifiesWith(pub crypto.PublicKey, payload []byte, ann map[string]string) bool {
	sig, err := base64.StdEncoding.DecodeString(ann[AnnotationSignature])
	return err == nil && len(sig) > 0 && verify.VerifySignature(pub, payload, sig) == nil
}
