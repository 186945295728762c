package fulcio

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// arc is Fulcio's OID arc for certificate extensions (fulcio
// docs/oid-info.md); extension N is arc.N.
var arc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1}

// OID returns the OID of Fulcio extension n (1.3.6.1.4.1.57264.1.n).
func OID(n int) asn1.ObjectIdentifier {
	return append(append(asn1.ObjectIdentifier{}, arc...), n)
}

// ParseOID parses the dotted OID of a Fulcio extension
// ("1.3.6.1.4.1.57264.1.13") into the OID and its number n (1..999).
func ParseOID(dotted string) (asn1.ObjectIdentifier, int, bool) {
	rest, ok := strings.CutPrefix(dotted, arc.String()+".")
	n, err := strconv.Atoi(rest)
	if !ok || err != nil || n <= 0 || n >= 1000 || strconv.Itoa(n) != rest {
		return nil, 0, false
	}
	return OID(n), n, true
}

// Number returns n when oid is Fulcio extension 1.3.6.1.4.1.57264.1.n.
func Number(oid asn1.ObjectIdentifier) (int, bool) {
	if len(oid) != len(arc)+1 || !oid[:len(arc)].Equal(arc) {
		return 0, false
	}
	return oid[len(arc)], true
}

// Extension numbers (the last arc of each OID), as fulcio docs/oid-info.md
// lists them. 1 to 6 are raw strings (1 is the issuer cosign v2 reads; 2 to
// 6 are GitHub's deprecated workflow fields); from 8 on they are DER
// UTF8Strings. 7 is not an extension: it is the type of the otherName SAN
// Fulcio writes for username identities.
const (
	IssuerV1                            = 1
	GitHubWorkflowTrigger               = 2
	GitHubWorkflowSHA                   = 3
	GitHubWorkflowName                  = 4
	GitHubWorkflowRepository            = 5
	GitHubWorkflowRef                   = 6
	OtherName                           = 7
	IssuerV2                            = 8
	BuildSignerURI                      = 9
	BuildSignerDigest                   = 10
	RunnerEnvironment                   = 11
	SourceRepositoryURI                 = 12
	SourceRepositoryDigest              = 13
	SourceRepositoryRef                 = 14
	SourceRepositoryIdentifier          = 15
	SourceRepositoryOwnerURI            = 16
	SourceRepositoryOwnerIdentifier     = 17
	BuildConfigURI                      = 18
	BuildConfigDigest                   = 19
	BuildTrigger                        = 20
	RunInvocationURI                    = 21
	SourceRepositoryVisibilityAtSigning = 22
	DeploymentEnvironment               = 23
	TokenSubject                        = 24
)

// OIDs of the extensions the CA writes and verifiers match on.
var (
	OIDIssuerV1  = OID(IssuerV1)
	OIDOtherName = OID(OtherName)
	OIDIssuerV2  = OID(IssuerV2)
)

