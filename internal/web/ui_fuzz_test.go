package web

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// FuzzProvenanceRendering feeds the console's readers of pushed content
// (SLSA predicates of attestations, log entry bodies, redirect targets)
// arbitrary bytes: they must never panic, and what they return for
// garbage is empty, not made up.
func FuzzProvenanceRendering(f *testing.F) {
	for _, seed := range []string{
		`{"buildDefinition":{"buildType":"https://docs.gitlab.com/ci/pipeline_security/slsa/provenance_v1","externalParameters":{"source":"https://gitlab.example/g/a","entryPoint":"build"},"resolvedDependencies":[{"uri":"git+https://gitlab.example/g/a@refs/heads/main","digest":{"gitCommit":"abc"}}]},"runDetails":{"builder":{"id":"https://gitlab.example/g/a/-/runners/1"},"metadata":{"invocationId":"https://gitlab.example/g/a/-/jobs/7"}}}`,
		`{"builder":{"id":"b"},"buildType":"t","invocation":{"configSource":{"uri":"u","digest":{"sha1":"x"},"entryPoint":"e"}},"materials":[{"uri":"m"}]}`,
		`{"kind":"hashedrekord","apiVersion":"0.0.1","spec":{"data":{"hash":{"algorithm":"sha256","value":"ab"}},"signature":{"content":"AA==","publicKey":{"content":"LS0tLS1CRUdJTg=="}}}}`,
		`{"kind":"dsse","spec":{"payloadHash":{"algorithm":"sha256","value":"x"},"signatures":[{"verifier":"!!"}]}}`,
		`null`, `[]`, `{"buildDefinition":7}`, `/ui/repo/a`, `//evil.example/`, "\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, pt := range []string{payload.PredicateSLSA1, payload.PredicateSLSA02, "https://example/other"} {
			v := slsaSummary(payload.Statement{PredicateType: pt, Predicate: json.RawMessage(b)})
			if v != nil && (pt == "https://example/other" || !json.Valid(b)) {
				t.Fatalf("a summary of %s from %q", pt, b)
			}
			if v != nil && len(v.Sources) > 11 {
				t.Fatalf("%d sources: the list is not bounded", len(v.Sources))
			}
		}
		rows := entryBody(b)
		if len(rows) == 0 || len(rows) > 6 {
			t.Fatalf("entryBody gave %d rows", len(rows))
		}
		if n := localNext(string(b)); !strings.HasPrefix(n, UIPath) || strings.HasPrefix(n, "//") {
			t.Fatalf("localNext(%q) = %q leaves the console", b, n)
		}
		if l := safeLink(string(b)); l != "" && !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "https://") {
			t.Fatalf("safeLink(%q) = %q", b, l)
		}
	})
}
