package bundle_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/payload"
)

func realBundle(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cosign3-bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseReal reads what real cosign v3 attached: a DSSE envelope over an
// in-toto statement, the certificate and one log entry with a SET and an
// inclusion proof.
func TestParseReal(t *testing.T) {
	b, err := bundle.Parse(realBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.DSSEEnvelope == nil || b.DSSEEnvelope.PayloadType != payload.InTotoPayloadType || len(b.DSSEEnvelope.Signatures) != 1 {
		t.Fatalf("envelope %+v", b.DSSEEnvelope)
	}
	if _, err := payload.ParseStatement(b.DSSEEnvelope.Payload); err != nil {
		t.Fatalf("statement: %v", err)
	}
	leaf, chain, err := b.Certificates()
	if err != nil || leaf == nil || len(chain) != 0 {
		t.Fatalf("certificates %v %v %v", leaf, chain, err)
	}
	if len(b.VerificationMaterial.TlogEntries) != 1 {
		t.Fatalf("%d log entries", len(b.VerificationMaterial.TlogEntries))
	}
	e := b.VerificationMaterial.TlogEntries[0].LogEntry()
	if len(e.Body) == 0 || len(e.SET) == 0 || e.Proof == nil || e.Proof.Checkpoint == "" || len(e.LogID) != 64 {
		t.Fatalf("log entry %+v", e)
	}
}

func TestParseRejects(t *testing.T) {
	many := `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{},"verificationMaterial":{"tlogEntries":[` +
		strings.TrimSuffix(strings.Repeat(`{},`, bundle.MaxEntries+1), ",") + `]}}`
	for name, in := range map[string]string{
		"not json":        `{`,
		"other media":     `{"mediaType":"application/json","dsseEnvelope":{}}`,
		"no content":      `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`,
		"too many":        many,
		"bad int64":       `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{},"verificationMaterial":{"tlogEntries":[{"logIndex":"x"}]}}`,
		"bad base64":      `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"!!"}}`,
		"bad certificate": `{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{},"verificationMaterial":{"certificate":{"rawBytes":"AAAA"}}}`,
	} {
		b, err := bundle.Parse([]byte(in))
		if err == nil {
			_, _, err = b.Certificates()
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if name != "bad certificate" && !errors.Is(err, bundle.ErrInvalid) {
			t.Errorf("%s: %v does not wrap ErrInvalid", name, err)
		}
	}
}

// FuzzParse: hostile bundles never crash the parser, the certificate
// reading or the log entry conversion.
func FuzzParse(f *testing.F) {
	f.Add(realBundle(f))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"tlogEntries":[{"logIndex":"x"}]}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := bundle.Parse(raw)
		if err != nil {
			if !errors.Is(err, bundle.ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if len(b.VerificationMaterial.TlogEntries) > bundle.MaxEntries {
			t.Fatalf("accepted %d entries", len(b.VerificationMaterial.TlogEntries))
		}
		b.Certificates()
		for _, e := range b.VerificationMaterial.TlogEntries {
			e.LogEntry()
		}
		if out, err := b.Bytes(); err == nil {
			if _, err := bundle.Parse(out); err != nil {
				t.Fatalf("written form %q does not parse: %v", out, err)
			}
		}
	})
}
