package meta

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// Search fields: what an incident search asks for besides annotations.
// Each signature has facts (Field, Value, Basis) for them, computed once
// when it is recorded (Facts), so a search is one index range.
const (
	FieldCommit   = "commit"   // commit SHA, lowercase
	FieldPipeline = "pipeline" // pipeline (GitLab) or workflow run (GitHub) id
	FieldJob      = "job"      // job id, or the run invocation URL when it names no GitLab job
	FieldProject  = "project"  // project path: the repository's path prefixes, the token's project
	FieldRef      = "ref"      // git ref, full (refs/heads/main) and short (main)
	FieldUser     = "user"     // CI user: the token's user_login, else the signer's claim
	FieldRunner   = "runner"   // runner id (only the CA's claims know it)
	FieldIdentity = "identity" // certificate identity (SAN) or key fingerprint
	FieldIssuer   = "issuer"   // OIDC issuer of the certificate
)

// Fields lists the search fields.
var Fields = []string{FieldCommit, FieldPipeline, FieldJob, FieldProject, FieldRef, FieldUser, FieldRunner, FieldIdentity, FieldIssuer}

// Bases of a fact: what the value rests on.
const (
	// BasisClaims: the claims of the verified ID token, recorded by this
	// server's CA when it issued the signature's certificate.
	BasisClaims = "ca-claims"
	// BasisCertificate: the signing certificate (its extensions, SAN,
	// issuer), as good as the signature's status.
	BasisCertificate = "certificate"
	// BasisKey: the fingerprint of the signing key.
	BasisKey = "key"
	// BasisRepository: where the signature is stored.
	BasisRepository = "repository"
	// BasisAnnotation: what the signer wrote into the signed payload,
	// self-asserted; used only where no evidence speaks.
	BasisAnnotation = "annotation"
)

// Evidence reports whether a fact of basis b found on a signature of
// status is evidence rather than the signer's assertion: the CA's claims
// and the repository always, a certificate or key once the signature
// verified.
func Evidence(basis, status string) bool {
	switch basis {
	case BasisClaims, BasisRepository:
		return true
	case BasisCertificate, BasisKey:
		return status == StatusVerified
	}
	return false
}

// Fact is one searchable value of a signature.
type Fact struct {
	Field, Value, Basis string
}

// IssuedCertificate is what the CA records when it issues a certificate:
// the claims of the verified ID token that the certificate cannot carry
// (GitLab: pipeline_id, job_id, user_login, runner_id, ...). Signatures
// made with the certificate find it by CertSHA256.
type IssuedCertificate struct {
	SHA256   string // hex SHA-256 of the DER certificate
	Serial   string // hex
	IssuedAt time.Time
	NotAfter time.Time
	Issuer   string // the token's issuer
	Subject  string // the certificate identity
	// ProjectPath is the token's project (GitLab project_path), if any.
	ProjectPath string
	// Claims is the verified token's claims as JSON, as the CA saw them.
	Claims []byte
	// Searchable are the claims searches use (SearchableClaims), as text.
	Searchable map[string]string
}

// SearchableClaims are the token claims kept as key/value pairs for search
// (GitLab's names; GitHub's where they differ).
var SearchableClaims = []string{"sha", "ref", "ref_type", "project_path", "repository", "pipeline_id", "run_id",
	"job_id", "user_login", "actor", "runner_id", "runner_environment", "pipeline_source"}

// ShownClaims are the token claims the API shows with a signature (the
// whole record stays with the CA; e-mail addresses, audiences and token ids
// are not shown).
var ShownClaims = append(slices.Clone(SearchableClaims), "namespace_path", "project_id", "user_id", "user_access_level",
	"ref_protected", "environment", "deployment_tier", "ci_config_ref_uri", "ci_config_sha", "job_project_path", "sub", "iss", "iat")

// CertificateRecord is the CA's record of a signature's certificate.
type CertificateRecord struct {
	SHA256, Serial     string
	IssuedAt, NotAfter time.Time
	Issuer, Subject    string
	ProjectPath        string
	Claims             map[string]string // ShownClaims present in the token, as text
}

// Certificates is the CA's record of what it issued.
type Certificates interface {
	// RecordCertificates stores issued certificates; one already recorded
	// (same SHA256) is left as it is.
	RecordCertificates(ctx context.Context, certs ...IssuedCertificate) error
}

// factRule says where a search field's values come from: evidence (the
// CA's claims, certificate extensions by dotted OID) and, only when no
// evidence has a value, self-asserted annotations.
type factRule struct {
	field       string
	claims      []string
	extensions  []string
	annotations []string
	// compare: an annotation whose value no evidence value equals is a
	// contradiction (user is not compared: GitLab's annotation is the
	// display name, the token's claim the login).
	compare bool
}

