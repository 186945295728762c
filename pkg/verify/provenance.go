package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"sort"
	"strconv"
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
	if c == nil {
		return "", false
	}
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

// provenanceRule maps an annotation to a certificate extension and says
// whether the annotation's value agrees with the extension's.
type provenanceRule struct {
	ext   int
	agree func(certValue, annotation string) bool
}

func trimRef(v string) string {
	v = strings.TrimPrefix(v, "refs/heads/")
	return strings.TrimPrefix(v, "refs/tags/")
}

func equal(c, a string) bool { return c == a }

// refName: the certificate has "refs/heads/main", the annotation "main".
func refName(c, a string) bool { return c == a || trimRef(c) == a }

// projectPath: the certificate has the project URL, the annotation the
// path (group/app): the URL must end in "/" + path.
func projectPath(c, a string) bool { return a != "" && strings.HasSuffix(c, "/"+strings.Trim(a, "/")) }

// pipelineURL: a pipeline URL of the certificate's project.
func pipelineURL(c, a string) bool {
	rest, ok := strings.CutPrefix(a, strings.TrimRight(c, "/")+"/-/pipelines/")
	return ok && rest != "" && !strings.Contains(rest, "/")
}

// jobID: the certificate's job URL (.1.21) ends in /-/jobs/<id>.
func jobID(c, a string) bool { return strings.HasSuffix(c, "/-/jobs/"+a) }

// githubRepo: the certificate has https://github.com/owner/repo.
func githubRepo(c, a string) bool { return projectPath(c, a) }

// githubRunURL: the certificate's run URL (.1.21) is
// <server>/<repo>/actions/runs/<id>/attempts/<n>.
func githubRunURL(c, a string) bool {
	return a != "" && (c == a || strings.HasPrefix(c, a+"/attempts/"))
}

// githubRunID: the run id is the path segment after /actions/runs/.
func githubRunID(c, a string) bool {
	_, rest, ok := strings.Cut(c, "/actions/runs/")
	id, _, _ := strings.Cut(rest, "/")
	return ok && id == a
}

// provenanceRules says which annotation each Fulcio extension attests
// (GitLab's claim mapping in fulcio docs/oid-info.md; GitHub's likewise).
var provenanceRules = map[string]provenanceRule{
	"com.gitlab.ci.commit.sha":          {13, equal},
	"org.opencontainers.image.revision": {13, equal},
	"com.gitlab.ci.commit.ref.name":     {14, refName},
	"com.gitlab.ci.project.path":        {12, projectPath},
	"org.opencontainers.image.source":   {12, equal},
	"com.gitlab.ci.job.url":             {21, equal},
	"com.gitlab.ci.job.id":              {21, jobID},
	"com.gitlab.ci.pipeline.url":        {12, pipelineURL},
	"com.github.actions.commit.sha":     {13, equal},
	"com.github.actions.ref.name":       {14, refName},
	"com.github.actions.repository":     {12, githubRepo},
	"com.github.actions.run.url":        {21, githubRunURL},
	"com.github.actions.run.id":         {21, githubRunID},
}

// CheckProvenance reports, for each annotation, whether the certificate
// attests the same value. A contradiction means the signer claimed
// provenance its CI identity does not support. A nil certificate (a
// key-based signature) attests nothing.
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
			if cv, ok := FulcioExtension(c, rule.ext); c != nil && ok {
				pc.Attested = cv
				if rule.agree(cv, v) {
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

// ExtensionNames names Fulcio's certificate extensions
// 1.3.6.1.4.1.57264.1.N by N, as fulcio's docs/oid-info.md does (in
// lowerCamelCase, as sigstore-go's certificate summary).
var ExtensionNames = map[int]string{
	1: "issuerV1", 2: "githubWorkflowTrigger", 3: "githubWorkflowSha", 4: "githubWorkflowName",
	5: "githubWorkflowRepository", 6: "githubWorkflowRef", 8: "issuer", 9: "buildSignerURI",
	10: "buildSignerDigest", 11: "runnerEnvironment", 12: "sourceRepositoryURI", 13: "sourceRepositoryDigest",
	14: "sourceRepositoryRef", 15: "sourceRepositoryIdentifier", 16: "sourceRepositoryOwnerURI",
	17: "sourceRepositoryOwnerIdentifier", 18: "buildConfigURI", 19: "buildConfigDigest", 20: "buildTrigger",
	21: "runInvocationURI", 22: "sourceRepositoryVisibilityAtSigning", 23: "deploymentEnvironment", 24: "tokenSubject",
}

// ExtensionOID resolves an extension given by name (ExtensionNames), by
// number ("13") or by dotted OID to its dotted OID.
func ExtensionOID(s string) (string, bool) {
	for n, name := range ExtensionNames {
		if strings.EqualFold(name, s) {
			return fulcioOID(n).String(), true
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 1000 {
		return fulcioOID(n).String(), true
	}
	prefix := fulcioArc.String() + "."
	if rest, ok := strings.CutPrefix(s, prefix); ok {
		if n, err := strconv.Atoi(rest); err == nil && n > 0 {
			return fulcioOID(n).String(), true
		}
	}
	return "", false
}
