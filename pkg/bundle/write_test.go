package bundle_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// TestBytesReproducesCosign: what real cosign v3 wrote reads into a Bundle
// that Bytes writes back byte for byte: the field order, the omitted zero
// integers (a first log index 0), the base64 alphabet and the int64
// strings are protojson's.
func TestBytesReproducesCosign(t *testing.T) {
	for _, f := range []string{"cosign3-bundle.json", "cosign3-key-bundle.json", "cosign3-blob-bundle.json"} {
		raw, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		raw = bytes.TrimSpace(raw)
		b, err := bundle.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out, err := b.Bytes()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !bytes.Equal(out, raw) {
			t.Errorf("%s: written differently:\ncosign:   %s\nhallmark: %s", f, raw, out)
		}
		// Through the log entry form and back as well.
		for i, e := range b.VerificationMaterial.TlogEntries {
			back, err := bundle.EntryOf(e.LogEntry())
			if err != nil {
				t.Fatal(err)
			}
			b.VerificationMaterial.TlogEntries[i] = back
		}
		if out, _ := b.Bytes(); !bytes.Equal(out, raw) {
			t.Errorf("%s: log entries do not survive EntryOf(LogEntry()):\n%s", f, out)
		}
	}
}

func readTestdata(t testing.TB, f string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", f))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(raw)
}

// TestCosignFile: cosign v2's sign-blob --bundle file reads and writes
// back byte for byte; IsSigstore tells the two formats apart.
func TestCosignFile(t *testing.T) {
	raw := readTestdata(t, "cosign2-blob-bundle.json")
	c, err := bundle.ParseCosign(raw)
	if err != nil {
		t.Fatal(err)
	}
	if sig, err := c.Signature(); err != nil || len(sig) < 64 {
		t.Fatalf("signature %x %v", sig, err)
	}
	if pemBytes, err := c.CertificatePEM(); err != nil || pemBytes != nil {
		t.Fatalf("a key-based file has no certificate: %q %v", pemBytes, err)
	}
	if e, err := c.RekorBundle.Entry(); err != nil || e.LogIndex != 2 {
		t.Fatalf("entry %+v %v", e, err)
	}
	out, err := c.Bytes()
	if err != nil || !bytes.Equal(out, raw) {
		t.Errorf("written differently (%v):\ncosign:   %s\nhallmark: %s", err, raw, out)
	}
	if bundle.IsSigstore(raw) || !bundle.IsSigstore(readTestdata(t, "cosign3-blob-bundle.json")) {
		t.Error("IsSigstore does not tell the formats apart")
	}
	// A certificate given as PEM (not base64 of it) is read too.
	pemCert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	if p, err := (&bundle.Cosign{Base64Signature: "AA==", Cert: pemCert}).CertificatePEM(); err != nil || string(p) != pemCert {
		t.Errorf("PEM cert: %q %v", p, err)
	}
}

func TestParseCosignRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      `{`,
		"trailing data": `{"base64Signature":"AA=="} {}`,
		"no signature":  `{}`,
		"bad base64":    `{"base64Signature":"!!"}`,
		"url base64":    `{"base64Signature":"-_-_"}`,
		"bad cert":      `{"base64Signature":"AA==","cert":"not a certificate"}`,
		"empty entry":   `{"base64Signature":"AA==","rekorBundle":{"Payload":{}}}`,
		"body not b64":  `{"base64Signature":"AA==","rekorBundle":{"Payload":{"body":"!!","logID":"00"}}}`,
		"array":         `[]`,
	} {
		if _, err := bundle.ParseCosign([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "not json" && name != "array" && !errors.Is(err, bundle.ErrInvalidCosign) {
			t.Errorf("%s: %v does not wrap ErrInvalidCosign", name, err)
		}
	}
}

func TestBytesRejects(t *testing.T) {
	both := &bundle.Bundle{MediaType: "application/vnd.dev.sigstore.bundle.v0.3+json", DSSEEnvelope: &bundle.Envelope{},
		MessageSignature: &bundle.MessageSignature{}}
	if _, err := both.Bytes(); err == nil {
		t.Error("a bundle with both kinds of content was written")
	}
	if _, err := (&bundle.Bundle{MediaType: "application/json", DSSEEnvelope: &bundle.Envelope{}}).Bytes(); err == nil {
		t.Error("a bundle of another media type was written")
	}
	if _, err := bundle.EntryOf(&rekor.LogEntry{Body: []byte(`{}`), LogID: "ab"}); err == nil {
		t.Error("an entry whose body names no kind was converted")
	}
	if _, err := bundle.EntryOf(&rekor.LogEntry{Body: []byte(`{"apiVersion":"0.0.1","kind":"dsse"}`), LogID: "xyz"}); err == nil {
		t.Error("an entry whose log ID is not hex was converted")
	}
}

// FuzzParseCosign: hostile cosign bundle files never crash the parser, and
// what it accepts writes back to a file it accepts again.
func FuzzParseCosign(f *testing.F) {
	f.Add(readTestdata(f, "cosign2-blob-bundle.json"))
	f.Add([]byte(`{"base64Signature":"AA==","cert":"LS0tLS1CRUdJTg=="}`))
	f.Add([]byte(`{"base64Signature":"AA==","rekorBundle":{"SignedEntryTimestamp":"AA==","Payload":{"body":"e30=","logID":"ab"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := bundle.ParseCosign(raw)
		if err != nil {
			return
		}
		out, err := c.Bytes()
		if err != nil {
			t.Fatalf("accepted %q but cannot write it: %v", raw, err)
		}
		if _, err := bundle.ParseCosign(out); err != nil {
			t.Fatalf("written form %q does not parse: %v", out, err)
		}
	})
}
