package meta

import (
	"regexp"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Artifact types that mark a referrer as a signature.
const (
	ArtifactTypeCosignSig = "application/vnd.dev.cosign.artifact.sig.v1+json"
	BundleTypePrefix      = "application/vnd.dev.sigstore.bundle"
)

// signatureTagRE is cosign's signature tag for a digest's full hex,
// compiled on first use, not at package init: every hallmark process (a
// CLI run too) would otherwise pay for it at start-up.
var signatureTagRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.sig$`)
})

// SignatureSubject says whether m, known under tags, is a signature
// manifest and for which image: a "<alg>-<hex>.sig" tag names the image, a
// referrer whose artifact type is a cosign signature or a sigstore bundle
// has it as its subject. The indexer and the audit log both use this rule.
func (m *Manifest) SignatureSubject(tags []string) (digest.Digest, bool) {
	for _, t := range tags {
		if g := signatureTagRE().FindStringSubmatch(t); g != nil {
			return digest.Digest(g[1] + ":" + g[2]), true
		}
	}
	if m.Subject != "" && (m.ArtifactType == ArtifactTypeCosignSig || strings.HasPrefix(m.ArtifactType, BundleTypePrefix)) {
		return m.Subject, true
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
