package ca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// Fulcio's OID arc 1.3.6.1.4.1.57264.1.x (fulcio docs/oid-info.md).
var (
	OIDIssuer                              = fulcioOID(1) // raw string, read by cosign v2
	OIDOtherName                           = fulcioOID(7)
	OIDIssuerV2                            = fulcioOID(8)
	OIDBuildSignerURI                      = fulcioOID(9)
	OIDBuildSignerDigest                   = fulcioOID(10)
	OIDRunnerEnvironment                   = fulcioOID(11)
	OIDSourceRepositoryURI                 = fulcioOID(12)
	OIDSourceRepositoryDigest              = fulcioOID(13)
	OIDSourceRepositoryRef                 = fulcioOID(14)
	OIDSourceRepositoryIdentifier          = fulcioOID(15)
	OIDSourceRepositoryOwnerURI            = fulcioOID(16)
	OIDSourceRepositoryOwnerIdentifier     = fulcioOID(17)
	OIDBuildConfigURI                      = fulcioOID(18)
	OIDBuildConfigDigest                   = fulcioOID(19)
	OIDBuildTrigger                        = fulcioOID(20)
	OIDRunInvocationURI                    = fulcioOID(21)
	OIDSourceRepositoryVisibilityAtSigning = fulcioOID(22)
	OIDDeploymentEnvironment               = fulcioOID(23)
	OIDTokenSubject                        = fulcioOID(24)
)

func fulcioOID(n int) asn1.ObjectIdentifier {
	return asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, n}
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// Extensions are the values of Fulcio's certificate extensions; an empty
// field is left out of the certificate.
type Extensions struct {
	Issuer                              string // .1.1 (raw) and .1.8
	BuildSignerURI                      string // .1.9
	BuildSignerDigest                   string // .1.10
	RunnerEnvironment                   string // .1.11
	SourceRepositoryURI                 string // .1.12
	SourceRepositoryDigest              string // .1.13
	SourceRepositoryRef                 string // .1.14
	SourceRepositoryIdentifier          string // .1.15
	SourceRepositoryOwnerURI            string // .1.16
	SourceRepositoryOwnerIdentifier     string // .1.17
	BuildConfigURI                      string // .1.18
	BuildConfigDigest                   string // .1.19
	BuildTrigger                        string // .1.20
	RunInvocationURI                    string // .1.21
	SourceRepositoryVisibilityAtSigning string // .1.22
	DeploymentEnvironment               string // .1.23
	TokenSubject                        string // .1.24
}

// Render encodes e in Fulcio's order: .1.1 (the raw issuer string, no
// ASN.1 tag: cosign v2's --certificate-oidc-issuer reads only this one),
// then .1.8 to .1.24 as DER UTF8Strings. All are non-critical.
func (e Extensions) Render() ([]pkix.Extension, error) {
	if e.Issuer == "" {
		return nil, fmt.Errorf("%w: the token has no issuer", ErrInvalidToken)
	}
	exts := []pkix.Extension{{Id: OIDIssuer, Value: []byte(e.Issuer)}}
	for _, f := range []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{
		{OIDIssuerV2, e.Issuer},
		{OIDBuildSignerURI, e.BuildSignerURI},
		{OIDBuildSignerDigest, e.BuildSignerDigest},
		{OIDRunnerEnvironment, e.RunnerEnvironment},
		{OIDSourceRepositoryURI, e.SourceRepositoryURI},
		{OIDSourceRepositoryDigest, e.SourceRepositoryDigest},
		{OIDSourceRepositoryRef, e.SourceRepositoryRef},
		{OIDSourceRepositoryIdentifier, e.SourceRepositoryIdentifier},
		{OIDSourceRepositoryOwnerURI, e.SourceRepositoryOwnerURI},
		{OIDSourceRepositoryOwnerIdentifier, e.SourceRepositoryOwnerIdentifier},
		{OIDBuildConfigURI, e.BuildConfigURI},
		{OIDBuildConfigDigest, e.BuildConfigDigest},
		{OIDBuildTrigger, e.BuildTrigger},
		{OIDRunInvocationURI, e.RunInvocationURI},
		{OIDSourceRepositoryVisibilityAtSigning, e.SourceRepositoryVisibilityAtSigning},
		{OIDDeploymentEnvironment, e.DeploymentEnvironment},
		{OIDTokenSubject, e.TokenSubject},
	} {
		if f.v == "" {
			continue
		}
		der, err := asn1.MarshalWithParams(f.v, "utf8")
		if err != nil {
			return nil, fmt.Errorf("%w: extension %s: %v", ErrInvalidToken, f.oid, err)
		}
		exts = append(exts, pkix.Extension{Id: f.oid, Value: der})
	}
	return exts, nil
}

// Subject is the certificate identity: exactly one of the fields is set.
type Subject struct {
	Email     string   // rfc822Name SAN
	URI       *url.URL // URI SAN
	OtherName string   // OtherName SAN of type 1.3.6.1.4.1.57264.1.7 (UTF8String)
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
	Extensions Extensions
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
	p.Extensions = Extensions{Issuer: tok.Issuer, TokenSubject: tok.Subject}
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

// otherNameSAN encodes a critical SAN extension holding one OtherName of
// type 1.3.6.1.4.1.57264.1.7 with a UTF8String value, as Fulcio does for
// username identities.
func otherNameSAN(name string) (pkix.Extension, error) {
	val, err := asn1.MarshalWithParams(name, "utf8")
	if err != nil {
		return pkix.Extension{}, err
	}
	oid, err := asn1.Marshal(OIDOtherName)
	if err != nil {
		return pkix.Extension{}, err
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: val})
	if err != nil {
		return pkix.Extension{}, err
	}
	gn, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)})
	if err != nil {
		return pkix.Extension{}, err
	}
	seq, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: gn})
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidSubjectAltName, Critical: true, Value: seq}, nil
}

// applySubject writes s into the certificate template.
func applySubject(tmpl *x509.Certificate, s Subject) error {
	switch {
	case s.Email != "":
		tmpl.EmailAddresses = []string{s.Email}
	case s.URI != nil:
		tmpl.URIs = []*url.URL{s.URI}
	case s.OtherName != "":
		ext, err := otherNameSAN(s.OtherName)
		if err != nil {
			return fmt.Errorf("%w: identity %q: %v", ErrInvalidToken, s.OtherName, err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	default:
		return fmt.Errorf("%w: no identity for the certificate", ErrInvalidToken)
	}
	return nil
}
