package bundle

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// MediaTypeV01 is the media type of a v0.1 sigstore bundle (the log
// entries carry a signed entry timestamp, no inclusion proof).
const MediaTypeV01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"

// Signature is a signature to put into a bundle: a message signature over
// Payload, or a DSSE envelope; the signing certificate (DER) or the hint of
// a key; the log entries.
type Signature struct {
	Certificate []byte // DER; nil for a key-based signature
	KeyHint     string // for a key-based signature (may be empty)
	// Payload and Sig: a message signature (cosign's .sig layers: the
	// simple-signing payload, the signature over it).
	Payload, Sig []byte
	// Envelope: a DSSE envelope (JSON) instead.
	Envelope []byte
	Entries  []*rekor.LogEntry
}

// Encode returns s as a sigstore bundle (protojson): v0.3 when every log
// entry has an inclusion proof (or there is none), else v0.1, whose
// entries need only their signed entry timestamp. Both forms are what
// sigstore-go and cosign verify-blob --bundle read.
func Encode(s Signature) ([]byte, error) {
	if (s.Envelope == nil) == (s.Sig == nil) {
		return nil, errors.New("a bundle holds a message signature or a DSSE envelope, exactly one")
	}
	if len(s.Entries) > MaxEntries {
		return nil, fmt.Errorf("%d log entries; a bundle holds at most %d", len(s.Entries), MaxEntries)
	}
	v03 := true
	for _, e := range s.Entries {
		if e.Proof == nil {
			v03 = false
		}
	}
	mediaType := MediaTypeV01
	if v03 {
		mediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	}
	vm := map[string]any{}
	switch {
	case s.Certificate != nil && v03:
		vm["certificate"] = map[string]any{"rawBytes": s.Certificate}
	case s.Certificate != nil:
		vm["x509CertificateChain"] = map[string]any{"certificates": []any{map[string]any{"rawBytes": s.Certificate}}}
	default:
		vm["publicKey"] = map[string]any{"hint": s.KeyHint}
	}
	entries := []any{}
	for _, e := range s.Entries {
		we, err := wireEntry(e)
		if err != nil {
			return nil, err
		}
		entries = append(entries, we)
	}
	vm["tlogEntries"] = entries
	b := map[string]any{"mediaType": mediaType, "verificationMaterial": vm}
	if s.Envelope != nil {
		if !json.Valid(s.Envelope) {
			return nil, errors.New("the DSSE envelope is not JSON")
		}
		b["dsseEnvelope"] = json.RawMessage(s.Envelope)
	} else {
		sum := sha256.Sum256(s.Payload)
		b["messageSignature"] = map[string]any{
			"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": sum[:]},
			"signature":     s.Sig,
		}
	}
	return json.Marshal(b)
}

// wireEntry is e as a bundle's TransparencyLogEntry (protojson: int64s as
// strings, bytes as base64); the kind and version come from its body.
func wireEntry(e *rekor.LogEntry) (map[string]any, error) {
	var body struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
	}
	if err := json.Unmarshal(e.Body, &body); err != nil || body.Kind == "" || body.APIVersion == "" {
		return nil, fmt.Errorf("log entry %d: its body names no kind and API version", e.LogIndex)
	}
	logID, err := hex.DecodeString(e.LogID)
	if err != nil {
		return nil, fmt.Errorf("log entry %d: log ID %q is not hex", e.LogIndex, e.LogID)
	}
	out := map[string]any{
		"logIndex":          strconv.FormatInt(e.LogIndex, 10),
		"logId":             map[string]any{"keyId": logID},
		"kindVersion":       map[string]any{"kind": body.Kind, "version": body.APIVersion},
		"integratedTime":    strconv.FormatInt(e.IntegratedTime, 10),
		"canonicalizedBody": base64.StdEncoding.EncodeToString(e.Body),
	}
	if len(e.SET) > 0 {
		out["inclusionPromise"] = map[string]any{"signedEntryTimestamp": e.SET}
	}
	if p := e.Proof; p != nil {
		hashes := make([][]byte, len(p.Hashes))
		copy(hashes, p.Hashes)
		out["inclusionProof"] = map[string]any{"logIndex": strconv.FormatInt(p.LogIndex, 10), "rootHash": p.RootHash,
			"treeSize": strconv.FormatInt(p.TreeSize, 10), "hashes": hashes, "checkpoint": map[string]any{"envelope": p.Checkpoint}}
	}
	return out, nil
}
