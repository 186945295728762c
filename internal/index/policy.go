package index

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// RootHallmark names this server's own trust root (its CA, CT log and
// transparency log) in policies.
const RootHallmark = "hallmark"

// Policy is a project's trust policy, the JSON document stored per
// project (PUT /api/v1/projects/{path}/policy, hallmark project
// set-policy). Every field is optional; the zero policy is the default:
// this server's trust root, the --trusted-key keys, and the project's own
// pipelines as signers.
type Policy struct {
	// Roots names the trust roots whose CAs and logs are trusted:
	// RootHallmark (this server) and the roots the server imports with
	// --trusted-root NAME=FILE. Default: [hallmark].
	Roots []string `json:"roots,omitempty"`
	// TrustedRoots are sigstore trusted_root.json documents trusted for
	// this project only, e.g. the public-good instance's.
	TrustedRoots []json.RawMessage `json:"trustedRoots,omitempty"`
	// Keys are PEM public keys whose signatures are trusted, besides the
	// server's --trusted-key keys. A key signs for any identity.
	Keys []string `json:"keys,omitempty"`
	// Identities may sign keyless: one must match the certificate's
	// issuer and identity (SAN). Default: the project's own pipelines on
	// any ref, "<issuer>/<project>//.gitlab-ci.yml@refs/*", from the issuer
	// the project is pinned to, else the built-in one.
	Identities []Identity `json:"identities,omitempty"`
	// Annotations must all be signed with exactly these values.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Identity is one allowed signer: an issuer (exact URL or regexp; neither:
// the project's issuer) and an identity (exact or regexp), as cosign's
// --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp].
type Identity struct {
	Issuer         string `json:"issuer,omitempty"`
	IssuerRegexp   string `json:"issuerRegexp,omitempty"`
	Identity       string `json:"identity,omitempty"`
	IdentityRegexp string `json:"identityRegexp,omitempty"`
}

// Limits of a policy document.
const (
	MaxPolicySize        = 1 << 20
	maxPolicyRoots       = 16
	maxPolicyKeys        = 64
	maxPolicyIdentities  = 64
	maxPolicyAnnotations = 32
	maxPolicyText        = 1024 // an issuer, identity or regexp
)

var rootNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidRootName reports whether name may name a trust root: 1 to 64
// lowercase letters, digits, '.', '_' or '-', not starting with a symbol.
func ValidRootName(name string) bool { return rootNameRE.MatchString(name) }

// ErrInvalidPolicy is wrapped by every error about a policy document.
var ErrInvalidPolicy = errors.New("invalid trust policy")

// ParsePolicy reads and validates a policy document (unknown fields are
// errors, so a misspelt rule is not silently ignored).
func ParsePolicy(doc []byte) (*Policy, error) {
	if len(doc) > MaxPolicySize {
		return nil, fmt.Errorf("%w: the document is %d bytes; the limit is %d", ErrInvalidPolicy, len(doc), MaxPolicySize)
	}
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v (want {\"roots\": [...], \"trustedRoots\": [...], \"keys\": [...], \"identities\": [{\"issuer\": ..., \"identity\"|\"identityRegexp\": ...}], \"annotations\": {...}})", ErrInvalidPolicy, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrInvalidPolicy)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks every rule: root names well-formed, trusted roots and
// keys parse, identities complete with issuers that are URLs and regexps
// that compile, annotations within the index's limits.
func (p *Policy) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPolicy}, args...)...)
	}
	switch {
	case len(p.Roots)+len(p.TrustedRoots) > maxPolicyRoots:
		return bad("%d trust roots; the limit is %d", len(p.Roots)+len(p.TrustedRoots), maxPolicyRoots)
	case len(p.Keys) > maxPolicyKeys:
		return bad("%d keys; the limit is %d", len(p.Keys), maxPolicyKeys)
	case len(p.Identities) > maxPolicyIdentities:
		return bad("%d identities; the limit is %d", len(p.Identities), maxPolicyIdentities)
	case len(p.Annotations) > maxPolicyAnnotations:
		return bad("%d required annotations; the limit is %d", len(p.Annotations), maxPolicyAnnotations)
	}
	for _, n := range p.Roots {
		if !ValidRootName(n) {
			return bad("root %q: a root is named by 1-64 lowercase letters, digits, '.', '_', '-' (%q is this server's)", n, RootHallmark)
		}
	}
	for i, raw := range p.TrustedRoots {
		if _, err := parseTrustedRoot(raw); err != nil {
			return bad("trusted root #%d: %v", i+1, err)
		}
	}
	for i, k := range p.Keys {
		if _, err := verify.ParseKey([]byte(k)); err != nil {
			return bad("key #%d: %v (want a PEM public key)", i+1, err)
		}
	}
	for i, id := range p.Identities {
		if err := id.validate(); err != nil {
			return bad("identity #%d: %v", i+1, err)
		}
	}
	for k, v := range p.Annotations {
		if k == "" || len(k) > MaxAnnotationKey || len(v) > MaxAnnotationValue {
			return bad("required annotation %.64q: keys are 1-%d bytes and values at most %d (what the index stores)", k, MaxAnnotationKey, MaxAnnotationValue)
		}
	}
	return nil
}

