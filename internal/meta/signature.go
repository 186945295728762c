package meta

import (
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// SignatureSubject says whether m, known under tags, is a signature (or
// attestation) manifest and for which image: a "<alg>-<hex>.sig" or
// ".att" tag names the image, a referrer whose artifact type is a cosign
// signature or a sigstore bundle has it as its subject. The indexer and
// the audit log both use this rule.
func (m *Manifest) SignatureSubject(tags []string) (digest.Digest, bool) {
	for _, t := range tags {
		if d, _, ok := oci.AttachedDigest(t); ok {
			return d, true
		}
	}
	if m.Subject != "" && (m.ArtifactType == oci.ArtifactTypeCosignSignature || oci.IsBundleType(m.ArtifactType)) {
		return m.Subject, true
	}
	return "", false
}
