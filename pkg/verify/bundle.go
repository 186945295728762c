package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"

	"github.com/hallmark-dev/hallmark/pkg/root"
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

// ParseRekorBundle parses a bundle annotation. Only the shape is checked.
func ParseRekorBundle(raw string) (*RekorBundle, error) {
	var b RekorBundle
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		return nil, fmt.Errorf("bundle annotation is not valid JSON: %v", err)
	}
	if b.Payload.Body == "" || b.Payload.LogID == "" {
		return nil, fmt.Errorf("bundle annotation has no logged entry (Payload.body and Payload.logID are required)")
	}
	return &b, nil
}

// Entry returns the bundle as a log entry (without inclusion proof).
func (b *RekorBundle) Entry() (*LogEntry, error) {
	body, err := base64.StdEncoding.DecodeString(b.Payload.Body)
	if err != nil {
		return nil, fmt.Errorf("logged entry body is not base64")
	}
	return &LogEntry{Body: body, IntegratedTime: b.Payload.IntegratedTime, LogIndex: b.Payload.LogIndex, LogID: b.Payload.LogID,
		SET: b.SignedEntryTimestamp}, nil
}

// BundleFromEntry is the bundle annotation cosign writes for a log entry.
func BundleFromEntry(e *LogEntry) *RekorBundle {
	return &RekorBundle{SignedEntryTimestamp: e.SET, Payload: RekorPayload{Body: base64.StdEncoding.EncodeToString(e.Body),
		IntegratedTime: e.IntegratedTime, LogIndex: e.LogIndex, LogID: e.LogID}}
}

// checkBundleFor verifies a bundle annotation against the signature it
// must log.
func checkBundleFor(raw string, tlogKeys map[string]root.LogKey, want loggedSignature) (*RekorBundle, error) {
	b, err := ParseRekorBundle(raw)
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