func (id Identity) validate() error {
	for _, s := range []string{id.Issuer, id.IssuerRegexp, id.Identity, id.IdentityRegexp} {
		if len(s) > maxPolicyText {
			return fmt.Errorf("a value is longer than %d bytes", maxPolicyText)
		}
	}
	switch {
	case (id.Identity == "") == (id.IdentityRegexp == ""):
		return errors.New(`give exactly one of "identity" and "identityRegexp"`)
	case id.Issuer != "" && id.IssuerRegexp != "":
		return errors.New(`give at most one of "issuer" and "issuerRegexp" (neither: the project's issuer)`)
	}
	if id.Issuer != "" {
		if err := checkIssuerURL(id.Issuer); err != nil {
			return err
		}
	}
	for name, re := range map[string]string{"identityRegexp": id.IdentityRegexp, "issuerRegexp": id.IssuerRegexp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("%s %q does not compile: %v", name, re, err)
		}
	}
	return nil
}

// checkIssuerURL: an issuer is an absolute http(s) URL, as the
// certificate's issuer extension holds it.
func checkIssuerURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q is not an http(s) URL such as https://gitlab.example.com", s)
	}
	return nil
}

func parseTrustedRoot(raw []byte) (*root.Material, error) {
	tr, err := root.Parse(raw)
	if err != nil {
		return nil, err
	}
	return tr.Material()
}

// compiled is a policy ready to judge signatures with: the trust it
// verifies against and the rules Verify applies.
type compiled struct {
	trust       *verify.Trust
	identities  []verify.Identity
	annotations map[string]string
	// rootOf names the trust root of each CA (by its root pool).
	rootOf  map[*x509.CertPool]string
	roots   []string // the trust roots, for messages
	missing []string // roots the policy names that the server does not import
	where   string   // "the policy of project grp/app (version 2)", for reasons
}

