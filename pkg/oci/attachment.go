package oci

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// Cosign's attachment layout: where signatures, attestations and sigstore
// bundles of an image are stored, and the annotations of their layers.
const (
	// SignatureSuffix and AttestationSuffix end the tags cosign stores an
	// image's signatures and attestations under.
	SignatureSuffix   = "sig"
	AttestationSuffix = "att"
	// SBOMSuffix ends the tag of an SBOM cosign attach sbom stored.
	SBOMSuffix = "sbom"
	// MaxSignatureLayers is the number of layers cosign reads from a
	// signature manifest; a manifest with more is refused.
	MaxSignatureLayers = 1000

	// Layer annotations of a cosign signature or attestation.
	AnnotationSignature     = "dev.cosignproject.cosign/signature"
	AnnotationCertificate   = "dev.sigstore.cosign/certificate"
	AnnotationChain         = "dev.sigstore.cosign/chain"
	AnnotationBundle        = "dev.sigstore.cosign/bundle"
	AnnotationPredicateType = "predicateType"

	// ArtifactTypeCosignSignature is the artifact type of a cosign
	// signature stored as an OCI 1.1 referrer (--registry-referrers-mode).
	ArtifactTypeCosignSignature = "application/vnd.dev.cosign.artifact.sig.v1+json"
	// BundleMediaTypePrefix starts the artifact and layer media types of a
	// sigstore bundle referrer (cosign v3, --new-bundle-format).
	BundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// BundleMediaTypeV03 is the media type of a v0.3 sigstore bundle.
	BundleMediaTypeV03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// AnnotationBundlePredicateType is the referrer manifest annotation
	// naming the bundle's predicate type.
	AnnotationBundlePredicateType = "dev.sigstore.bundle.predicateType"
	// AnnotationBundleContent is the referrer manifest annotation naming
	// what the bundle holds; cosign v3 writes BundleContentDSSE.
	AnnotationBundleContent = "dev.sigstore.bundle.content"
	BundleContentDSSE       = "dsse-envelope"
	// AnnotationCreated is the OCI creation time annotation (RFC 3339).
	AnnotationCreated = "org.opencontainers.image.created"
)

// AttachmentTag returns the tag cosign stores an attachment of digest d
// under in repo: "[prefix]<alg>-<hex>.<suffix>", suffix SignatureSuffix or
// AttestationSuffix.
func AttachmentTag(repo name.Repository, prefix string, d v1.Hash, suffix string) name.Tag {
	return repo.Tag(prefix + AttachmentTagName(digest.NewDigestFromEncoded(digest.Algorithm(d.Algorithm), d.Hex), suffix))
}

// AttachmentTagName is the tag (without prefix) cosign stores an
// attachment of digest d under: "<alg>-<hex>.<suffix>".
func AttachmentTagName(d digest.Digest, suffix string) string {
	return fmt.Sprintf("%s-%s.%s", d.Algorithm(), d.Encoded(), suffix)
}

// SignatureTag returns the tag cosign stores the signatures of digest d
// under in repo: "[prefix]<alg>-<hex>.sig".
func SignatureTag(repo name.Repository, prefix string, d v1.Hash) name.Tag {
	return AttachmentTag(repo, prefix, d, SignatureSuffix)
}

// SignedDigest returns the image digest a signature tag names:
// "<alg>-<hex>.sig" with alg sha256 or sha512 and the full lowercase hex
// of that algorithm (no tag prefix).
func SignedDigest(tag string) (digest.Digest, bool) {
	d, suffix, ok := AttachedDigest(tag)
	if !ok || suffix != SignatureSuffix {
		return "", false
	}
	return d, true
}

// AttachedDigest returns the image digest a signature or attestation tag
// names ("<alg>-<hex>.sig" or ".att", as SignedDigest) and its suffix.
func AttachedDigest(tag string) (digest.Digest, string, bool) {
	for _, suffix := range []string{SignatureSuffix, AttestationSuffix} {
		if d, ok := attachedDigest(tag, suffix); ok {
			return d, suffix, true
		}
	}
	return "", "", false
}

// AttachmentDigest is AttachedDigest for every cosign attachment tag:
// ".sig", ".att" and ".sbom".
func AttachmentDigest(tag string) (digest.Digest, string, bool) {
	if d, ok := attachedDigest(tag, SBOMSuffix); ok {
		return d, SBOMSuffix, true
	}
	return AttachedDigest(tag)
}

func attachedDigest(tag, suffix string) (digest.Digest, bool) {
	rest, ok := strings.CutSuffix(tag, "."+suffix)
	if !ok {
		return "", false
	}
	alg, hex, ok := strings.Cut(rest, "-")
	if !ok {
		return "", false
	}
	d := digest.Digest(alg + ":" + hex)
	if _, err := ParseDigest(string(d)); err != nil || strings.ToLower(hex) != hex {
		return "", false
	}
	return d, true
}

// IsBundleType reports whether an artifact or layer media type is a
// sigstore bundle's.
func IsBundleType(mediaType string) bool { return strings.HasPrefix(mediaType, BundleMediaTypePrefix) }
