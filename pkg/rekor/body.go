package rekor

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// Body is a canonical log entry as a client reads it back: its kind and
// the spec of that kind.
type Body struct {
	Kind         string
	HashedRekord *HashedRekord // for KindHashedRekord
	DSSE         *DSSE         // for KindDSSE
}

// ParseBody parses a canonical hashedrekord or dsse v0.0.1 entry. Errors
// wrap ErrEntryMismatch: a body that cannot be read cannot log anything.
func ParseBody(body []byte) (*Body, error) {
	var head struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := jsonv1.Unmarshal(body, &head); err != nil {
		return nil, fmt.Errorf("%w: the logged entry is not JSON", ErrEntryMismatch)
	}
	b := &Body{Kind: head.Kind}
	switch head.Kind {
	case KindHashedRekord:
		b.HashedRekord = new(HashedRekord)
		if err := jsonv1.Unmarshal(head.Spec, b.HashedRekord); err != nil {
			return nil, fmt.Errorf("%w: the logged hashedrekord entry is malformed", ErrEntryMismatch)
		}
	case KindDSSE:
		b.DSSE = new(DSSE)
		if err := jsonv1.Unmarshal(head.Spec, b.DSSE); err != nil {
			return nil, fmt.Errorf("%w: the logged dsse entry is malformed", ErrEntryMismatch)
		}
	default:
		return nil, fmt.Errorf("%w: the logged entry is of kind %q (want hashedrekord or dsse)", ErrEntryMismatch, head.Kind)
	}
	return b, nil
}

// Logs checks that the entry logs exactly one signature: sig over content
// whose SHA-256 is contentSHA256 (for DSSE: the payload), made with the key
// or certificate whose DER is keyDER (a certificate's whole DER, or a PKIX
// public key). Errors wrap ErrEntryMismatch and say what differs.
func (b *Body) Logs(contentSHA256, sig, keyDER []byte) error {
	switch {
	case b.HashedRekord != nil:
		s := b.HashedRekord
		if h := s.Data.Hash; h.Algorithm != "sha256" || h.Value != hex.EncodeToString(contentSHA256) {
			return fmt.Errorf("%w: the logged entry is for other content (hash %s:%s, not sha256:%x)", ErrEntryMismatch, h.Algorithm, h.Value, contentSHA256)
		}
		if !bytes.Equal(s.Signature.Content, sig) {
			return fmt.Errorf("%w: the logged entry holds a different signature", ErrEntryMismatch)
		}
		if !sameKey(s.Signature.PublicKey.Content, keyDER) {
			return fmt.Errorf("%w: the logged entry was made with a different key or certificate", ErrEntryMismatch)
		}
		return nil
	case b.DSSE != nil:
		s := b.DSSE
		if h := s.PayloadHash; h.Algorithm != "sha256" || h.Value != hex.EncodeToString(contentSHA256) {
			return fmt.Errorf("%w: the logged entry is for another DSSE payload (hash %s:%s, not sha256:%x)", ErrEntryMismatch, h.Algorithm, h.Value, contentSHA256)
		}
		for _, ls := range s.Signatures {
			logged, err := base64.StdEncoding.DecodeString(ls.Signature)
			if err != nil || !bytes.Equal(logged, sig) {
				continue
			}
			if sameKey(ls.Verifier, keyDER) {
				return nil
			}
			return fmt.Errorf("%w: the logged entry's signature was verified with a different key or certificate", ErrEntryMismatch)
		}
		return fmt.Errorf("%w: the logged entry holds a different signature", ErrEntryMismatch)
	}
	return fmt.Errorf("%w: the logged entry is of kind %q (want hashedrekord or dsse)", ErrEntryMismatch, b.Kind)
}

// sameKey reports whether the first PEM block of logged (a certificate, or
// a public key) is the certificate or PKIX public key keyDER. The log
// stores both re-encoded from their DER, so the bytes are compared first;
// a public key is parsed and re-encoded only when they differ.
func sameKey(logged, keyDER []byte) bool {
	block, _ := pem.Decode(logged)
	if block == nil {
		return false
	}
	if bytes.Equal(block.Bytes, keyDER) {
		return block.Type == "CERTIFICATE" || block.Type == "PUBLIC KEY"
	}
	if block.Type != "PUBLIC KEY" {
		return false
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return false
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	return err == nil && bytes.Equal(der, keyDER)
}