// Effective is a policy as it applies, defaults filled in: what `hallmark
// project policy` and GET /api/v1/projects/{path}/policy show.
type Effective struct {
	Roots        []string          `json:"roots"`
	TrustedRoots int               `json:"trustedRoots,omitempty"`
	Keys         []string          `json:"keys,omitempty"` // fingerprints, the server's --trusted-key keys included
	Identities   []Identity        `json:"identities"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	// Missing are roots the policy names that this server does not
	// import (signatures they would cover are unverified).
	Missing []string `json:"missingRoots,omitempty"`
}

// effective returns the policy's rules with the defaults for the project
// (or, with no project, the repository) filled in.
func (ix *Indexer) effective(tp meta.TrustPolicy, repo string) (*Policy, Effective, error) {
	p := &Policy{}
	if tp.Version > 0 {
		var err error
		if p, err = ParsePolicy(tp.Document); err != nil {
			return nil, Effective{}, err
		}
	}
	e := Effective{Roots: p.Roots, TrustedRoots: len(p.TrustedRoots), Annotations: p.Annotations}
	if len(e.Roots) == 0 {
		e.Roots = []string{RootHallmark}
	}
	for _, n := range e.Roots {
		if _, ok := ix.cfg.Roots[n]; !ok && ix.cfg.Roots != nil {
			e.Missing = append(e.Missing, n)
		}
	}
	for _, k := range ix.cfg.Keys {
		e.Keys = append(e.Keys, k.Fingerprint)
	}
	for _, pem := range p.Keys {
		if k, err := verify.ParseKey([]byte(pem)); err == nil {
			e.Keys = append(e.Keys, k.Fingerprint)
		}
	}
	issuer := tp.ProjectIssuer
	if issuer == "" {
		issuer = ix.cfg.Issuer
	}
	for _, id := range p.Identities {
		if id.Issuer == "" && id.IssuerRegexp == "" {
			id.Issuer = issuer
		}
		e.Identities = append(e.Identities, id)
	}
	if len(e.Identities) == 0 {
		e.Identities = []Identity{defaultIdentity(issuer, tp.Project, repo)}
	}
	return p, e, nil
}

// defaultIdentity is the default signer of a project: its own pipelines on
// any ref, as the CA names them ("<issuer>/<project>//.gitlab-ci.yml@
// refs/heads/main"; the built-in issuer and GitLab both build that SAN
// from the issuer's URL). A repository outside every project takes the
// pipelines of its own path and of each parent path.
func defaultIdentity(issuer, project, repo string) Identity {
	paths := []string{project}
	if project == "" {
		paths = paths[:0]
		for p := repo; p != ""; {
			paths = append(paths, regexp.QuoteMeta(p))
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	} else {
		paths[0] = regexp.QuoteMeta(project)
	}
	alt := strings.Join(paths, "|")
	if len(paths) > 1 {
		alt = "(?:" + alt + ")"
	}
	return Identity{Issuer: issuer, IdentityRegexp: "^" + regexp.QuoteMeta(strings.TrimSuffix(issuer, "/")+"/") + alt +
		regexp.QuoteMeta("//.gitlab-ci.yml@refs/") + ".+$"}
}

// compile turns the policy governing repo into the trust and rules Verify
// takes.
func (ix *Indexer) compile(tp meta.TrustPolicy, repo string) (*compiled, error) {
	p, e, err := ix.effective(tp, repo)
	if err != nil {
		return nil, err
	}
	c := &compiled{annotations: p.Annotations, rootOf: map[*x509.CertPool]string{}, missing: e.Missing}
	switch {
	case tp.Project == "":
		c.where = "the default policy (no project governs " + repo + ")"
	case tp.Version == 0:
		c.where = "the default policy of project " + tp.Project
	default:
		c.where = fmt.Sprintf("the policy of project %s (version %d)", tp.Project, tp.Version)
	}
	var mats []*root.Material
	add := func(name string, m *root.Material) {
		mats = append(mats, m)
		c.roots = append(c.roots, name)
		for _, ca := range m.CAs {
			c.rootOf[ca.Roots] = name
		}
	}
	for _, n := range e.Roots {
		if m := ix.cfg.Roots[n]; m != nil {
			add(n, m)
		}
	}
	for i, raw := range p.TrustedRoots {
		m, err := parseTrustedRoot(raw)
		if err != nil {
			return nil, err
		}
		add(fmt.Sprintf("trusted root #%d of the policy", i+1), m)
	}
	keys := slices.Clone(ix.cfg.Keys)
	for _, pem := range p.Keys {
		k, err := verify.ParseKey([]byte(pem))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	c.trust = verify.NewTrust(mats, keys...)
	for _, id := range e.Identities {
		c.identities = append(c.identities, verify.Identity{Subject: id.Identity, SubjectRegexp: id.IdentityRegexp, Issuer: id.Issuer, IssuerRegexp: id.IssuerRegexp})
	}
	return c, nil
}

// policyCache keeps compiled policies (their Trusts remember verified
// intermediates) by what they depend on: the governing project (or the
// repository, with none), its issuer and the policy's version.
type policyCache struct {
	mu sync.Mutex
	m  map[string]*compiled
}

// maxCachedPolicies bounds the cache; when full it starts over.
const maxCachedPolicies = 1024

func (pc *policyCache) get(key string) *compiled {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.m[key]
}

func (pc *policyCache) put(key string, c *compiled) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.m == nil || len(pc.m) >= maxCachedPolicies {
		pc.m = map[string]*compiled{}
	}
	pc.m[key] = c
}
