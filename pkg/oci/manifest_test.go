package oci

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

func readManifests(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "manifests", "*.json"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no testdata manifests: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func TestParseManifestRealExamples(t *testing.T) {
	tests := []struct {
		file, contentType string
		wantMT            string
		wantArtifactType  string
		wantSubject       bool
		wantErr           bool
	}{
		{"docker-library-index.json", MediaTypeOCIIndex, MediaTypeOCIIndex, "", false, false},
		{"docker-library-index.json", "", MediaTypeOCIIndex, "", false, false},
		{"docker-schema2.json", MediaTypeDockerManifest, MediaTypeDockerManifest, "application/vnd.docker.container.image.v1+json", false, false},
		{"docker-manifest-list.json", MediaTypeDockerList, MediaTypeDockerList, "", false, false},
		{"cosign-signature.json", MediaTypeOCIManifest, MediaTypeOCIManifest, MediaTypeOCIConfig, false, false},
		{"sigstore-bundle-referrer.json", MediaTypeOCIManifest, MediaTypeOCIManifest, "application/vnd.dev.sigstore.bundle.v0.3+json", true, false},
		{"oras-artifact.json", MediaTypeOCIManifest, MediaTypeOCIManifest, "application/vnd.example.sbom.v1", false, false},
		// Helm pushes without mediaType in the body; the Content-Type decides.
		{"helm-chart.json", MediaTypeOCIManifest, MediaTypeOCIManifest, "application/vnd.cncf.helm.config.v1+json", false, false},
		{"helm-chart.json", "", MediaTypeOCIManifest, "application/vnd.cncf.helm.config.v1+json", false, false},
		{"helm-chart.json", "application/json", MediaTypeOCIManifest, "application/vnd.cncf.helm.config.v1+json", false, false},
		{"windows-foreign-layers.json", MediaTypeDockerManifest, MediaTypeDockerManifest, "application/vnd.docker.container.image.v1+json", false, false},
		{"sha512-manifest.json", MediaTypeOCIManifest + "; charset=utf-8", MediaTypeOCIManifest, MediaTypeOCIConfig, false, false},
		{"schema1-rejected.json", "application/vnd.docker.distribution.manifest.v1+prettyjws", "", "", false, true},
		{"schema1-rejected.json", "", "", "", false, true},
		{"docker-schema2.json", MediaTypeOCIManifest, "", "", false, true}, // body says Docker
		{"docker-library-index.json", MediaTypeDockerList, "", "", false, true},
	}
	files := readManifests(t)
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.contentType, func(t *testing.T) {
			m, err := ParseManifest(tc.contentType, files[tc.file])
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrInvalidManifest) {
					t.Fatalf("err = %v, want ErrInvalidManifest", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tc.wantMT {
				t.Errorf("MediaType %q, want %q", m.MediaType, tc.wantMT)
			}
			if got := m.EffectiveArtifactType(); got != tc.wantArtifactType {
				t.Errorf("EffectiveArtifactType %q, want %q", got, tc.wantArtifactType)
			}
			if (m.Subject != nil) != tc.wantSubject {
				t.Errorf("subject %v", m.Subject)
			}
		})
	}
}

