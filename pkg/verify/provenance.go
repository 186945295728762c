package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"sort"
	"strings"
)

// Fulcio extension OIDs (1.3.6.1.4.1.57264.1.N) whose values can confirm
// provenance annotations.
var fulcioArc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1}

func fulcioOID(n int) asn1.ObjectIdentifier {
	return append(append(asn1.ObjectIdentifier{}, fulcioArc...), n)
}

// FulcioExtension returns the value of Fulcio extension .1.n in c (DER
// UTF8String for n >= 8, raw string below), and whether it is present.
func FulcioExtension(c *x509.Certificate, n int) (string, bool) {
	oid := fulcioOID(n)
	for _, e := range c.Extensions {
		if !e.Id.Equal(oid) {
			continue
		}
		if n < 8 {
			return string(e.Value), true
		}
		var s string
		if _, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8"); err != nil {
			return "", false
		}
		return s, true
	}
	return "", false
}

// Provenance check outcomes.
const (
	ProvenanceMatch         = "match"
	ProvenanceContradiction = "contradiction"
	ProvenanceNotAttested   = "not attested"
)

// ProvenanceCheck compares one signed annotation with what the signing
// certificate attests.
type ProvenanceCheck struct {
	Annotation string `json:"annotation"`
	Value      string `json:"value"`
	Extension  string `json:"extension,omitempty"` // OID of the certificate field compared
	Attested   string `json:"attested,omitempty"`  // the certificate's value
	Status     string `json:"status"`
}

// provenanceRule maps an annotation to a certificate extension and how to
// derive the comparable value from it.
type provenanceRule struct {
	ext    int
	derive func(certValue string) string
}

func lastSegment(v string) string { return v[strings.LastIndexByte(v, '/')+1:] }

func trimRef(v string) string {
	v = strings.TrimPrefix(v, "refs/heads/")
	return strings.TrimPrefix(v, "refs/tags/")
}

func urlPath(v string) string {
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	}
	if i := strings.IndexByte(v, '/'); i >= 0 {
		return v[i+1:]
	}
	return ""
}

func same(v string) string { return v }

var provenanceRules = map[string]provenanceRule{
	"com.gitlab.ci.commit.sha":          {13, same},
	"org.opencontainers.image.revision": {13, same},
	"com.gitlab.ci.commit.ref.name":     {14, trimRef},
	"com.gitlab.ci.project.path":        {12, urlPath},
	"org.opencontainers.image.source":   {12, same},
	"com.gitlab.ci.job.url":             {21, same},
	"com.gitlab.ci.job.id":              {21, lastSegment},
}

// CheckProvenance reports, for each annotation, whether the certificate
// attests the same value. A contradiction means the signer claimed
// provenance its CI identity does not support.
func CheckProvenance(c *x509.Certificate, annotations map[string]any) []ProvenanceCheck {
	var out []ProvenanceCheck
	for _, k := range sortedAnyKeys(annotations) {
		v, ok := annotations[k].(string)
		if !ok {
			continue
		}
		pc := ProvenanceCheck{Annotation: k, Value: v, Status: ProvenanceNotAttested}
		if rule, ok := provenanceRules[k]; ok {
			pc.Extension = fulcioOID(rule.ext).String()
			if cv, ok := FulcioExtension(c, rule.ext); ok {
				pc.Attested = cv
				if rule.derive(cv) == v {
					pc.Status = ProvenanceMatch
				} else {
					pc.Status = ProvenanceContradiction
				}
			}
		}
		out = append(out, pc)
	}
	return out
}

// ProvenanceError lists the contradictions found by CheckProvenance.
func ProvenanceError(checks []ProvenanceCheck) error {
	var bad []string
	for _, c := range checks {
		if c.Status == ProvenanceContradiction {
			bad = append(bad, fmt.Sprintf("%s=%q but the certificate attests %q (%s)", c.Annotation, c.Value, c.Attested, c.Extension))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("provenance contradicts the signing certificate: %s", strings.Join(bad, "; "))
}

func sortedAnyKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
