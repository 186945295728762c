package ca

import (
	"crypto/x509"
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// Subject is the certificate identity: exactly one of the fields is set.
type Subject struct {
	Email     string   // rfc822Name SAN
	URI       *url.URL // URI SAN
	OtherName string   // Fulcio's username otherName SAN (fulcio.OtherNameSAN)
}

// String is the identity as clients print and match it.
func (s Subject) String() string {
	switch {
	case s.Email != "":
		return s.Email
	case s.URI != nil:
		return s.URI.String()
	}
	return s.OtherName
}

// Principal is what a token says about the signer: the challenge the
// proof of possession must sign, the SAN and the extensions.
type Principal struct {
	Challenge  string
	Subject    Subject
	Extensions fulcio.Extensions
}

// PrincipalFromToken maps a verified token onto the certificate content,
// by issuer type as Fulcio does (sigstore-server.md A4, A5, A9).
func PrincipalFromToken(tok *oidc.Token) (*Principal, error) {
	if tok == nil {
		return nil, fmt.Errorf("%w: no token", ErrInvalidToken)
	}
	p := &Principal{Challenge: tok.Identity}
	if p.Challenge == "" {
		p.Challenge = tok.Subject
	}
	p.Extensions = fulcio.Extensions{Issuer: tok.Issuer, TokenSubject: tok.Subject}
	switch tok.IssuerType {
	case oidc.TypeGitLab:
		if err := gitlabPrincipal(tok, p); err != nil {
			return nil, err
		}
		p.Challenge = tok.Subject // Fulcio: the principal's name is sub for CI issuers
	case oidc.TypeEmail:
		email, _ := tok.StringClaim("email")
		if email == "" {
			return nil, fmt.Errorf("%w: the token has no email claim, which an email issuer's certificate needs", ErrInvalidToken)
		}
		if !claimTrue(tok.Claims, "email_verified") {
			return nil, fmt.Errorf("%w: email %q is not verified (email_verified is not true)", ErrInvalidToken, email)
		}
		// Exactly one bare address: net/mail also accepts a display name
		// or a comment, which would put a second, misleading address into
		// the rfc822Name SAN.
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email || !isASCII(email) {
			return nil, fmt.Errorf("%w: email claim %q is not a single bare address (user@host)", ErrInvalidToken, email)
		}
		p.Subject.Email = email
		p.Challenge = email
	default:
		if p.Challenge == "" {
			return nil, fmt.Errorf("%w: the token has no subject", ErrInvalidToken)
		}
		p.Subject = genericSubject(p.Challenge)
	}
	if p.Challenge == "" {
		return nil, fmt.Errorf("%w: the token has no subject", ErrInvalidToken)
	}
	return p, nil
}

// genericSubject puts an identity into the SAN type it looks like: a URI
// with a scheme, an email address, else an OtherName (Fulcio's username
// identities).
func genericSubject(id string) Subject {
	if u, err := url.Parse(id); err == nil && u.Scheme != "" && (u.Host != "" || u.Opaque != "") && isASCII(id) {
		if u.Scheme != "mailto" {
			return Subject{URI: u}
		}
	}
	if a, err := mail.ParseAddress(id); err == nil && a.Address == id && isASCII(id) {
		return Subject{Email: id}
	}
	return Subject{OtherName: id}
}

// gitlabPrincipal fills p for a GitLab CI ID token (Fulcio's gitlab-pipeline
// ci-provider templates). URLs are built from the token's issuer, not a
// hard-coded gitlab.com: for gitlab.com the result is identical to Fulcio's.
func gitlabPrincipal(tok *oidc.Token, p *Principal) error {
	var missing []string
	get := func(name string) string {
		v, ok := tok.StringClaim(name)
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return v
	}
	configRef := get("ci_config_ref_uri")
	projectPath := get("project_path")
	namespacePath := get("namespace_path")
	namespaceID := get("namespace_id")
	projectID := get("project_id")
	ref := get("ref")
	refType := get("ref_type")
	sha := get("sha")
	pipelineSource := get("pipeline_source")
	jobID := get("job_id")
	runnerEnv := get("runner_environment")
	if len(missing) > 0 {
		return fmt.Errorf("%w: GitLab token lacks the claim(s) %s (ci_config_ref_uri is null when the pipeline configuration lives in another project, which keyless signing does not support)",
			ErrInvalidToken, strings.Join(missing, ", "))
	}
	var fullRef string
	switch refType {
	case "branch":
		fullRef = "refs/heads/" + ref
	case "tag":
		fullRef = "refs/tags/" + ref
	default:
		return fmt.Errorf("%w: ref_type %q; GitLab sends branch or tag", ErrInvalidToken, refType)
	}
	base, err := url.Parse(tok.Issuer)
	if err != nil || base.Scheme == "" || base.Host == "" {
		return fmt.Errorf("%w: issuer %q is not an absolute URL", ErrInvalidToken, tok.Issuer)
	}
	// The SAN is "https://" + ci_config_ref_uri as in Fulcio; the scheme
	// follows the issuer's when the config lives on the issuer's host, so a
	// loopback http issuer yields an http identity that matches
	// "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/<ref>".
	scheme := "https"
	if cu, err := url.Parse("https://" + configRef); err == nil && strings.EqualFold(cu.Host, base.Host) {
		scheme = base.Scheme
	}
	san, err := url.Parse(scheme + "://" + configRef)
	if err != nil || san.Host == "" || !isASCII(configRef) {
		return fmt.Errorf("%w: ci_config_ref_uri %q is not a host/path URI", ErrInvalidToken, configRef)
	}
	instance := strings.TrimSuffix(tok.Issuer, "/")
	configSHA, _ := tok.StringClaim("ci_config_sha")
	visibility, _ := tok.StringClaim("project_visibility")
	environment, _ := tok.StringClaim("environment")
	p.Subject = Subject{URI: san}
	e := &p.Extensions
	e.BuildSignerURI = san.String()
	e.BuildSignerDigest = configSHA
	e.RunnerEnvironment = runnerEnv
	e.SourceRepositoryURI = instance + "/" + projectPath
	e.SourceRepositoryDigest = sha
	e.SourceRepositoryRef = fullRef
	e.SourceRepositoryIdentifier = projectID
	e.SourceRepositoryOwnerURI = instance + "/" + namespacePath
	e.SourceRepositoryOwnerIdentifier = namespaceID
	e.BuildConfigURI = san.String()
	e.BuildConfigDigest = configSHA
	e.BuildTrigger = pipelineSource
	e.RunInvocationURI = instance + "/" + projectPath + "/-/jobs/" + jobID
	e.SourceRepositoryVisibilityAtSigning = visibility
	e.DeploymentEnvironment = environment
	return nil
}

// claimTrue reports whether a boolean claim is true (or the string "true",
// which some issuers send).
func claimTrue(claims map[string]any, name string) bool {
	switch v := claims[name].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// applySubject writes s into the certificate template.
func applySubject(tmpl *x509.Certificate, s Subject) error {
	switch {
	case s.Email != "":
		tmpl.EmailAddresses = []string{s.Email}
	case s.URI != nil:
		tmpl.URIs = []*url.URL{s.URI}
	case s.OtherName != "":
		ext, err := fulcio.OtherNameSAN(s.OtherName)
		if err != nil {
			return fmt.Errorf("%w: identity %q: %v", ErrInvalidToken, s.OtherName, err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	default:
		return fmt.Errorf("%w: no identity for the certificate", ErrInvalidToken)
	}
	return nil
}
