package testenv

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strconv"
	"testing"
)

// LegacyBundle returns a cosign v2 signature as a sigstore bundle (v0.3,
// a message signature over the SHA-256 of payload), so that an independent
// verifier such as sigstore-go checks the hashedrekord body, the SET and
// the inclusion proof of a legacy signature: ann are the annotations of the
// signature layer (certificate, signature), payload its simple-signing
// payload and entryJSON the Rekor v1 answer for its log entry, {"<uuid>":
// {body, integratedTime, logID, logIndex, verification}}.
func LegacyBundle(tb testing.TB, entryJSON []byte, ann map[string]string, payload []byte) []byte {
	tb.Helper()
	var entries map[string]struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogID          string `json:"logID"`
		LogIndex       int64  `json:"logIndex"`
		Verification   struct {
			SignedEntryTimestamp string `json:"signedEntryTimestamp"`
			InclusionProof       struct {
				Checkpoint string   `json:"checkpoint"`
				Hashes     []string `json:"hashes"`
				LogIndex   int64    `json:"logIndex"`
				RootHash   string   `json:"rootHash"`
				TreeSize   int64    `json:"treeSize"`
			} `json:"inclusionProof"`
		} `json:"verification"`
	}
	if err := json.Unmarshal(entryJSON, &entries); err != nil || len(entries) != 1 {
		tb.Fatalf("log entry answer %s: %v (want exactly one entry)", entryJSON, err)
	}
	hexToB64 := func(h string) string {
		b, err := hex.DecodeString(h)
		if err != nil {
			tb.Fatalf("hex %q: %v", h, err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	blk, _ := pem.Decode([]byte(ann["dev.sigstore.cosign/certificate"]))
	if blk == nil {
		tb.Fatal("signature layer has no certificate")
	}
	digest := sha256.Sum256(payload)
	var out []byte
	for _, e := range entries {
		p := e.Verification.InclusionProof
		hashes := []string{}
		for _, h := range p.Hashes {
			hashes = append(hashes, hexToB64(h))
		}
		b, err := json.Marshal(map[string]any{
			"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
			"verificationMaterial": map[string]any{
				"certificate": map[string]any{"rawBytes": blk.Bytes},
				"tlogEntries": []any{map[string]any{
					"logIndex": strconv.FormatInt(e.LogIndex, 10), "logId": map[string]any{"keyId": hexToB64(e.LogID)},
					"kindVersion": map[string]any{"kind": "hashedrekord", "version": "0.0.1"}, "integratedTime": strconv.FormatInt(e.IntegratedTime, 10),
					"inclusionPromise": map[string]any{"signedEntryTimestamp": e.Verification.SignedEntryTimestamp},
					"inclusionProof": map[string]any{"logIndex": strconv.FormatInt(p.LogIndex, 10), "rootHash": hexToB64(p.RootHash),
						"treeSize": strconv.FormatInt(p.TreeSize, 10), "hashes": hashes, "checkpoint": map[string]any{"envelope": p.Checkpoint}},
					"canonicalizedBody": e.Body,
				}},
			},
			"messageSignature": map[string]any{
				"messageDigest": map[string]any{"algorithm": "SHA2_256", "digest": digest[:]},
				"signature":     ann["dev.cosignproject.cosign/signature"],
			},
		})
		if err != nil {
			tb.Fatal(err)
		}
		out = b
	}
	return out
}