// TestParseManifestAllExamples parses every testdata manifest (hand-written
// copies of well-known manifests, and real-*.json captured from crane, oras,
// regctl and cosign pushes) with its own mediaType as Content-Type.
func TestParseManifestAllExamples(t *testing.T) {
	for name, b := range readManifests(t) {
		var probe struct {
			MediaType string    `json:"mediaType"`
			Subject   *struct{} `json:"subject"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		m, err := ParseManifest(probe.MediaType, b)
		if strings.HasSuffix(name, "-rejected.json") {
			if err == nil {
				t.Errorf("%s accepted", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if probe.MediaType != "" && m.MediaType != probe.MediaType {
			t.Errorf("%s: media type %q", name, m.MediaType)
		}
		if (m.Subject != nil) != (probe.Subject != nil) {
			t.Errorf("%s: subject lost or invented", name)
		}
	}
}

func TestParseManifestMalformed(t *testing.T) {
	cfg := `{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}`
	tests := []struct {
		name, ct, body, wantText string
	}{
		{"empty", "", "", "empty"},
		{"whitespace", "", " \n\t", "empty"},
		{"truncated", "", `{"schemaVersion":2,"config":`, "not valid JSON"},
		{"array", "", `[]`, "not valid JSON"},
		{"string", "", `"manifest"`, "not valid JSON"},
		{"null", "", `null`, "schemaVersion"},
		{"schemaVersion missing", "", `{"config":` + cfg + `}`, "schemaVersion"},
		{"schemaVersion string", "", `{"schemaVersion":"2","config":` + cfg + `}`, "not valid JSON"},
		{"schemaVersion 3", "", `{"schemaVersion":3,"config":` + cfg + `}`, "schemaVersion"},
		{"no config", MediaTypeOCIManifest, `{"schemaVersion":2}`, "config"},
		{"config null", MediaTypeOCIManifest, `{"schemaVersion":2,"config":null}`, "config"},
		{"config no mediaType", "", `{"schemaVersion":2,"config":{"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}`, "mediaType"},
		{"config bad digest", "", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44","size":2}}`, "digest"},
		{"config md5 digest", "", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"md5:d41d8cd98f00b204e9800998ecf8427e","size":2}}`, "digest"},
		{"layer negative size", "", `{"schemaVersion":2,"config":` + cfg + `,"layers":[{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}]}`, "negative"},
		{"layers not array", "", `{"schemaVersion":2,"config":` + cfg + `,"layers":{}}`, "not valid JSON"},
		{"size float", "", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1.5}}`, "not valid JSON"},
		{"manifest with manifests", MediaTypeOCIManifest, `{"schemaVersion":2,"config":` + cfg + `,"manifests":[]}`, "manifests"},
		{"index with config", MediaTypeOCIIndex, `{"schemaVersion":2,"config":` + cfg + `,"manifests":[]}`, "index"},
		{"index child bad", MediaTypeOCIIndex, `{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"x","size":1}]}`, "manifests[0]"},
		{"unknown body mediaType", "", `{"schemaVersion":2,"mediaType":"application/vnd.example+json","config":` + cfg + `}`, "not a supported"},
		{"unknown Content-Type", "text/plain", `{"schemaVersion":2,"config":` + cfg + `}`, "Content-Type"},
		{"mismatch", MediaTypeOCIIndex, `{"schemaVersion":2,"mediaType":"` + MediaTypeOCIManifest + `","config":` + cfg + `}`, "does not match"},
		{"bad subject", "", `{"schemaVersion":2,"config":` + cfg + `,"subject":{"mediaType":"a/b","digest":"","size":1}}`, "subject"},
		{"annotations not strings", "", `{"schemaVersion":2,"config":` + cfg + `,"annotations":{"a":1}}`, "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(tc.ct, []byte(tc.body))
			if err == nil {
				t.Fatalf("accepted: %+v", m)
			}
			if !errors.Is(err, ErrInvalidManifest) {
				t.Errorf("error %v does not wrap ErrInvalidManifest", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not mention %q", err, tc.wantText)
			}
		})
	}
}

func TestIsNonDistributable(t *testing.T) {
	for mt, want := range map[string]bool{
		MediaTypeDockerForeign: true,
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": true,
		"application/vnd.oci.image.layer.nondistributable.":            false,
		MediaTypeOCILayerGzip: false,
		"":                    false,
	} {
		if got := IsNonDistributable(mt); got != want {
			t.Errorf("IsNonDistributable(%q) = %v", mt, got)
		}
	}
}

// FuzzParseManifest checks that ParseManifest never panics on untrusted
// input, that every error wraps ErrInvalidManifest, and that whatever it
// accepts satisfies the invariants the registry relies on.
func FuzzParseManifest(f *testing.F) {
	cts := []string{"", MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList, "application/json", "text/plain; x=\"", MediaTypeOCIManifest + "; charset=utf-8"}
	for _, b := range readManifests(f) {
		for _, ct := range cts {
			f.Add(ct, b)
		}
	}
	f.Add("", []byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add("", []byte(`{"schemaVersion":2,"config":{},"layers":[null]}`))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		m, err := ParseManifest(ct, body)
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) {
				t.Fatalf("error does not wrap ErrInvalidManifest: %v", err)
			}
			if m != nil {
				t.Fatal("non-nil manifest with an error")
			}
			return
		}
		if !IsManifestMediaType(m.MediaType) {
			t.Fatalf("accepted media type %q", m.MediaType)
		}
		if m.SchemaVersion != 2 {
			t.Fatalf("accepted schemaVersion %d", m.SchemaVersion)
		}
		var descs []Descriptor
		if IsIndex(m.MediaType) {
			if m.Config != nil || len(m.Layers) != 0 {
				t.Fatal("index with config or layers")
			}
			descs = append(descs, m.Manifests...)
		} else {
			if m.Config == nil || m.Manifests != nil {
				t.Fatal("image manifest without config or with manifests")
			}
			descs = append(append(descs, *m.Config), m.Layers...)
		}
		if m.Subject != nil {
			descs = append(descs, *m.Subject)
		}
		for _, d := range descs {
			if _, err := ParseDigest(string(d.Digest)); err != nil || d.Size < 0 || d.MediaType == "" {
				t.Fatalf("accepted descriptor %+v", d)
			}
		}
		_ = m.EffectiveArtifactType()
		// Parsing is stable: the effective media type, given as the
		// Content-Type, yields the same result.
		m2, err := ParseManifest(m.MediaType, body)
		if err != nil {
			t.Fatalf("reparse with Content-Type %q: %v", m.MediaType, err)
		}
		if m2.MediaType != m.MediaType || m2.EffectiveArtifactType() != m.EffectiveArtifactType() {
			t.Fatalf("reparse differs: %q/%q vs %q/%q", m2.MediaType, m2.EffectiveArtifactType(), m.MediaType, m.EffectiveArtifactType())
		}
		if _, err := json.Marshal(m); err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
	})
}

