package meta_test

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// The audit log calls a push "sign" exactly when the indexer treats the
// manifest as a signature: both ask SignatureSubject. Require-signature
// never gates what is attached to an image, and a quarantine covers it:
// both ask AttachmentSubject.
func TestSignatureSubject(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	subj := digest.Digest("sha256:" + hex64)
	for _, tc := range []struct {
		name          string
		m             meta.Manifest
		tags          []string
		sig, attached digest.Digest // "" when not a signature, not attached
	}{
		{"cosign sha256 tag", meta.Manifest{}, []string{"sha256-" + hex64 + ".sig"}, subj, subj},
		{"cosign sha512 tag", meta.Manifest{}, []string{"v1", "sha512-" + hex64 + hex64 + ".sig"}, digest.Digest("sha512:" + hex64 + hex64), digest.Digest("sha512:" + hex64 + hex64)},
		{"short digest in tag", meta.Manifest{}, []string{"sha256-abc.sig"}, "", ""},
		{"uppercase hex", meta.Manifest{}, []string{"sha256-" + strings.ToUpper(hex64) + ".sig"}, "", ""},
		{"attestation tag", meta.Manifest{}, []string{"sha256-" + hex64 + ".att"}, subj, subj},
		{"sbom tag", meta.Manifest{}, []string{"v1", "sha256-" + hex64 + ".sbom"}, "", subj},
		{"other suffix", meta.Manifest{}, []string{"sha256-" + hex64 + ".foo"}, "", ""},
		{"image tags", meta.Manifest{}, []string{"v1", "latest"}, "", ""},
		{"cosign referrer", meta.Manifest{Subject: subj, ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json"}, nil, subj, subj},
		{"bundle referrer", meta.Manifest{Subject: subj, ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json"}, nil, subj, subj},
		{"bundle type without subject", meta.Manifest{ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json"}, nil, "", ""},
		{"other referrer", meta.Manifest{Subject: subj, ArtifactType: "application/spdx+json"}, nil, "", subj},
		{"a subject wins over a tag", meta.Manifest{Subject: subj}, []string{"sha256-" + strings.Repeat("ef", 32) + ".att"}, digest.Digest("sha256:" + strings.Repeat("ef", 32)), subj},
	} {
		got, ok := tc.m.SignatureSubject(tc.tags)
		if ok != (tc.sig != "") || got != tc.sig {
			t.Errorf("%s: SignatureSubject = %q, %v; want %q", tc.name, got, ok, tc.sig)
		}
		got, ok = tc.m.AttachmentSubject(tc.tags)
		if ok != (tc.attached != "") || got != tc.attached {
			t.Errorf("%s: AttachmentSubject = %q, %v; want %q", tc.name, got, ok, tc.attached)
		}
	}
}
