package verify

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
)

// RekorBundle is cosign's "dev.sigstore.cosign/bundle" layer annotation.
type RekorBundle struct {
	SignedEntryTimestamp []byte       `json:"SignedEntryTimestamp"`
	Payload              RekorPayload `json:"Payload"`
}

// RekorPayload is what the signed entry timestamp covers.
type RekorPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogIndex       int64  `json:"logIndex"`
	LogID          string `json:"logID"`
}

// canonicalSETPayload is RFC 8785 JSON of the SET fields: keys sorted, and
// base64/hex strings need no escaping, so encoding/json's output is canonical.
type canonicalSETPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogID          string `json:"logID"`
	LogIndex       int64  `json:"logIndex"`
}

// checkRekorBundle verifies a bundle annotation for a signature: the SET
// with the log's key, and that the logged hashedrekord entry is this exact
// signature, by this key or certificate, over this payload.
func checkRekorBundle(raw string, tlogKeys map[string]crypto.PublicKey, payload, sig, keyOrCertPEM []byte) (*RekorBundle, error) {
	var b RekorBundle
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		return nil, fmt.Errorf("bundle annotation is not valid JSON: %v", err)
	}
	key, ok := tlogKeys[b.Payload.LogID]
	if !ok {
		return nil, fmt.Errorf("transparency log %q is not in the trusted root (rekor log public key not found for payload)", b.Payload.LogID)
	}
	ek, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("transparency log key %T cannot verify a signed entry timestamp (ECDSA required)", key)
	}
	canon, err := json.Marshal(canonicalSETPayload{Body: b.Payload.Body, IntegratedTime: b.Payload.IntegratedTime, LogID: b.Payload.LogID, LogIndex: b.Payload.LogIndex})
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(canon)
	if !ecdsa.VerifyASN1(ek, h[:], b.SignedEntryTimestamp) {
		return nil, fmt.Errorf("signed entry timestamp does not verify with the log key %s", b.Payload.LogID)
	}
	body, err := base64.StdEncoding.DecodeString(b.Payload.Body)
	if err != nil {
		return nil, fmt.Errorf("logged entry body is not base64")
	}
	var e struct {
		Kind string `json:"kind"`
		Spec struct {
			Data struct {
				Hash struct {
					Algorithm string `json:"algorithm"`
					Value     string `json:"value"`
				} `json:"hash"`
			} `json:"data"`
			Signature struct {
				Content   string `json:"content"`
				PublicKey struct {
					Content string `json:"content"`
				} `json:"publicKey"`
			} `json:"signature"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Kind != "hashedrekord" {
		return nil, fmt.Errorf("logged entry is not a hashedrekord entry")
	}
	ph := sha256.Sum256(payload)
	if e.Spec.Data.Hash.Algorithm != "sha256" || e.Spec.Data.Hash.Value != hex.EncodeToString(ph[:]) {
		return nil, fmt.Errorf("logged entry is for other content (hash %s:%s)", e.Spec.Data.Hash.Algorithm, e.Spec.Data.Hash.Value)
	}
	if e.Spec.Signature.Content != base64.StdEncoding.EncodeToString(sig) {
		return nil, fmt.Errorf("logged entry holds a different signature")
	}
	logged, err := base64.StdEncoding.DecodeString(e.Spec.Signature.PublicKey.Content)
	if err != nil || !samePublicKeyMaterial(logged, keyOrCertPEM) {
		return nil, fmt.Errorf("logged entry was made with a different key or certificate")
	}
	return &b, nil
}

// samePublicKeyMaterial compares two PEM blobs (certificate or public key)
// by the DER of their first block.
func samePublicKeyMaterial(a, b []byte) bool {
	da, db := firstDER(a), firstDER(b)
	return da != nil && bytes.Equal(da, db)
}

func firstDER(p []byte) []byte {
	if c, err := ParseCertificatePEM(p); err == nil {
		return c.Raw
	}
	if k, err := ParsePublicKey(p); err == nil {
		der, _ := x509.MarshalPKIXPublicKey(k)
		return der
	}
	return nil
}

// NextLogKey parses the next PEM public key in b (e.g. the contents of
// SIGSTORE_REKOR_PUBLIC_KEY) and returns it with its log ID, the hex
// SHA-256 of its PKIX DER, and the rest of b. ok is false when no further
// public key is found.
func NextLogKey(b []byte) (pub crypto.PublicKey, logID string, rest []byte, ok bool) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, "", nil, false
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		id := sha256.Sum256(block.Bytes)
		return k, hex.EncodeToString(id[:]), b, true
	}
}
