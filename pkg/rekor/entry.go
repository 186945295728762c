package rekor

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gowebpki/jcs"
)

// Entry kinds and the one API version of each that the log accepts.
const (
	KindHashedRekord = "hashedrekord"
	KindDSSE         = "dsse"
	APIVersion       = "0.0.1"
)

// Canonical is a validated entry in the form the log stores: the RFC 8785
// JSON Rekor would store for it, and the RFC 6962 leaf hash of those bytes
// (the entry UUID).
type Canonical struct {
	Kind     string
	Body     []byte
	LeafHash [32]byte
}

// proposedEntry is the envelope of every Rekor proposed entry.
type proposedEntry struct {
	APIVersion *string         `json:"apiVersion"`
	Kind       *string         `json:"kind"`
	Spec       json.RawMessage `json:"spec"`
}

// Canonicalize parses a proposed entry (the body of POST
// /api/v1/log/entries, or one element of entries/retrieve "entries"),
// checks it strictly and within the bounds on what one entry may cost,
// verifies its signature(s) and returns the canonical form. Errors wrap
// ErrInvalidEntry, ErrUnsupported or ErrTooLarge and say what to fix.
func Canonicalize(raw []byte) (*Canonical, error) {
	var pe proposedEntry
	if err := strictUnmarshal(raw, &pe); err != nil {
		return nil, invalidf("proposed entry is not valid JSON: %v", err)
	}
	if pe.Kind == nil || *pe.Kind == "" {
		return nil, invalidf(`"kind" is missing; use "hashedrekord" or "dsse"`)
	}
	if pe.APIVersion == nil || *pe.APIVersion == "" {
		return nil, invalidf(`"apiVersion" is missing; use "0.0.1"`)
	}
	if isNull(pe.Spec) {
		return nil, invalidf(`"spec" is missing`)
	}
	var body []byte
	var err error
	switch *pe.Kind {
	case KindHashedRekord:
		if *pe.APIVersion != APIVersion {
			return nil, unsupportedf("hashedrekord apiVersion %q; this log accepts %q", *pe.APIVersion, APIVersion)
		}
		body, err = canonicalHashedRekord(pe.Spec)
	case KindDSSE:
		if *pe.APIVersion != APIVersion {
			return nil, unsupportedf("dsse apiVersion %q; this log accepts %q", *pe.APIVersion, APIVersion)
		}
		body, err = canonicalDSSE(pe.Spec)
	default:
		return nil, unsupportedf("entry kind %q; this log accepts hashedrekord and dsse (apiVersion 0.0.1)", truncate(*pe.Kind, 64))
	}
	if err != nil {
		return nil, err
	}
	return &Canonical{Kind: *pe.Kind, Body: body, LeafHash: LeafHash(body)}, nil
}

// LeafHash is the RFC 6962 leaf hash SHA-256(0x00 || body).
func LeafHash(body []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// canonicalJSON marshals v and applies RFC 8785 canonicalization.
func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Transform(b)
}

// strictUnmarshal decodes exactly one JSON value into v, rejecting unknown
// fields and trailing data.
func strictUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// decodeB64 decodes standard (padded) base64 as Rekor's "byte" fields are.
func decodeB64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, invalidf("%s is not valid standard base64: %v", field, err)
	}
	return b, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func shortHex(b []byte) string {
	s := hex.EncodeToString(b)
	return truncate(s, 16)
}

func fieldErr(field string, err error) error {
	if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrInvalidEntry) {
		return fmt.Errorf("%s: %w", field, err)
	}
	return invalidf("%s: %v", field, err)
}
