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

// attachmentTagRE is cosign's attachment tag for a digest's full hex
// ("<alg>-<hex>.sig", ".att" for attestations, ".sbom"), compiled on first
// use, not at package init: every hallmark process (a CLI run too) would
// otherwise pay for it at start-up.
var attachmentTagRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.(sig|att|sbom)$`)
})

// AttachmentTagSubject says whether tag is a cosign attachment tag and
// for which image, and its kind: "sig", "att" or "sbom". It is the one
// rule for these tags.
func AttachmentTagSubject(tag string) (subject digest.Digest, kind string, ok bool) {
	g := attachmentTagRE().FindStringSubmatch(tag)
	if g == nil {
		return "", "", false
	}
	return digest.Digest(g[1] + ":" + g[2]), g[3], true
}

// SignatureSubject says whether m, known under tags, is a signature
// manifest and for which image: a "<alg>-<hex>.sig" tag names the image, a
// referrer whose artifact type is a cosign signature or a sigstore bundle
// has it as its subject. The indexer and the audit log both use this rule.
func (m *Manifest) SignatureSubject(tags []string) (digest.Digest, bool) {
	for _, t := range tags {
		if d, kind, ok := AttachmentTagSubject(t); ok && kind == "sig" {
			return d, true
		}
	}
	if m.Subject != "" && (m.ArtifactType == ArtifactTypeCosignSig || strings.HasPrefix(m.ArtifactType, BundleTypePrefix)) {
		return m.Subject, true
	}
	return "", false
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
		if d, _, ok := AttachmentTagSubject(t); ok {
			return d, true
		}
	}
	return "", false
}