var factRules = []factRule{
	{field: FieldCommit, claims: []string{"sha"}, extensions: []string{fulcio.OID(fulcio.SourceRepositoryDigest).String()},
		annotations: []string{"com.gitlab.ci.commit.sha", "org.opencontainers.image.revision", "com.github.actions.commit.sha"}, compare: true},
	{field: FieldPipeline, claims: []string{"pipeline_id", "run_id"},
		annotations: []string{"com.gitlab.ci.pipeline.id", "com.gitlab.ci.pipeline.url", "com.github.actions.run.id", "com.github.actions.run.url"}, compare: true},
	{field: FieldJob, claims: []string{"job_id"}, extensions: []string{fulcio.OID(fulcio.RunInvocationURI).String()},
		annotations: []string{"com.gitlab.ci.job.id", "com.gitlab.ci.job.url"}, compare: true},
	{field: FieldRef, claims: []string{"ref"}, extensions: []string{fulcio.OID(fulcio.SourceRepositoryRef).String()},
		annotations: []string{"com.gitlab.ci.commit.ref.name", "com.github.actions.ref.name"}, compare: true},
	{field: FieldProject, claims: []string{"project_path", "repository"},
		annotations: []string{"com.gitlab.ci.project.path", "com.github.actions.repository"}, compare: true},
	{field: FieldUser, claims: []string{"user_login", "actor"},
		annotations: []string{"com.gitlab.ci.user.name", "com.github.actions.actor"}},
	{field: FieldRunner, claims: []string{"runner_id"}},
}

// EvidenceExtensions are the certificate extensions (dotted OIDs) that
// facts and contradictions rest on.
var EvidenceExtensions = func() []string {
	var out []string
	for _, r := range factRules {
		out = append(out, r.extensions...)
	}
	return out
}()

// NormalizeFact returns the form of value that field's facts are stored
// and searched in: a commit in lowercase, a pipeline or job URL as its id
// (…/-/pipelines/<id>, …/actions/runs/<id>, …/-/jobs/<id>), the rest as is.
func NormalizeFact(field, value string) string {
	value = strings.TrimSpace(value)
	switch field {
	case FieldCommit:
		return strings.ToLower(value)
	case FieldPipeline:
		return idAfter(value, "/-/pipelines/", "/actions/runs/")
	case FieldJob:
		return idAfter(value, "/-/jobs/")
	}
	return value
}

// idAfter returns the decimal id that follows one of the markers in a URL
// (up to the next '/', '?' or '#'), or s unchanged.
func idAfter(s string, markers ...string) string {
	for _, m := range markers {
		i := strings.LastIndex(s, m)
		if i < 0 {
			continue
		}
		rest := s[i+len(m):]
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			rest = rest[:j]
		}
		if rest != "" && strings.Trim(rest, "0123456789") == "" {
			return rest
		}
	}
	return s
}

// refForms are the forms of a git ref that a search for either finds:
// refs/heads/x and refs/tags/x also as x; a short name as itself and, when
// refType (the token's ref_type) says which, as the full ref.
func refForms(ref, refType string) []string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if short, ok := strings.CutPrefix(ref, p); ok && short != "" {
			return []string{ref, short}
		}
	}
	switch refType {
	case "branch":
		return []string{ref, "refs/heads/" + ref}
	case "tag":
		return []string{ref, "refs/tags/" + ref}
	}
	return []string{ref}
}

// values returns the normalized values of rule r from the evidence
// (claims, certificate extensions) and from the annotations, each with its
// basis and source key.
func (r factRule) values(s *Signature, claims map[string]string) (evidence, asserted []sourced) {
	add := func(dst *[]sourced, basis, key, v string, refType string) {
		if strings.TrimSpace(v) == "" {
			return
		}
		vs := []string{NormalizeFact(r.field, v)}
		if r.field == FieldRef {
			vs = refForms(strings.TrimSpace(v), refType)
		}
		for _, v := range vs {
			*dst = append(*dst, sourced{Fact{r.field, v, basis}, key})
		}
	}
	for _, c := range r.claims {
		add(&evidence, BasisClaims, c, claims[c], claims["ref_type"])
	}
	for _, oid := range r.extensions {
		add(&evidence, BasisCertificate, oid, s.CertExtensions[oid], "")
	}
	for _, a := range r.annotations {
		add(&asserted, BasisAnnotation, a, s.Annotations[a], "")
	}
	return evidence, asserted
}

type sourced struct {
	Fact
	key string // the claim, extension OID or annotation it came from
}

