package verify

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Fulcio certificate extension OIDs used in identity checks.
var (
	OIDIssuerV1 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1} // raw string
	OIDIssuerV2 = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 8} // DER UTF8String
)

// CheckCertificate names certificate failures in CheckError.
const (
	CheckCertificate = "certificate"
	CheckIdentity    = "identity"
	CheckTlog        = "transparency log"
)

// Identity is one acceptable certificate identity (cosign's
// --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]).
// Regexps are unanchored, as in cosign; anchor them with ^...$.
type Identity struct {
	Subject       string
	SubjectRegexp string
	Issuer        string
	IssuerRegexp  string
}

// CertOptions configure keyless (certificate) verification.
type CertOptions struct {
	Roots         *x509.CertPool
	Intermediates *x509.CertPool
	// Identities: the certificate must match at least one.
	Identities []Identity
}

// ParseCertificatePEM parses the first PEM certificate in b.
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// ParseCertificatesPEM parses every PEM certificate in b.
func ParseCertificatesPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q in certificate chain", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// CertIssuer returns the OIDC issuer recorded in a Fulcio certificate
// (extension .1.1, else .1.8).
func CertIssuer(c *x509.Certificate) string {
	var v2 string
	for _, e := range c.Extensions {
		switch {
		case e.Id.Equal(OIDIssuerV1):
			return string(e.Value)
		case e.Id.Equal(OIDIssuerV2):
			var s string
			if _, err := asn1.UnmarshalWithParams(e.Value, &s, "utf8"); err == nil {
				v2 = s
			}
		}
	}
	return v2
}

// SubjectAlternativeNames lists a certificate's SANs in cosign's order.
func SubjectAlternativeNames(c *x509.Certificate) []string {
	var out []string
	out = append(out, c.DNSNames...)
	out = append(out, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	return out
}

// VerifyCertificate checks that leaf chains to opts.Roots (through
// opts.Intermediates and the given chain) for code signing at the time it
// was issued, and that it matches one of opts.Identities.
func VerifyCertificate(leaf *x509.Certificate, chain []*x509.Certificate, opts CertOptions) error {
	if opts.Roots == nil {
		return errors.New("no trusted root certificates: give --trusted-root or run 'hallmark trust init'")
	}
	inter := x509.NewCertPool()
	if opts.Intermediates != nil {
		inter = opts.Intermediates.Clone()
	}
	for _, c := range chain {
		if c.IsCA && !isSelfSigned(c) {
			inter.AddCert(c)
		}
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: opts.Roots, Intermediates: inter,
		CurrentTime: leaf.NotBefore.Add(time.Second),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return fmt.Errorf("certificate does not chain to a trusted root: %w", err)
	}
	return MatchIdentity(leaf, opts.Identities)
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

// MatchIdentity reports whether c matches one of ids.
func MatchIdentity(c *x509.Certificate, ids []Identity) error {
	if len(ids) == 0 {
		return errors.New("no certificate identity to check: give --certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp)")
	}
	sans := SubjectAlternativeNames(c)
	issuer := CertIssuer(c)
	for _, id := range ids {
		if !matches(issuer, id.Issuer, id.IssuerRegexp) {
			continue
		}
		for _, san := range sans {
			if matches(san, id.Subject, id.SubjectRegexp) {
				return nil
			}
		}
	}
	return fmt.Errorf("none of the expected identities matched what was in the certificate, got subjects [%s] with issuer %s",
		strings.Join(sans, ", "), issuer)
}

func matches(v, exact, re string) bool {
	if exact != "" {
		return v == exact
	}
	if re != "" {
		r, err := regexp.Compile(re)
		return err == nil && r.MatchString(v)
	}
	return false
}
