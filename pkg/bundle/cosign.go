package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// ErrInvalidCosign is wrapped by every ParseCosign error.
var ErrInvalidCosign = errors.New("invalid cosign bundle file")

// Cosign is the file cosign sign-blob --bundle writes without the new
// bundle format (cosign's LocalSignedPayload): the base64 signature over
// the blob, the signing certificate (base64 of its PEM) when keyless, and
// the log entry as cosign's bundle annotation carries it.
type Cosign struct {
	Base64Signature string        `json:"base64Signature"`
	Cert            string        `json:"cert,omitempty"`
	RekorBundle     *rekor.Bundle `json:"rekorBundle,omitempty"`
}

// ParseCosign parses a cosign bundle file: one JSON object with a
// standard base64 signature, a certificate that is PEM or base64 of PEM,
// and a well-formed log entry when present. Nothing is verified.
func ParseCosign(b []byte) (*Cosign, error) {
	var c Cosign
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object of the cosign bundle shape: %v", ErrInvalidCosign, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: unexpected data after the JSON object", ErrInvalidCosign)
	}
	if _, err := c.Signature(); err != nil {
		return nil, err
	}
	if _, err := c.CertificatePEM(); err != nil {
		return nil, err
	}
	if c.RekorBundle != nil {
		if c.RekorBundle.Payload.Body == "" || c.RekorBundle.Payload.LogID == "" {
			return nil, fmt.Errorf("%w: rekorBundle has no logged entry (Payload.body and Payload.logID are required)", ErrInvalidCosign)
		}
		if _, err := c.RekorBundle.Entry(); err != nil {
			return nil, fmt.Errorf("%w: rekorBundle: %v", ErrInvalidCosign, err)
		}
	}
	return &c, nil
}

// Signature returns the raw signature.
func (c *Cosign) Signature() ([]byte, error) {
	sig, err := base64.StdEncoding.DecodeString(c.Base64Signature)
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("%w: base64Signature is empty or not standard base64", ErrInvalidCosign)
	}
	return sig, nil
}

// CertificatePEM returns the certificate PEM, or nil for a key-based
// signature. cosign writes base64 of the PEM and reads either.
func (c *Cosign) CertificatePEM() ([]byte, error) {
	if c.Cert == "" {
		return nil, nil
	}
	if pemBytes, err := base64.StdEncoding.DecodeString(c.Cert); err == nil {
		return pemBytes, nil
	}
	if bytes.HasPrefix(bytes.TrimSpace([]byte(c.Cert)), []byte("-----BEGIN")) {
		return []byte(c.Cert), nil
	}
	return nil, fmt.Errorf("%w: cert is neither PEM nor base64 of PEM", ErrInvalidCosign)
}

// Bytes returns the file as cosign writes it (compact JSON, its field
// order).
func (c *Cosign) Bytes() ([]byte, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	if _, err := ParseCosign(b); err != nil {
		return nil, err
	}
	return b, nil
}

// IsSigstore reports whether b looks like a sigstore bundle (a JSON object
// whose mediaType is a sigstore bundle's) rather than a cosign bundle
// file: the test cosign verify-blob makes to pick the format.
func IsSigstore(b []byte) bool {
	var head struct {
		MediaType string `json:"mediaType"`
	}
	return json.Unmarshal(b, &head) == nil && oci.IsBundleType(head.MediaType)
}
