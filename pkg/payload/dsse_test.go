package payload

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestPAE(t *testing.T) {
	tests := []struct {
		typ, body, want string
	}{
		// Test vector of the DSSE v1 protocol specification.
		{"http://example.com/HelloWorld", "hello world", "DSSEv1 29 http://example.com/HelloWorld 11 hello world"},
		{"", "", "DSSEv1 0  0 "},
		{InTotoPayloadType, "{}", "DSSEv1 28 application/vnd.in-toto+json 2 {}"},
		{"t", "héllo", "DSSEv1 1 t 6 héllo"}, // lengths are bytes, not runes
	}
	for _, tc := range tests {
		if got := PAE(tc.typ, []byte(tc.body)); string(got) != tc.want {
			t.Errorf("PAE(%q, %q) = %q, want %q", tc.typ, tc.body, got, tc.want)
		}
	}
}

func readDSSE(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "dsse", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseEnvelopeCosign parses envelopes written by real cosign v2.6.5
// (attest-blob legacy output and a --new-bundle-format bundle's protojson
// dsseEnvelope) and verifies their signatures over our PAE with the
// cosign-generated public key.
func TestParseEnvelopeCosign(t *testing.T) {
	block, _ := pem.Decode(readDSSE(t, "cosign.pub"))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file          string
		statementType string
		predicateType string
		sameBytes     bool // Bytes() reproduces the file
	}{
		{"attest-blob-v0.1.json", StatementTypeV01, "https://slsa.dev/provenance/v1", true},
		{"attest-blob-v1.json", StatementTypeV1, "https://example.com/p/v1", true},
		{"bundle-v1.json", StatementTypeV1, "https://example.com/p/v1", false},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			raw := readDSSE(t, tc.file)
			env, err := ParseEnvelope(raw)
			if err != nil {
				t.Fatalf("ParseEnvelope: %v", err)
			}
			if env.PayloadType != InTotoPayloadType || len(env.Signatures) != 1 || env.Signatures[0].KeyID != "" {
				t.Errorf("envelope = %+v", env)
			}
			pae, err := env.PAE()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := env.Signatures[0].Decode()
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.Sum256(pae)
			if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), h[:], sig) {
				t.Errorf("cosign's signature does not verify over our PAE")
			}
			body, err := env.DecodePayload()
			if err != nil {
				t.Fatal(err)
			}
			st, err := ParseStatement(body)
			if err != nil {
				t.Fatalf("ParseStatement: %v", err)
			}
			if st.Type != tc.statementType || st.PredicateType != tc.predicateType {
				t.Errorf("statement = %+v", st)
			}
			if !st.HasSubjectDigest("sha256:e997afd18e5f6be004fc193aed2c90291e68ab2c7599a62538c935b7fca6ab0f") {
				t.Errorf("subject digest of the signed blob not found in %+v", st.Subject)
			}
			out, err := env.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if tc.sameBytes && !bytes.Equal(out, raw) {
				t.Errorf("Bytes differs from cosign's envelope\n got: %s\nwant: %s", out, raw)
			}
		})
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	payload := []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)
	e := NewEnvelope(InTotoPayloadType, payload)
	if _, err := e.Bytes(); !errors.Is(err, ErrInvalidEnvelope) {
		t.Errorf("unsigned envelope: Bytes error = %v, want ErrInvalidEnvelope", err)
	}
	e.AddSignature("", []byte{0x30, 0x01, 0x02})
	b, err := e.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"payloadType":"application/vnd.in-toto+json","payload":"eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==","signatures":[{"keyid":"","sig":"MAEC"}]}`
	if string(b) != want {
		t.Errorf("Bytes = %s\nwant  %s", b, want)
	}
	back, err := ParseEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := back.DecodePayload()
	if !bytes.Equal(got, payload) {
		t.Errorf("payload = %q", got)
	}
}

func TestParseEnvelope(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"std base64", `{"payloadType":"t","payload":"aGk=","signatures":[{"sig":"MAEC"}]}`, true},
		{"url-safe unpadded", `{"payloadType":"t","payload":"_-8","signatures":[{"keyid":"k","sig":"_-8"}]}`, true},
		{"several signatures", `{"payloadType":"t","payload":"aGk=","signatures":[{"sig":"MAEC"},{"sig":"MAED"}]}`, true},
		{"empty", ``, false},
		{"not JSON", `payload`, false},
		{"array", `[]`, false},
		{"null", `null`, false},
		{"trailing", `{"payloadType":"t","payload":"aGk=","signatures":[{"sig":"MAEC"}]} x`, false},
		{"missing payloadType", `{"payload":"aGk=","signatures":[{"sig":"MAEC"}]}`, false},
		{"empty payloadType", `{"payloadType":"","payload":"aGk=","signatures":[{"sig":"MAEC"}]}`, false},
		{"missing payload", `{"payloadType":"t","signatures":[{"sig":"MAEC"}]}`, false},
		{"empty payload", `{"payloadType":"t","payload":"","signatures":[{"sig":"MAEC"}]}`, false},
		{"payload not base64", `{"payloadType":"t","payload":"!!","signatures":[{"sig":"MAEC"}]}`, false},
		{"payload not string", `{"payloadType":"t","payload":1,"signatures":[{"sig":"MAEC"}]}`, false},
		{"no signatures", `{"payloadType":"t","payload":"aGk="}`, false},
		{"empty signatures", `{"payloadType":"t","payload":"aGk=","signatures":[]}`, false},
		{"empty sig", `{"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k","sig":""}]}`, false},
		{"sig not base64", `{"payloadType":"t","payload":"aGk=","signatures":[{"sig":"%%%"}]}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnvelope([]byte(tc.in))
			if tc.ok && err != nil {
				t.Fatalf("ParseEnvelope: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidEnvelope) {
				t.Fatalf("ParseEnvelope error = %v, want ErrInvalidEnvelope", err)
			}
		})
	}
}
