package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// checkBundleFor verifies a bundle annotation against the signature it
// must log.
func checkBundleFor(raw string, tlogKeys map[string]root.LogKey, want loggedSignature) (*rekor.Bundle, error) {
	b, err := rekor.ParseBundle(raw)
	if err != nil {
		return nil, err
	}
	e, err := b.Entry()
	if err != nil {
		return nil, err
	}
	if err := VerifySET(e, tlogKeys); err != nil {
		return nil, err
	}
	if err := checkEntryBody(e.Body, want); err != nil {
		return nil, err
	}
	return b, nil
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

// LogKeys parses every PEM public key in b into a map from log ID (hex
// SHA-256 of the DER key) to key. PEM keys (cosign's legacy
// SIGSTORE_REKOR_PUBLIC_KEY and SIGSTORE_CT_LOG_PUBLIC_KEY_FILE) carry no
// validity window: they are trusted at any time.
func LogKeys(b []byte) map[string]root.LogKey {
	out := map[string]root.LogKey{}
	for {
		pub, id, rest, ok := NextLogKey(b)
		if !ok {
			return out
		}
		out[id], b = root.LogKey{Key: pub}, rest
	}
}
