package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// CosignSignatureType is the value of critical.type in every cosign image
// signature payload.
const CosignSignatureType = "cosign container image signature"

// SimpleSigningMediaType is the media type of the registry layer that holds a
// simple-signing payload.
const SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"

// Errors returned by Parse, SimpleSigning.Bytes and CheckAnnotations. Every
// Parse error wraps ErrInvalidPayload; a wrong critical.type also wraps
// ErrWrongType and a bad digest ErrInvalidDigest.
var (
	ErrInvalidPayload     = errors.New("invalid simple-signing payload")
	ErrWrongType          = errors.New("payload is not a cosign container image signature")
	ErrInvalidDigest      = errors.New("invalid docker-manifest-digest")
	ErrAnnotationMismatch = errors.New("signed annotation missing or different")
)

// SimpleSigning is cosign's "simple signing" payload for a container image.
// Field order and JSON names are those of cosign (sigstore
// pkg/signature/payload), so Bytes reproduces cosign's bytes exactly.
type SimpleSigning struct {
	Critical Critical `json:"critical"`
	// Optional carries the signer's annotations. New fills it with strings
	// only; parsed payloads may hold any JSON value (numbers as json.Number)
	// because keyless signers and other tools add non-string entries.
	// A nil map is written as JSON null, as cosign does without annotations.
	Optional map[string]any `json:"optional"`
}

// Critical is the part of the payload every verifier must check.
type Critical struct {
	Identity Identity `json:"identity"`
	Image    Image    `json:"image"`
	Type     string   `json:"type"`
}

// Identity names the repository the signer meant to sign.
type Identity struct {
	// DockerReference is the repository (registry + path, no tag or
	// digest; Docker Hub as index.docker.io/library/x), or whatever the
	// signer passed as --sign-container-identity. cosign does not verify it.
	DockerReference string `json:"docker-reference"`
}

// Image names the signed manifest.
type Image struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// New returns the payload cosign builds when signing digest (e.g.
// "sha256:<hex>") in the repository dockerReference with the given
// annotations. No annotations (nil or empty) gives "optional": null.
func New(dockerReference, digest string, annotations map[string]string) SimpleSigning {
	s := SimpleSigning{Critical: Critical{
		Identity: Identity{DockerReference: dockerReference},
		Image:    Image{DockerManifestDigest: digest},
		Type:     CosignSignatureType,
	}}
	if len(annotations) > 0 {
		s.Optional = make(map[string]any, len(annotations))
		for k, v := range annotations {
			s.Optional[k] = v
		}
	}
	return s
}

// Bytes returns the payload serialised exactly as cosign v2.6 does:
// compact JSON, keys in struct order, optional keys sorted, HTML characters
// escaped as \u003c etc., no trailing newline. It fails when the payload
// could not be verified by cosign (wrong type, malformed digest).
//
// Bytes of a parsed payload need not equal the parsed bytes; always sign
// and verify the original bytes.
func (s SimpleSigning) Bytes() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding optional annotations: %w", ErrInvalidPayload, err)
	}
	return b, nil
}

func (s SimpleSigning) validate() error {
	if s.Critical.Type != CosignSignatureType {
		return fmt.Errorf("%w: %w: critical.type is %q, want %q (attestations are DSSE envelopes: use ParseEnvelope)",
			ErrInvalidPayload, ErrWrongType, s.Critical.Type, CosignSignatureType)
	}
	if _, err := oci.ParseDigest(s.Critical.Image.DockerManifestDigest); err != nil {
		return fmt.Errorf("%w: %w: critical.image.docker-manifest-digest: %v (want sha256:<64 hex> or sha512:<128 hex>)",
			ErrInvalidPayload, ErrInvalidDigest, err)
	}
	return nil
}

