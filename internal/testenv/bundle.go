package testenv

import (
	"encoding/base64"
	"encoding/pem"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
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
	e, err := rekor.ParseEntryResponse(entryJSON)
	if err != nil {
		tb.Fatalf("log entry answer %s: %v", entryJSON, err)
	}
	blk, _ := pem.Decode([]byte(ann["dev.sigstore.cosign/certificate"]))
	if blk == nil {
		tb.Fatal("signature layer has no certificate")
	}
	sig, err := base64.StdEncoding.DecodeString(ann["dev.cosignproject.cosign/signature"])
	if err != nil {
		tb.Fatalf("signature annotation: %v", err)
	}
	b, err := bundle.Encode(bundle.Signature{Certificate: blk.Bytes, Payload: payload, Sig: sig, Entries: []*rekor.LogEntry{e}})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
