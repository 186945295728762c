package payload

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Media and payload types of DSSE envelopes as cosign stores them.
const (
	// DSSEMediaType is the registry layer media type of an attestation.
	DSSEMediaType = "application/vnd.dsse.envelope.v1+json"
	// InTotoPayloadType is the payloadType of an envelope holding an in-toto
	// Statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
)

// ErrInvalidEnvelope is wrapped by every ParseEnvelope error and by
// Envelope methods that decode base64.
var ErrInvalidEnvelope = errors.New("invalid DSSE envelope")

// Envelope is a DSSE v1 envelope. Payload and signatures stay base64 text,
// exactly as read, so that re-encoding keeps the original bytes; decode them
// with DecodePayload and Signature.Decode.
type Envelope struct {
	PayloadType string      `json:"payloadType"`
	Payload     string      `json:"payload"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature. cosign writes "keyid": "" for key and
// keyless signatures; Sigstore bundles omit it (parsed as "").
type Signature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// NewEnvelope returns an unsigned envelope for payload (standard, padded
// base64, as cosign writes). Add signatures over e.PAE() with AddSignature.
func NewEnvelope(payloadType string, payload []byte) Envelope {
	return Envelope{PayloadType: payloadType, Payload: base64.StdEncoding.EncodeToString(payload)}
}

// AddSignature appends a raw signature over the envelope's PAE.
func (e *Envelope) AddSignature(keyID string, sig []byte) {
	e.Signatures = append(e.Signatures, Signature{KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)})
}

// PAE returns the DSSE v1 pre-authentication encoding, the exact bytes a
// DSSE signature covers:
//
//	"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//
// with lengths as decimal byte counts.
func PAE(payloadType string, payload []byte) []byte {
	b := make([]byte, 0, len("DSSEv1 ")+len(payloadType)+len(payload)+24)
	b = append(b, "DSSEv1 "...)
	b = strconv.AppendInt(b, int64(len(payloadType)), 10)
	b = append(b, ' ')
	b = append(b, payloadType...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(len(payload)), 10)
	b = append(b, ' ')
	return append(b, payload...)
}

// DecodePayload returns the payload bytes.
func (e Envelope) DecodePayload() ([]byte, error) {
	p, err := decodeBase64(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidEnvelope, err)
	}
	return p, nil
}

// PAE returns the bytes the envelope's signatures cover.
func (e Envelope) PAE() ([]byte, error) {
	p, err := e.DecodePayload()
	if err != nil {
		return nil, err
	}
	return PAE(e.PayloadType, p), nil
}

// Decode returns the raw signature bytes (ASN.1 DER for ECDSA).
func (s Signature) Decode() ([]byte, error) {
	b, err := decodeBase64(s.Sig)
	if err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrInvalidEnvelope, err)
	}
	return b, nil
}

// Bytes returns the envelope as compact JSON in cosign's field order
// (payloadType, payload, signatures). It fails on an envelope ParseEnvelope
// would reject.
func (e Envelope) Bytes() ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

func (e Envelope) validate() error {
	if e.PayloadType == "" {
		return fmt.Errorf("%w: payloadType is empty (in-toto attestations use %q)", ErrInvalidEnvelope, InTotoPayloadType)
	}
	p, err := e.DecodePayload()
	if err != nil {
		return err
	}
	if len(p) == 0 {
		return fmt.Errorf("%w: payload is empty", ErrInvalidEnvelope)
	}
	if len(e.Signatures) == 0 {
		return fmt.Errorf("%w: no signatures (an envelope must be signed before it is stored)", ErrInvalidEnvelope)
	}
	for i, s := range e.Signatures {
		b, err := s.Decode()
		if err != nil {
			return fmt.Errorf("signatures[%d]: %w", i, err)
		}
		if len(b) == 0 {
			return fmt.Errorf("%w: signatures[%d].sig is empty", ErrInvalidEnvelope, i)
		}
	}
	return nil
}

// ParseEnvelope parses a DSSE envelope strictly: one JSON object with a
// non-empty payloadType, a non-empty base64 payload and at least one
// signature whose sig is non-empty base64. Standard and URL-safe base64,
// padded or not, are accepted, as the DSSE specification asks. Signatures
// are not verified here.
func ParseEnvelope(b []byte) (Envelope, error) {
	var raw struct {
		PayloadType *string     `json:"payloadType"`
		Payload     *string     `json:"payload"`
		Signatures  []Signature `json:"signatures"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return Envelope{}, fmt.Errorf("%w: not a JSON object of the DSSE shape: %v", ErrInvalidEnvelope, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Envelope{}, fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalidEnvelope)
	}
	if raw.PayloadType == nil {
		return Envelope{}, fmt.Errorf("%w: missing payloadType", ErrInvalidEnvelope)
	}
	if raw.Payload == nil {
		return Envelope{}, fmt.Errorf("%w: missing payload", ErrInvalidEnvelope)
	}
	e := Envelope{PayloadType: *raw.PayloadType, Payload: *raw.Payload, Signatures: raw.Signatures}
	if err := e.validate(); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// decodeBase64 accepts standard or URL-safe base64, with or without
// padding.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not valid base64")
}
