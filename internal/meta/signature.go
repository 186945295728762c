package meta

import (
	"slices"

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
