package payload

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const testHex = "71b2055684c93a2b1416fc4502225cc661a1a3d30880662a481a27294788140f"

// TestNewStatementCosignSign checks the statement cosign v2.6 signs with
// --new-bundle-format (cosign-wire.md §2.4), in compact form.
func TestNewStatementCosignSign(t *testing.T) {
	st := NewStatement(CosignSignPredicateType, nil, Subject{Digest: map[string]string{"sha256": testHex}})
	b, err := st.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + testHex + `"}}],"predicateType":"https://sigstore.dev/cosign/sign/v1"}`
	if string(b) != want {
		t.Errorf("Bytes = %s\nwant  %s", b, want)
	}
	back, err := ParseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	if !back.HasSubjectDigest("sha256:"+testHex) || back.HasSubjectDigest("sha512:"+testHex) || back.HasSubjectDigest(testHex) {
		t.Errorf("HasSubjectDigest wrong for %+v", back.Subject)
	}
}

func TestNewStatementWithPredicate(t *testing.T) {
	st := NewStatement("https://slsa.dev/provenance/v1", json.RawMessage(`{"buildDefinition": {"buildType": "x"}}`),
		Subject{Name: "reg/app", Digest: map[string]string{"sha256": testHex}})
	b, err := st.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"reg/app","digest":{"sha256":"` + testHex + `"}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{"buildDefinition":{"buildType":"x"}}}`
	if string(b) != want {
		t.Errorf("Bytes = %s\nwant  %s", b, want)
	}
}

func TestParseStatement(t *testing.T) {
	sub := `"subject":[{"digest":{"sha256":"` + testHex + `"}}]`
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"v1", `{"_type":"https://in-toto.io/Statement/v1",` + sub + `,"predicateType":"p"}`, true},
		{"v0.1 with predicate", `{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"p",` + sub + `,"predicate":{"a":[1]}}`, true},
		{"protojson spacing", `{"_type":"https://in-toto.io/Statement/v1", ` + sub + `, "predicateType":"p"}`, true},
		{"other algorithm", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"gitCommit":"abc"}}],"predicateType":"p"}`, true},
		{"sha512", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha512":"` + strings.Repeat("0", 128) + `"}}],"predicateType":"p"}`, true},
		{"not JSON", `x`, false},
		{"null", `null`, false},
		{"trailing", `{"_type":"https://in-toto.io/Statement/v1",` + sub + `,"predicateType":"p"}]`, false},
		{"wrong _type", `{"_type":"https://in-toto.io/Statement/v2",` + sub + `,"predicateType":"p"}`, false},
		{"no predicateType", `{"_type":"https://in-toto.io/Statement/v1",` + sub + `}`, false},
		{"no subject", `{"_type":"https://in-toto.io/Statement/v1","predicateType":"p"}`, false},
		{"empty digest set", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{}}],"predicateType":"p"}`, false},
		{"empty digest value", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"gitCommit":""}}],"predicateType":"p"}`, false},
		{"short sha256", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"abc"}}],"predicateType":"p"}`, false},
		{"uppercase sha256", `{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"` + strings.ToUpper(testHex) + `"}}],"predicateType":"p"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStatement([]byte(tc.in))
			if tc.ok && err != nil {
				t.Fatalf("ParseStatement: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidStatement) {
				t.Fatalf("ParseStatement error = %v, want ErrInvalidStatement", err)
			}
		})
	}
}
