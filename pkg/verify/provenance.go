package verify

import (
	"crypto/x509"
	"fmt"
	"sort"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

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
	"com.gitlab.ci.commit.sha":          {fulcio.SourceRepositoryDigest, equal},
	"org.opencontainers.image.revision": {fulcio.SourceRepositoryDigest, equal},
	"com.gitlab.ci.commit.ref.name":     {fulcio.SourceRepositoryRef, refName},
	"com.gitlab.ci.project.path":        {fulcio.SourceRepositoryURI, projectPath},
	"org.opencontainers.image.source":   {fulcio.SourceRepositoryURI, equal},
	"com.gitlab.ci.job.url":             {fulcio.RunInvocationURI, equal},
	"com.gitlab.ci.job.id":              {fulcio.RunInvocationURI, jobID},
	"com.gitlab.ci.pipeline.url":        {fulcio.SourceRepositoryURI, pipelineURL},
	"com.github.actions.commit.sha":     {fulcio.SourceRepositoryDigest, equal},
	"com.github.actions.ref.name":       {fulcio.SourceRepositoryRef, refName},
	"com.github.actions.repository":     {fulcio.SourceRepositoryURI, githubRepo},
	"com.github.actions.run.url":        {fulcio.RunInvocationURI, githubRunURL},
	"com.github.actions.run.id":         {fulcio.RunInvocationURI, githubRunID},
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
			pc.Extension = fulcio.OID(rule.ext).String()
			if cv, ok := fulcio.Value(c, rule.ext); ok {
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