// FuzzDecodersAgree: ParseManifest decodes with go-json-experiment's v1
// compatible Unmarshal (2.3x faster than encoding/json for a signature
// manifest); on any input it must accept what encoding/json accepts and
// produce the same Manifest (duplicate names, names in other case, invalid
// UTF-8, nulls, numbers out of range).
func FuzzDecodersAgree(f *testing.F) {
	for _, b := range readManifests(f) {
		f.Add(b)
	}
	for _, s := range []string{
		`{"schemaVersion":2,"SCHEMAVERSION":3,"mediaType":"a","MediaType":"b"}`,
		`{"schemaVersion":2,"schemaVersion":1}`,
		`{"schemaVersion":2,"annotations":{"k":"\xff\xfe","k":"v2"},"layers":[{"size":1e400}]}`,
		`{"schemaVersion":null,"config":null,"layers":[null,{}],"annotations":null}`,
		`{"schemaVersion":2.5}`, `{"schemaVersion":"2"}`, `[]`, `null`, `{"a":1}x`, "{\"mediaType\":\"\\ud800\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var std, v1 Manifest
		errStd := json.Unmarshal(body, &std)
		errV1 := jsonv1.Unmarshal(body, &v1)
		if (errStd == nil) != (errV1 == nil) {
			t.Fatalf("encoding/json: %v; v1: %v", errStd, errV1)
		}
		if errStd == nil && !reflect.DeepEqual(std, v1) {
			t.Fatalf("decoded differently:\nencoding/json %+v\nv1            %+v", std, v1)
		}
	})
}