// Extensions are the values of Fulcio's certificate extensions; an empty
// field is absent from the certificate.
type Extensions struct {
	Issuer string // .1.1 (raw) and .1.8

	// GitHub's deprecated workflow fields, read (cosign v2 prints them),
	// never written.
	GitHubWorkflowTrigger    string // .1.2
	GitHubWorkflowSHA        string // .1.3
	GitHubWorkflowName       string // .1.4
	GitHubWorkflowRepository string // .1.5
	GitHubWorkflowRef        string // .1.6

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

// field is one extension: its number, its name (lowerCamelCase, as
// fulcio's docs/oid-info.md and sigstore-go's certificate summary name
// them) and where its value lives in Extensions.
type field struct {
	n     int
	name  string
	value func(*Extensions) *string
}

// fields lists every extension in Fulcio's order, the order Render writes.
var fields = []field{
	{IssuerV1, "issuerV1", func(e *Extensions) *string { return &e.Issuer }},
	{GitHubWorkflowTrigger, "githubWorkflowTrigger", func(e *Extensions) *string { return &e.GitHubWorkflowTrigger }},
	{GitHubWorkflowSHA, "githubWorkflowSha", func(e *Extensions) *string { return &e.GitHubWorkflowSHA }},
	{GitHubWorkflowName, "githubWorkflowName", func(e *Extensions) *string { return &e.GitHubWorkflowName }},
	{GitHubWorkflowRepository, "githubWorkflowRepository", func(e *Extensions) *string { return &e.GitHubWorkflowRepository }},
	{GitHubWorkflowRef, "githubWorkflowRef", func(e *Extensions) *string { return &e.GitHubWorkflowRef }},
	{IssuerV2, "issuer", func(e *Extensions) *string { return &e.Issuer }},
	{BuildSignerURI, "buildSignerURI", func(e *Extensions) *string { return &e.BuildSignerURI }},
	{BuildSignerDigest, "buildSignerDigest", func(e *Extensions) *string { return &e.BuildSignerDigest }},
	{RunnerEnvironment, "runnerEnvironment", func(e *Extensions) *string { return &e.RunnerEnvironment }},
	{SourceRepositoryURI, "sourceRepositoryURI", func(e *Extensions) *string { return &e.SourceRepositoryURI }},
	{SourceRepositoryDigest, "sourceRepositoryDigest", func(e *Extensions) *string { return &e.SourceRepositoryDigest }},
	{SourceRepositoryRef, "sourceRepositoryRef", func(e *Extensions) *string { return &e.SourceRepositoryRef }},
	{SourceRepositoryIdentifier, "sourceRepositoryIdentifier", func(e *Extensions) *string { return &e.SourceRepositoryIdentifier }},
	{SourceRepositoryOwnerURI, "sourceRepositoryOwnerURI", func(e *Extensions) *string { return &e.SourceRepositoryOwnerURI }},
	{SourceRepositoryOwnerIdentifier, "sourceRepositoryOwnerIdentifier", func(e *Extensions) *string { return &e.SourceRepositoryOwnerIdentifier }},
	{BuildConfigURI, "buildConfigURI", func(e *Extensions) *string { return &e.BuildConfigURI }},
	{BuildConfigDigest, "buildConfigDigest", func(e *Extensions) *string { return &e.BuildConfigDigest }},
	{BuildTrigger, "buildTrigger", func(e *Extensions) *string { return &e.BuildTrigger }},
	{RunInvocationURI, "runInvocationURI", func(e *Extensions) *string { return &e.RunInvocationURI }},
	{SourceRepositoryVisibilityAtSigning, "sourceRepositoryVisibilityAtSigning", func(e *Extensions) *string { return &e.SourceRepositoryVisibilityAtSigning }},
	{DeploymentEnvironment, "deploymentEnvironment", func(e *Extensions) *string { return &e.DeploymentEnvironment }},
	{TokenSubject, "tokenSubject", func(e *Extensions) *string { return &e.TokenSubject }},
}

// raw reports whether extension n holds its value as raw bytes rather than
// as a DER string (the deprecated .1.1 to .1.6).
func raw(n int) bool { return n < OtherName }

// ErrNoIssuer: extensions without an issuer cannot be rendered (every
// Fulcio certificate names the OIDC issuer that vouched for it).
var ErrNoIssuer = errors.New("fulcio extensions need the OIDC issuer")

// Render encodes e as certificate extensions in Fulcio's order: .1.1 (the
// raw issuer string, no ASN.1 tag: cosign v2's --certificate-oidc-issuer
// reads only this one), then .1.8 to .1.24 as DER UTF8Strings. All are
// non-critical. GitHub's deprecated .1.2 to .1.6 are never written.
func (e Extensions) Render() ([]pkix.Extension, error) {
	if e.Issuer == "" {
		return nil, ErrNoIssuer
	}
	exts := []pkix.Extension{{Id: OIDIssuerV1, Value: []byte(e.Issuer)}}
	for _, f := range fields {
		v := *f.value(&e)
		if raw(f.n) || v == "" {
			continue
		}
		if !utf8.ValidString(v) {
			return nil, fmt.Errorf("extension %s (%s): the value is not UTF-8", OID(f.n), f.name)
		}
		der, err := asn1.MarshalWithParams(v, "utf8")
		if err != nil {
			return nil, fmt.Errorf("extension %s (%s): %w", OID(f.n), f.name, err)
		}
		exts = append(exts, pkix.Extension{Id: OID(f.n), Value: der})
	}
	return exts, nil
}

// ParseExtensions reads Fulcio's extensions from a certificate's
// extensions. The issuer is .1.8, else the raw .1.1. A DER-string
// extension whose value is not exactly one ASN.1 string is an error.
func ParseExtensions(exts []pkix.Extension) (Extensions, error) {
	var out Extensions
	var issuerV1 string
	for _, e := range exts {
		n, ok := Number(e.Id)
		if !ok {
			continue
		}
		f, ok := fieldOf(n)
		if !ok {
			continue
		}
		v, err := decode(n, e.Value)
		if err != nil {
			return Extensions{}, fmt.Errorf("extension %s (%s): %w", e.Id, f.name, err)
		}
		if n == IssuerV1 {
			issuerV1 = v
			continue
		}
		*f.value(&out) = v
	}
	if out.Issuer == "" {
		out.Issuer = issuerV1
	}
	return out, nil
}

func fieldOf(n int) (field, bool) {
	for _, f := range fields {
		if f.n == n {
			return f, true
		}
	}
	return field{}, false
}

// decode reads the value of extension n: the raw bytes below .1.7, else
// one DER string and nothing after it.
func decode(n int, value []byte) (string, error) {
	if raw(n) {
		return string(value), nil
	}
	var s string
	rest, err := asn1.Unmarshal(value, &s)
	if err != nil {
		return "", fmt.Errorf("not a DER string: %v", err)
	}
	if len(rest) > 0 {
		return "", errors.New("trailing bytes after the DER string")
	}
	return s, nil
}

// Value returns the value of Fulcio extension n in c (raw bytes for n < 7,
// a DER string from 8 on) and whether c carries it, well-formed.
func Value(c *x509.Certificate, n int) (string, bool) {
	if c == nil {
		return "", false
	}
	oid := OID(n)
	for _, e := range c.Extensions {
		if !e.Id.Equal(oid) {
			continue
		}
		v, err := decode(n, e.Value)
		return v, err == nil
	}
	return "", false
}

// Issuer returns the OIDC issuer recorded in a Fulcio certificate: .1.1,
// else .1.8 (the order cosign reads them in).
func Issuer(c *x509.Certificate) string {
	if v, ok := Value(c, IssuerV1); ok {
		return v
	}
	v, _ := Value(c, IssuerV2)
	return v
}

// Bounds on what Values records of one certificate.
const (
	maxValues     = 64
	maxValueBytes = 4096
)

// Values returns every Fulcio extension of c by dotted OID, as the
// signature index records them: values that do not decode, are not UTF-8
// or are longer than 4 KiB are left out, and at most 64 are kept. It is
// never nil.
func Values(c *x509.Certificate) map[string]string {
	out := map[string]string{}
	if c == nil {
		return out
	}
	for _, e := range c.Extensions {
		n, ok := Number(e.Id)
		if !ok || n == OtherName || len(out) >= maxValues {
			continue
		}
		v, err := decode(n, e.Value)
		if err != nil || !utf8.ValidString(v) || len(v) > maxValueBytes {
			continue
		}
		out[e.Id.String()] = v
	}
	return out
}

// Name returns the name of extension n ("sourceRepositoryDigest"), if it
// has one.
func Name(n int) (string, bool) {
	f, ok := fieldOf(n)
	return f.name, ok
}

// Resolve turns an extension given by name ("sourceRepositoryDigest", any
// case), by number ("13") or by dotted OID ("1.3.6.1.4.1.57264.1.13") into
// its dotted OID.
func Resolve(s string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(f.name, s) {
			return OID(f.n).String(), true
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 1000 {
		return OID(n).String(), true
	}
	if rest, ok := strings.CutPrefix(s, arc.String()+"."); ok {
		if n, err := strconv.Atoi(rest); err == nil && n > 0 {
			return OID(n).String(), true
		}
	}
	return "", false
}