// Facts returns what s says for each search field, given the searchable
// claims the CA recorded for its certificate (nil when none). A pushed
// annotation never overrides what a verified token or a certificate said:
// a field's annotations count only when neither has a value for it. The
// project field also has the repository's path and each of its
// '/'-prefixes (basis repository); identity and issuer come from the
// signature's certificate or key. Each (field, value) appears once, with
// the strongest basis.
func Facts(s *Signature, claims map[string]string) []Fact {
	var out []Fact
	seen := map[[2]string]bool{}
	add := func(f Fact) {
		k := [2]string{f.Field, f.Value}
		if f.Value == "" || seen[k] {
			return
		}
		seen[k] = true
		out = append(out, f)
	}
	for _, r := range factRules {
		ev, as := r.values(s, claims)
		// The repository is evidence of a project: its annotations only
		// show up as contradictions of the token's project.
		if len(ev) == 0 && r.field != FieldProject {
			ev = as
		}
		for _, f := range ev {
			add(f.Fact)
		}
		if r.field == FieldProject {
			for p := s.Repository; p != ""; {
				add(Fact{FieldProject, p, BasisRepository})
				i := strings.LastIndexByte(p, '/')
				if i < 0 {
					break
				}
				p = p[:i]
			}
		}
	}
	basis := BasisKey
	if s.CertIssuer != "" || len(s.CertExtensions) > 0 || s.CertSHA256 != "" {
		basis = BasisCertificate
	}
	add(Fact{FieldIdentity, s.Signer, basis})
	add(Fact{FieldIssuer, s.CertIssuer, BasisCertificate})
	return out
}

// Contradiction is an annotation that says otherwise than the evidence for
// its field (the console marks it).
type Contradiction struct {
	Field      string   `json:"field"`
	Annotation string   `json:"annotation"` // the annotation key
	Asserted   string   `json:"asserted"`   // its value
	Evidence   []string `json:"evidence"`   // what the evidence says
	Basis      string   `json:"basis"`      // where the evidence comes from (ca-claims, certificate)
}

// Contradictions lists the annotations of s that disagree with the
// evidence (claims, certificate) for commit, pipeline, job, ref and
// project: an annotation whose normalized value is none of the evidence's.
func Contradictions(s *Signature, claims map[string]string) []Contradiction {
	var out []Contradiction
	for _, r := range factRules {
		if !r.compare {
			continue
		}
		ev, as := r.values(s, claims)
		if len(ev) == 0 {
			continue
		}
		var vals []string
		basis := ev[0].Basis
		for _, e := range ev {
			if !slices.Contains(vals, e.Value) {
				vals = append(vals, e.Value)
			}
		}
		byKey := map[string]bool{}
		for _, a := range as {
			byKey[a.key] = byKey[a.key] || slices.Contains(vals, a.Value)
		}
		for _, key := range r.annotations {
			if ok, present := byKey[key]; present && !ok {
				out = append(out, Contradiction{Field: r.field, Annotation: key, Asserted: s.Annotations[key], Evidence: vals, Basis: basis})
			}
		}
	}
	return out
}

// SignatureSearch is an incident search: every condition must hold.
type SignatureSearch struct {
	// Facts: each must be among the signature's facts.
	Facts []FactFilter
	// Annotations: each key must carry exactly the value.
	Annotations []KeyValue
	// CertExtensions: each extension (dotted OID) must carry the value.
	CertExtensions []KeyValue
	// Statuses, when set: the signature's status is one of them.
	Statuses []string
	// Since and Until bound when the signature was recorded: [Since,
	// Until); a zero time leaves that side open.
	Since, Until time.Time
	// Access is what the caller may see.
	Access Access
	// After, when set, continues a search after this position.
	After *Cursor
	// Limit is the page size (1..MaxSearchLimit).
	Limit int
	// Brief loads of each signature what a page of results shows: of its
	// certificate extensions only those facts rest on
	// (EvidenceExtensions), of its facts only those of the fields searched
	// for. Exports and the image page load everything.
	Brief bool
}

// MaxSearchLimit bounds SignatureSearch.Limit: a page of 1,000 and one
// more, which tells whether another page follows.
const MaxSearchLimit = 1001

// FactFilter is one fact condition: Field equals Value, or starts with it
// when Prefix is set.
type FactFilter struct {
	Field, Value string
	Prefix       bool
}

// KeyValue is an annotation or certificate extension condition.
type KeyValue struct{ Key, Value string }

// Access is the set of repositories a caller may see, in a form a query
// filters by: everything, the repositories of public projects, those of
// further projects (each project's repositories are those whose longest
// project path prefix it is), and single repositories. The zero value
// sees nothing.
type Access struct {
	All          bool
	Public       bool
	Projects     []string
	Repositories []string
}

// Cursor is a position in a search's order: newest first by the time a
// signature was recorded, then by id.
type Cursor struct {
	Created int64 // Unix nanoseconds
	ID      int64
}

// CursorOf returns the position of s.
func CursorOf(s *Signature) Cursor { return Cursor{Created: s.Created.UnixNano(), ID: s.ID} }