// rawSimpleSigning mirrors SimpleSigning with pointers so that Parse can
// tell a missing field from an empty one.
type rawSimpleSigning struct {
	Critical *struct {
		Identity *struct {
			DockerReference *string `json:"docker-reference"`
		} `json:"identity"`
		Image *struct {
			DockerManifestDigest *string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type *string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Parse parses and checks a simple-signing payload. It requires one JSON
// object with critical.identity.docker-reference (any string: cosign lets
// signers choose it), critical.type equal to CosignSignatureType and a
// sha256 or sha512 critical.image.docker-manifest-digest. Unknown fields
// are ignored, as cosign ignores them. Optional values keep their JSON type;
// numbers are json.Number so that no precision is lost.
func Parse(b []byte) (SimpleSigning, error) {
	var raw rawSimpleSigning
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return SimpleSigning{}, fmt.Errorf("%w: not a JSON object of the simple-signing shape: %v", ErrInvalidPayload, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SimpleSigning{}, fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalidPayload)
	}
	c := raw.Critical
	switch {
	case c == nil:
		return SimpleSigning{}, fmt.Errorf("%w: missing \"critical\" object", ErrInvalidPayload)
	case c.Type == nil:
		return SimpleSigning{}, fmt.Errorf("%w: %w: missing critical.type (want %q)", ErrInvalidPayload, ErrWrongType, CosignSignatureType)
	case c.Image == nil || c.Image.DockerManifestDigest == nil:
		return SimpleSigning{}, fmt.Errorf("%w: %w: missing critical.image.docker-manifest-digest", ErrInvalidPayload, ErrInvalidDigest)
	case c.Identity == nil || c.Identity.DockerReference == nil:
		return SimpleSigning{}, fmt.Errorf("%w: missing critical.identity.docker-reference", ErrInvalidPayload)
	}
	s := SimpleSigning{
		Critical: Critical{
			Identity: Identity{DockerReference: *c.Identity.DockerReference},
			Image:    Image{DockerManifestDigest: *c.Image.DockerManifestDigest},
			Type:     *c.Type,
		},
		Optional: raw.Optional,
	}
	if err := s.validate(); err != nil {
		return SimpleSigning{}, err
	}
	return s, nil
}

// ParseLenient reads a simple-signing payload as cosign verify does: any
// JSON object of the simple-signing shape, with numbers as float64 (as
// cosign prints them back), whose critical.type and docker-reference are
// not checked. Only the digest claim must be present. Errors match
// ErrInvalidPayload; use Parse for what a signer must produce.
func ParseLenient(b []byte) (SimpleSigning, error) {
	var s SimpleSigning
	if err := jsonv1.Unmarshal(b, &s); err != nil {
		return SimpleSigning{}, invalidPayload("payload is not simple-signing JSON: " + err.Error())
	}
	if s.Critical.Image.DockerManifestDigest == "" {
		return SimpleSigning{}, invalidPayload("payload has no critical.image.docker-manifest-digest")
	}
	return s, nil
}

// invalidPayload is a ParseLenient error: its text is cosign's, and it
// matches ErrInvalidPayload.
type invalidPayload string

func (e invalidPayload) Error() string        { return string(e) }
func (e invalidPayload) Is(target error) bool { return target == ErrInvalidPayload }

// StringAnnotations returns the payload's annotations (Annotations).
func (s SimpleSigning) StringAnnotations() map[string]string { return Annotations(s.Optional) }

// Annotations are the signed annotations of a simple-signing payload's
// optional map or of an in-toto subject: the entries whose values are
// strings, the only ones cosign -a can set or check. It is the one rule
// for what an annotation is: CheckAnnotations matches against it, and the
// signature index records it.
func Annotations(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if str, ok := v.(string); ok {
			out[k] = str
		}
	}
	return out
}

// AnnotationError says that a wanted annotation is absent from the signed
// payload or has another value. It matches ErrAnnotationMismatch.
type AnnotationError struct {
	Key     string
	Want    string
	Got     any  // the value found; nil when Missing
	Missing bool // the key is not in the payload's optional map
}

func (e *AnnotationError) Error() string {
	switch got := e.Got; {
	case e.Missing:
		return fmt.Sprintf("annotation %q is not in the signed payload (want %q)", e.Key, e.Want)
	case isString(got):
		return fmt.Sprintf("annotation %q is %q in the signed payload, want %q", e.Key, got, e.Want)
	default:
		b, _ := json.Marshal(got)
		return fmt.Sprintf("annotation %q is the non-string JSON value %s in the signed payload, want the string %q", e.Key, b, e.Want)
	}
}

// Is makes errors.Is(err, ErrAnnotationMismatch) true.
func (e *AnnotationError) Is(target error) bool { return target == ErrAnnotationMismatch }

func isString(v any) bool { _, ok := v.(string); return ok }

// CheckAnnotations checks that every wanted key is in the payload's
// optional map with exactly the wanted string value (CheckAnnotations).
func (s SimpleSigning) CheckAnnotations(want map[string]string) error {
	return CheckAnnotations(s.Optional, want)
}

// CheckAnnotations checks that every wanted key is among the signed
// annotations in have (a payload's optional map, an in-toto subject's
// annotations) with exactly the wanted string value, the check cosign
// verify -a performs: a non-string value never matches, and an empty
// wanted value does not match a missing key (observed with cosign v2.6.5).
// It returns nil or one *AnnotationError per failing key, in key order,
// joined with errors.Join.
func CheckAnnotations(have map[string]any, want map[string]string) error {
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(want)) {
		got, ok := have[k]
		switch {
		case !ok:
			errs = append(errs, &AnnotationError{Key: k, Want: want[k], Missing: true})
		case got != want[k]:
			errs = append(errs, &AnnotationError{Key: k, Want: want[k], Got: got})
		}
	}
	return errors.Join(errs...)
}
