package rekor_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realEntry is the entry a real Hallmark log returned for a cosign v2.6.5
// keyless signature, and that log's key.
func realEntry(t testing.TB) (*rekor.LogEntry, *ecdsa.PublicKey) {
	t.Helper()
	e, err := rekor.ParseEntryResponse(readTestdata(t, "rekor-entry-1.json"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(readTestdata(t, "rekor-key.pem"))
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return e, k.(*ecdsa.PublicKey)
}

// TestProposedEntries: the proposed entries have cosign's exact shape.
func TestProposedEntries(t *testing.T) {
	h := sha256.Sum256([]byte("payload"))
	b, err := rekor.NewHashedRekord(rekor.Hash{Algorithm: "sha256", Value: hex.EncodeToString(h[:])}, []byte{1, 2}, []byte("PEM"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"apiVersion":"0.0.1","spec":{"data":{"hash":{"algorithm":"sha256","value":"` + hex.EncodeToString(h[:]) +
		`"}},"signature":{"content":"AQI=","publicKey":{"content":"UEVN"}}},"kind":"hashedrekord"}`
	if string(b) != want {
		t.Errorf("hashedrekord:\n%s\nwant\n%s", b, want)
	}
	b, _ = rekor.NewDSSE([]byte(`{"payloadType":"x"}`), []byte("PEM"))
	want = `{"apiVersion":"0.0.1","spec":{"proposedContent":{"envelope":"{\"payloadType\":\"x\"}","verifiers":["UEVN"]}},"kind":"dsse"}`
	if string(b) != want {
		t.Errorf("dsse:\n%s\nwant\n%s", b, want)
	}
}

// TestRealEntry: the SET and the inclusion proof of a real Hallmark log
// entry verify with its log key, and the body logs the signature it was
// made for; tampering with any of them is caught.
func TestRealEntry(t *testing.T) {
	e, key := realEntry(t)
	if e.LogIndex != 1 || e.Proof == nil || e.Proof.TreeSize != 5 {
		t.Fatalf("entry %+v", e)
	}
	if err := rekor.VerifySET(e, key); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := rekor.VerifyInclusion(e, key); err != nil {
		t.Fatalf("inclusion: %v", err)
	}
	body, err := rekor.ParseBody(e.Body)
	if err != nil || body.Kind != rekor.KindHashedRekord {
		t.Fatalf("body %+v, %v", body, err)
	}
	hr := body.HashedRekord
	digest, _ := hex.DecodeString(hr.Data.Hash.Value)
	block, _ := pem.Decode(hr.Signature.PublicKey.Content)
	if err := body.Logs(digest, hr.Signature.Content, block.Bytes); err != nil {
		t.Fatalf("the body does not log its own signature: %v", err)
	}
	for name, err := range map[string]error{
		"other content": body.Logs(make([]byte, 32), hr.Signature.Content, block.Bytes),
		"other sig":     body.Logs(digest, []byte{1}, block.Bytes),
		"other key":     body.Logs(digest, hr.Signature.Content, []byte{1}),
	} {
		if !errors.Is(err, rekor.ErrEntryMismatch) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The wire form round-trips.
	w, _ := json.Marshal(map[string]rekor.WireEntry{"x": e.Wire()})
	back, err := rekor.ParseEntryResponse(w)
	if err != nil || !bytes.Equal(back.Body, e.Body) || !bytes.Equal(back.SET, e.SET) || back.Proof.Checkpoint != e.Proof.Checkpoint {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	c := *e
	c.IntegratedTime++
	if err := rekor.VerifySET(&c, key); !errors.Is(err, rekor.ErrSET) {
		t.Errorf("altered time: %v", err)
	}
	other := rekortest.NewKey(t)
	if err := rekor.VerifySET(e, &other.PublicKey); !errors.Is(err, rekor.ErrSET) {
		t.Errorf("another key: %v", err)
	}
	if err := rekor.VerifyInclusion(e, &other.PublicKey); !errors.Is(err, rekor.ErrInclusionProof) || !strings.Contains(err.Error(), "not signed by the log's key") {
		t.Errorf("checkpoint of another key: %v", err)
	}
	c = *e
	c.Body = append([]byte{}, e.Body...)
	c.Body[10] ^= 1
	if err := rekor.VerifyInclusion(&c, key); !errors.Is(err, rekor.ErrInclusionProof) || !strings.Contains(err.Error(), "is not at index 1") {
		t.Errorf("altered body: %v", err)
	}
}

// TestBundle: cosign's bundle annotation carries the entry without its
// proof, and its SET still verifies.
func TestBundle(t *testing.T) {
	e, key := realEntry(t)
	raw, _ := json.Marshal(rekor.BundleOf(e))
	b, err := rekor.ParseBundle(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	be, err := b.Entry()
	if err != nil || be.Proof != nil {
		t.Fatalf("entry %+v, %v", be, err)
	}
	if err := rekor.VerifySET(be, key); err != nil {
		t.Fatalf("SET of the bundle: %v", err)
	}
	if !strings.HasPrefix(string(raw), `{"SignedEntryTimestamp":"`) || !strings.Contains(string(raw), `"Payload":{"body":"`) {
		t.Errorf("not cosign's field names: %s", raw)
	}
	for _, bad := range []string{"", "{", `{}`, `{"Payload":{"body":"e30="}}`, `{"Payload":{"body":"!!","logID":"ab"}}`} {
		b, err := rekor.ParseBundle(bad)
		if err == nil {
			_, err = b.Entry()
		}
		if err == nil {
			t.Errorf("bundle %q accepted", bad)
		}
	}
}

func TestCheckpointSignAndParse(t *testing.T) {
	k := rekortest.NewKey(t)
	hint, err := rekor.KeyHint(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	note, err := rekor.Checkpoint{Origin: "log.test - 7", Size: 3, Root: [32]byte{1}}.Sign(k, hint, "log.test")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := rekor.VerifyCheckpoint(note, &k.PublicKey)
	if err != nil || sc.Origin != "log.test - 7" || sc.Size != 3 || sc.Root != [32]byte{1} || sc.Signatures[0].Name != "log.test" {
		t.Fatalf("%+v, %v", sc, err)
	}
	if _, err := rekor.VerifyCheckpoint(bytes.Replace(note, []byte("\n3\n"), []byte("\n4\n"), 1), &k.PublicKey); err == nil {
		t.Error("altered size verified")
	}
}

func TestParseSearchQuery(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{`{"entryUUIDs":["ab"],"logIndexes":[0,1]}`, ""},
		{`{"entries":[{}]}`, ""},
		{`{"logIndexes":[-1]}`, "non-negative"},
		{`{"logIndexes":[null]}`, "non-negative"},
		{`{"entryUUIDs":["1","2","3","4","5","6","7","8","9","10","11"]}`, "maximum number of queries in one search is 10 (got 11)"},
		{`{"other":1}`, "unknown field"},
		{`{} {}`, "after the JSON value"},
		{`[`, "not valid JSON"},
	} {
		_, err := rekor.ParseSearchQuery([]byte(tc.in))
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestParseBodyRejects: bodies that cannot log anything.
func TestParseBodyRejects(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"kind":"rekord","spec":{}}`, `{"kind":"hashedrekord","spec":{"signature":{"content":"!!"}}}`,
		`{"kind":"dsse","spec":{"signatures":[{"verifier":1}]}}`} {
		if _, err := rekor.ParseBody([]byte(in)); !errors.Is(err, rekor.ErrEntryMismatch) {
			t.Errorf("%s: %v", in, err)
		}
	}
}
