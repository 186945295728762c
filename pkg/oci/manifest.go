package oci

import (
	"bytes"
	"errors"
	"fmt"
	"mime"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/opencontainers/go-digest"
)

// Media types of manifests the registry accepts.
const (
	MediaTypeOCIManifest      = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIIndex         = "application/vnd.oci.image.index.v1+json"
	MediaTypeDockerManifest   = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList       = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeOCIEmptyJSON     = "application/vnd.oci.empty.v1+json"
	MediaTypeOCILayer         = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip     = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCIConfig        = "application/vnd.oci.image.config.v1+json"
	MediaTypeDockerForeign    = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeOCINondistPrefix = "application/vnd.oci.image.layer.nondistributable."
)

// ErrInvalidManifest is wrapped by every manifest parse error.
var ErrInvalidManifest = errors.New("invalid manifest")

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
}

// Platform describes the platform of an index entry.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// Manifest is the union of the fields of an image manifest and an image
// index that the registry looks at.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        *Descriptor       `json:"config,omitempty"`
	Layers        []Descriptor      `json:"layers,omitempty"`
	Manifests     []Descriptor      `json:"manifests,omitempty"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// IsIndex reports whether mediaType names an index (manifest list).
func IsIndex(mediaType string) bool {
	return mediaType == MediaTypeOCIIndex || mediaType == MediaTypeDockerList
}

// IsManifestMediaType reports whether mediaType is one the registry stores as
// a manifest.
func IsManifestMediaType(mediaType string) bool {
	switch mediaType {
	case MediaTypeOCIManifest, MediaTypeOCIIndex, MediaTypeDockerManifest, MediaTypeDockerList:
		return true
	}
	return false
}

// IsNonDistributable reports whether a layer may legitimately be absent from
// the registry (foreign or non-distributable layers).
func IsNonDistributable(mediaType string) bool {
	return mediaType == MediaTypeDockerForeign ||
		len(mediaType) > len(mediaTypeOCINondistPrefix) && mediaType[:len(mediaTypeOCINondistPrefix)] == mediaTypeOCINondistPrefix
}

// ParseManifest parses manifest bytes pushed with the given Content-Type
// (which may be empty). It returns the parsed manifest with MediaType set to
// the effective media type, or an error wrapping ErrInvalidManifest that says
// what is wrong.
func ParseManifest(contentType string, body []byte) (*Manifest, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, fmt.Errorf("%w: body is empty", ErrInvalidManifest)
	}
	var m Manifest
	if err := jsonv1.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: not valid JSON: %v", ErrInvalidManifest, err)
	}
	ct := ""
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			ct = mt
		}
	}
	if ct != "" && !IsManifestMediaType(ct) && ct != "application/json" && ct != "application/octet-stream" {
		return nil, fmt.Errorf("%w: Content-Type %q is not a supported manifest media type", ErrInvalidManifest, ct)
	}
	if !IsManifestMediaType(ct) {
		ct = ""
	}
	switch {
	case m.MediaType != "" && ct != "" && m.MediaType != ct:
		return nil, fmt.Errorf("%w: mediaType %q in the body does not match Content-Type %q", ErrInvalidManifest, m.MediaType, ct)
	case m.MediaType != "" && !IsManifestMediaType(m.MediaType):
		return nil, fmt.Errorf("%w: mediaType %q is not a supported manifest media type", ErrInvalidManifest, m.MediaType)
	case m.MediaType == "" && ct != "":
		m.MediaType = ct
	case m.MediaType == "" && m.Manifests != nil:
		m.MediaType = MediaTypeOCIIndex
	case m.MediaType == "":
		m.MediaType = MediaTypeOCIManifest
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("%w: schemaVersion is %d; only 2 is supported", ErrInvalidManifest, m.SchemaVersion)
	}
	if IsIndex(m.MediaType) {
		if m.Config != nil || len(m.Layers) > 0 {
			return nil, fmt.Errorf("%w: an index must not have config or layers", ErrInvalidManifest)
		}
		for i, d := range m.Manifests {
			if err := checkDescriptor(d); err != nil {
				return nil, fmt.Errorf("%w: manifests[%d]: %v", ErrInvalidManifest, i, err)
			}
		}
	} else {
		if m.Manifests != nil {
			return nil, fmt.Errorf("%w: an image manifest must not have a manifests list", ErrInvalidManifest)
		}
		if m.Config == nil {
			return nil, fmt.Errorf("%w: config descriptor is missing", ErrInvalidManifest)
		}
		if err := checkDescriptor(*m.Config); err != nil {
			return nil, fmt.Errorf("%w: config: %v", ErrInvalidManifest, err)
		}
		for i, d := range m.Layers {
			if err := checkDescriptor(d); err != nil {
				return nil, fmt.Errorf("%w: layers[%d]: %v", ErrInvalidManifest, i, err)
			}
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(*m.Subject); err != nil {
			return nil, fmt.Errorf("%w: subject: %v", ErrInvalidManifest, err)
		}
	}
	return &m, nil
}

func checkDescriptor(d Descriptor) error {
	if d.MediaType == "" {
		return errors.New("mediaType is missing")
	}
	if _, err := ParseDigest(string(d.Digest)); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("size %d is negative", d.Size)
	}
	return nil
}

// EffectiveArtifactType is the artifactType the referrers API reports for a
// manifest: its artifactType, else (for image manifests) its config media type.
func (m *Manifest) EffectiveArtifactType() string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	if !IsIndex(m.MediaType) && m.Config != nil {
		return m.Config.MediaType
	}
	return ""
}
