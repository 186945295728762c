package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// in-toto statement and predicate types cosign uses.
const (
	// StatementTypeV1 is the _type of an in-toto Statement v1 (Sigstore
	// bundles, cosign v3).
	StatementTypeV1 = "https://in-toto.io/Statement/v1"
	// StatementTypeV01 is the _type cosign v2 writes for `cosign attest`.
	StatementTypeV01 = "https://in-toto.io/Statement/v0.1"
	// CosignSignPredicateType is the predicate type of the statement cosign
	// signs instead of a simple-signing payload with --new-bundle-format.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// ErrInvalidStatement is wrapped by every ParseStatement error.
var ErrInvalidStatement = errors.New("invalid in-toto statement")

// Statement is an in-toto Statement (v1, or v0.1 as cosign v2 attest
// writes). Predicate is kept as raw JSON.
type Statement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// Subject is one artifact a statement is about: an optional name, a
// digest set (algorithm -> lowercase hex) and, in the statement cosign v3
// signs for an image, the signed annotations (cosign's -a).
type Subject struct {
	Name        string            `json:"name,omitempty"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]any    `json:"annotations,omitzero"` // an empty map is written ({}), as cosign v3 does
}

// NewStatement returns an in-toto Statement v1. A nil predicate is omitted,
// as in the statement cosign signs with --new-bundle-format.
func NewStatement(predicateType string, predicate json.RawMessage, subjects ...Subject) Statement {
	return Statement{Type: StatementTypeV1, Subject: subjects, PredicateType: predicateType, Predicate: predicate}
}

// Bytes returns the statement as compact JSON (_type, subject,
// predicateType, predicate) with '<', '>' and '&' left as they are, as
// protojson (cosign v3) writes them. It fails on a statement
// ParseStatement would reject.
func (s Statement) Bytes() ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	return MarshalNoEscape(s)
}

// MarshalNoEscape is json.Marshal without HTML escaping, the way protojson
// writes strings.
func MarshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// ParseStatement parses an in-toto Statement strictly: _type v1 or v0.1, a
// non-empty predicateType, at least one subject, and every subject with a
// non-empty digest set whose sha* values are lowercase hex of the right
// length. Unknown fields are ignored; keep the original bytes.
func ParseStatement(b []byte) (Statement, error) {
	var s Statement
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&s); err != nil {
		return Statement{}, fmt.Errorf("%w: not a JSON object of the statement shape: %v", ErrInvalidStatement, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Statement{}, fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalidStatement)
	}
	if err := s.validate(); err != nil {
		return Statement{}, err
	}
	return s, nil
}

func (s Statement) validate() error {
	if s.Type != StatementTypeV1 && s.Type != StatementTypeV01 {
		return fmt.Errorf("%w: _type is %q, want %q or %q", ErrInvalidStatement, s.Type, StatementTypeV1, StatementTypeV01)
	}
	if s.PredicateType == "" {
		return fmt.Errorf("%w: predicateType is empty", ErrInvalidStatement)
	}
	if len(s.Subject) == 0 {
		return fmt.Errorf("%w: no subject (a statement must name the digest of what it is about)", ErrInvalidStatement)
	}
	for i, sub := range s.Subject {
		if len(sub.Digest) == 0 {
			return fmt.Errorf("%w: subject[%d] has no digest", ErrInvalidStatement, i)
		}
		for alg, v := range sub.Digest {
			if err := checkDigestValue(alg, v); err != nil {
				return fmt.Errorf("%w: subject[%d].digest[%q]: %v", ErrInvalidStatement, i, alg, err)
			}
		}
	}
	return nil
}

// hexLengths are the hex lengths of the digest algorithms whose values
// ParseStatement checks; other in-toto algorithms (gitCommit, dirHash...)
// only need a non-empty value.
var hexLengths = map[string]int{"sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}

func checkDigestValue(alg, v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	n, known := hexLengths[alg]
	if !known {
		return nil
	}
	if len(v) != n || strings.Trim(v, "0123456789abcdef") != "" {
		return fmt.Errorf("%q is not %d lowercase hex digits", v, n)
	}
	return nil
}

// HasSubjectDigest reports whether a subject carries digest ("sha256:<hex>"
// form), the check cosign verify-attestation makes against the image digest.
func (s Statement) HasSubjectDigest(digest string) bool {
	_, ok := s.SubjectFor(digest)
	return ok
}

// SubjectFor returns the first subject that carries digest ("sha256:<hex>"
// form): a statement about several images holds each image's annotations
// in its own subject.
func (s Statement) SubjectFor(digest string) (Subject, bool) {
	alg, hex, ok := strings.Cut(digest, ":")
	if !ok || hex == "" {
		return Subject{}, false
	}
	for _, sub := range s.Subject {
		if sub.Digest[alg] == hex {
			return sub, true
		}
	}
	return Subject{}, false
}
