package ca

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Request bodies are decoded the way grpc-gateway's protojson does for
// Fulcio: field names in lowerCamelCase or snake_case, unknown fields
// ignored, null as absent, bytes fields as (standard or URL-safe, padded or
// not) base64.

// object is a JSON object whose fields are looked up by either spelling.
type object map[string]json.RawMessage

func decodeObject(raw []byte, what string) (object, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return object{}, nil
	}
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, fmt.Errorf("%w: %s is not a JSON object: %v", ErrInvalidRequest, what, err)
	}
	return o, nil
}

// field returns the raw value of the field named camel or snake, nil when
// absent or null.
func (o object) field(camel, snake string) json.RawMessage {
	for _, k := range []string{camel, snake} {
		if v, ok := o[k]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return v
		}
	}
	return nil
}

func (o object) object(camel, snake string) (object, error) {
	return decodeObject(o.field(camel, snake), camel)
}

func (o object) string(camel, snake string) (string, error) {
	v := o.field(camel, snake)
	if v == nil {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%w: %s must be a JSON string", ErrInvalidRequest, camel)
	}
	return s, nil
}

func (o object) bytes(camel, snake string) ([]byte, error) {
	s, err := o.string(camel, snake)
	if err != nil || s == "" {
		return nil, err
	}
	b, err := decodeBase64(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s is not base64: %v", ErrInvalidRequest, camel, err)
	}
	return b, nil
}

// decodeBase64 accepts the base64 spellings protojson accepts for bytes.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if len(s)%4 != 0 {
		enc = enc.WithPadding(base64.NoPadding)
	}
	return enc.DecodeString(s)
}

// ParseV2Request decodes a Fulcio v2 CreateSigningCertificateRequest:
// credentials.oidcIdentityToken, publicKeyRequest{publicKey{algorithm,
// content (PEM or DER string)}, proofOfPossession (bytes)} or
// certificateSigningRequest (bytes: PEM CSR).
func ParseV2Request(body []byte) (token string, kr KeyRequest, err error) {
	o, err := decodeObject(body, "request body")
	if err != nil {
		return "", kr, err
	}
	creds, err := o.object("credentials", "credentials")
	if err != nil {
		return "", kr, err
	}
	if token, err = creds.string("oidcIdentityToken", "oidc_identity_token"); err != nil {
		return "", kr, err
	}
	if kr.CSR, err = o.bytes("certificateSigningRequest", "certificate_signing_request"); err != nil {
		return "", kr, err
	}
	pkr, err := o.object("publicKeyRequest", "public_key_request")
	if err != nil {
		return "", kr, err
	}
	pk, err := pkr.object("publicKey", "public_key")
	if err != nil {
		return "", kr, err
	}
	content, err := pk.string("content", "content")
	if err != nil {
		return "", kr, err
	}
	kr.PublicKey = []byte(content)
	if kr.Proof, err = pkr.bytes("proofOfPossession", "proof_of_possession"); err != nil {
		return "", kr, err
	}
	if len(kr.CSR) == 0 && len(kr.PublicKey) == 0 {
		return "", kr, fmt.Errorf("%w: the body has neither publicKeyRequest.publicKey.content nor certificateSigningRequest", ErrInvalidRequest)
	}
	return token, kr, nil
}

// ParseV1Request decodes a legacy POST /api/v1/signingCert body (what
// cosign 2.x sends): publicKey{content: base64 of the PEM, algorithm},
// signedEmailAddress (base64 proof), certificateSigningRequest (base64 of
// a PEM CSR, or null).
func ParseV1Request(body []byte) (KeyRequest, error) {
	var kr KeyRequest
	o, err := decodeObject(body, "request body")
	if err != nil {
		return kr, err
	}
	if kr.CSR, err = o.bytes("certificateSigningRequest", "certificate_signing_request"); err != nil {
		return kr, err
	}
	pk, err := o.object("publicKey", "public_key")
	if err != nil {
		return kr, err
	}
	if kr.PublicKey, err = pk.bytes("content", "content"); err != nil {
		return kr, err
	}
	if kr.Proof, err = o.bytes("signedEmailAddress", "signed_email_address"); err != nil {
		return kr, err
	}
	if len(kr.CSR) == 0 && len(kr.PublicKey) == 0 {
		return kr, fmt.Errorf("%w: public key not provided: the body has neither publicKey.content nor certificateSigningRequest", ErrInvalidRequest)
	}
	return kr, nil
}
