package oci_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func TestParseSignatureManifest(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	cfg := `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"` + d + `"}`
	many := make([]string, oci.MaxSignatureLayers+1)
	for i := range many {
		many[i] = `{"mediaType":"x","size":1,"digest":"` + d + `"}`
	}
	for _, tc := range []struct {
		name, ct, body, err string
		layers              int
	}{
		{"cosign", "application/vnd.oci.image.manifest.v1+json", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` + cfg + `,"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":3,"digest":"` + d + `","annotations":{"dev.cosignproject.cosign/signature":"MEU="}}]}`, "", 1},
		{"docker media types", "", `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` + cfg + `,"layers":[]}`, "", 0},
		{"empty", "", ``, "body is empty", 0},
		{"not json", "", `{{`, "not valid JSON", 0},
		{"index", "", `{"schemaVersion":2,"manifests":[]}`, "holds an image index", 0},
		{"too many layers", "", `{"schemaVersion":2,` + cfg + `,"layers":[` + strings.Join(many, ",") + `]}`, "1001 signature layers; cosign reads at most 1000", 0},
		{"bad layer digest", "", `{"schemaVersion":2,` + cfg + `,"layers":[{"mediaType":"x","size":1,"digest":"sha256:zz"}]}`, "layers[0]", 0},
		{"schema 1", "", `{"schemaVersion":1}`, "schemaVersion is 1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sm, err := oci.ParseSignatureManifest(tc.ct, []byte(tc.body))
			if tc.err != "" {
				if !errors.Is(err, oci.ErrInvalidSignatureManifest) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(sm.Layers) != tc.layers {
				t.Fatalf("got %+v, %v", sm, err)
			}
		})
	}
}

// FuzzParseSignatureManifest: no input crashes the parser, and what it
// accepts stays within cosign's limits.
func FuzzParseSignatureManifest(f *testing.F) {
	d := "sha256:" + strings.Repeat("a", 64)
	f.Add("application/vnd.oci.image.manifest.v1+json", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"`+d+`"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":263,"digest":"`+d+`","annotations":{"dev.cosignproject.cosign/signature":"MEUCIEQLYweDDIz8hqGL60qj86gXhn50VDYGqLd+SK5mgREsAiEA1nXrPBETnckGM2uUq+stkSZ9D/khwN9eG0mG4qPUOdE="}}]}`))
	f.Add("", []byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add("application/json", []byte(`{}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		sm, err := oci.ParseSignatureManifest(ct, body)
		if err != nil {
			if !errors.Is(err, oci.ErrInvalidSignatureManifest) {
				t.Fatalf("error %v does not wrap ErrInvalidSignatureManifest", err)
			}
			return
		}
		if len(sm.Layers) > oci.MaxSignatureLayers {
			t.Fatalf("accepted %d layers", len(sm.Layers))
		}
		for _, l := range sm.Layers {
			if l.Digest.Validate() != nil {
				t.Fatalf("accepted layer digest %q", l.Digest)
			}
		}
	})
}
