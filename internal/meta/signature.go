package meta

import (
	"regexp"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// SignatureSubject says whether m, known under tags, is a signature (or
// attestation) manifest and for which image: a "<alg>-<hex>.sig" or
// ".att" tag names the image, a referrer whose artifact type is a cosign
// signature or a sigstore bundle has it as its subject. The indexer and
// the audit log both use this rule.
func (m *Manifest) SignatureSubject(tags []string) (digest.Digest, bool) {
	s := m.SignatureSubjects(tags)
	if len(s) == 0 {
		return "", false
	}
	return s[0], true
}

// SignatureSubjects is every image m signs under tags (SignatureSubject's
// rule): one manifest may carry the ".sig" tags of several images.
func (m *Manifest) SignatureSubjects(tags []string) []digest.Digest {
	var out []digest.Digest
	for _, t := range tags {
		if d, _, ok := oci.AttachedDigest(t); ok && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	if len(out) == 0 && m.Subject != "" && (m.ArtifactType == oci.ArtifactTypeCosignSignature || oci.IsBundleType(m.ArtifactType)) {
		out = append(out, m.Subject)
	}
	return out
}

// AttachmentSubject says whether m, known under tags, is attached to an
// image rather than an image itself, and to which: a cosign attachment
// (signature, attestation or SBOM under its "<alg>-<hex>.sig|att|sbom"
// tag) or any referrer (a manifest with a subject: sigstore bundles,
// SBOMs, ...). Signature enforcement never gates them (require-signature
// asks for signatures of images, and they are how an image gets them),
// and a quarantine of the image covers them.
func (m *Manifest) AttachmentSubject(tags []string) (digest.Digest, bool) {
	if m.Subject != "" {
		return m.Subject, true
	}
	for _, t := range tags {
		if d, _, ok := oci.AttachmentDigest(t); ok {
			return d, true
		}
	}
	return "", false
}

// artifactTagRE matches the tags cosign attaches to an image digest
// (<alg>-<hex>.sig, .att, .sbom, ...) and the referrers API's fallback tag
// (<alg>-<hex>), compiled on first use.
var artifactTagRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})(\.[a-z0-9]+)?$`)
})

// IsArtifactTag reports whether tag names an attachment of another image
// (a signature, attestation or SBOM tag, or a referrers fallback tag)
// rather than an image: consoles hide such tags by default.
func IsArtifactTag(tag string) bool { return artifactTagRE().MatchString(tag) }
