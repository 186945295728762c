package index_test

import (
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// TestLayerKeysAreStable: the dedupe keys are stored with every
// signature; a key computed differently would index every signature
// again as a new one. These are the keys earlier versions recorded.
func TestLayerKeysAreStable(t *testing.T) {
	r := loadRealKeyless(t)
	noBundle := r.layer
	noBundle.Annotations = map[string]string{oci.AnnotationSignature: r.layer.Annotations[oci.AnnotationSignature],
		oci.AnnotationCertificate: r.layer.Annotations[oci.AnnotationCertificate]}
	for _, tc := range []struct {
		name   string
		l      oci.Descriptor
		bundle bool
		want   string
	}{
		{"keyless with log bundle", r.layer, false, "eb30ca9b0eec42ddba8ef10ae4ad1db5855e6f514c66dd2c074cdf7f24afce9a"},
		{"without log bundle", noBundle, false, "74f8e9a46e98342671c72a6f85fd528e6e3421138fc23d6bff498b3bbba4c8ad"},
		{"sigstore bundle", oci.Descriptor{MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", Digest: digest.FromString("bundle")}, true, "e971281fb8813144e6f41d915f7a21a5cfc1a94f6470650063496bd21307b4b3"},
	} {
		if got := index.LayerKey(r.subject, tc.l, tc.bundle); got != tc.want {
			t.Errorf("%s: key %s, want %s", tc.name, got, tc.want)
		}
	}
}
