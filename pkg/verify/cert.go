package verify

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// ErrIdentityMismatch is wrapped when a certificate matches none of the
// expected identities.
var ErrIdentityMismatch = errors.New("none of the expected identities matched what was in the certificate")

// Identity is one acceptable certificate identity (cosign's
// --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]).
// Regexps are unanchored, as in cosign; anchor them with ^...$.
type Identity struct {
	Subject       string
	SubjectRegexp string
	Issuer        string
	IssuerRegexp  string
}

// Validate compiles the regexps and checks that a subject and an issuer
// are given, with cosign's messages.
func (id Identity) Validate() error {
	if id.Subject == "" && id.SubjectRegexp == "" {
		return errors.New("--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode")
	}
	if id.Issuer == "" && id.IssuerRegexp == "" {
		return errors.New("--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for verification in keyless mode")
	}
	for flag, re := range map[string]string{"--certificate-identity-regexp": id.SubjectRegexp, "--certificate-oidc-issuer-regexp": id.IssuerRegexp} {
		if re == "" {
			continue
		}
		if _, err := regexp.Compile(re); err != nil {
			return fmt.Errorf("%s %q is not a valid regular expression: %v", flag, re, err)
		}
	}
	return nil
}

// ParseCertificatePEM parses the first PEM certificate in b.
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// maxChainCerts bounds the certificates read from a chain annotation.
const maxChainCerts = 10

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
		if len(out) == maxChainCerts {
			return nil, fmt.Errorf("certificate chain has more than %d certificates", maxChainCerts)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// Chain is a certificate chain verified to trusted CAs.
type Chain struct {
	// Certificates is the chain, leaf first, through the first CA it
	// verified with.
	Certificates []*x509.Certificate
	// CAs are all the trusted CAs the leaf chains to (several when CAs
	// share a root, e.g. after an intermediate was rotated).
	CAs []root.CA
}

// TrustedAt checks that one of the CAs the chain verified through is
// trusted at t, the signature's observer time, as sigstore-go checks a
// certificate authority's validFor: the integrated time of the verified
// log entry, else the verification time. event says what happened at t,
// for the error ("the signature was logged").
func (c *Chain) TrustedAt(t time.Time, event string) error {
	var reasons []string
	for _, ca := range c.CAs {
		if ca.ValidFor.Covers(t) {
			return nil
		}
		name := ca.URI
		if name == "" && len(c.Certificates) > 0 {
			name = "of root " + c.Certificates[len(c.Certificates)-1].Subject.String()
		}
		reasons = append(reasons, fmt.Sprintf("certificate authority %s is trusted %s", name, ca.ValidFor))
	}
	return fmt.Errorf("%w: %s; %s at %s (use the trusted root of the CA that was trusted then)", ErrOutsideValidFor,
		strings.Join(reasons, "; "), event, t.UTC().Format(time.RFC3339))
}

// VerifyChain checks that leaf chains to one of cas (through the CA's
// trusted intermediates, or, for a CA without any, the intermediates of
// chain, the chain stored with the signature) for code signing at the time
// it was issued. The caller must then check its SCT (Chain.VerifySCT) and
// the CAs' validity windows at the signature's observer time
// (Chain.TrustedAt).
func VerifyChain(leaf *x509.Certificate, chain []*x509.Certificate, cas []root.CA) (*Chain, error) {
	return verifyChain(leaf, chain, cas, nil)
}

// verifyChain is VerifyChain, taking, with anchors, the shortcut through
// intermediates already verified to a CA's root (anchorCache).
func verifyChain(leaf *x509.Certificate, chain []*x509.Certificate, cas []root.CA, anchors *anchorCache) (*Chain, error) {
	if len(cas) == 0 {
		return nil, errors.New("no trusted root certificates: give --trusted-root or run 'hallmark trust init'")
	}
	// A critical SAN holding only an otherName (Fulcio's username SAN) is
	// "unhandled" for Go's verifier; it is handled here (cosign does the
	// same).
	if len(leaf.UnhandledCriticalExtensions) > 0 {
		var rest []asn1.ObjectIdentifier
		for _, id := range leaf.UnhandledCriticalExtensions {
			if !fulcio.IsSubjectAltName(id) {
				rest = append(rest, id)
			}
		}
		cp := *leaf
		cp.UnhandledCriticalExtensions = rest
		leaf = &cp
	}
	// As cosign: a CA's intermediates are its trusted ones when it names
	// any, else the chain stored with the signature (its roots excluded:
	// trust comes from the CA's roots alone).
	var stored *x509.CertPool
	verified := &Chain{}
	var firstErr error
	for i, ca := range cas {
		if ca.Roots == nil {
			continue
		}
		certs := anchors.shortcut(i, leaf)
		if certs == nil {
			inter := ca.Intermediates
			if inter == nil {
				if stored == nil {
					stored = x509.NewCertPool()
					for _, c := range chain {
						if c.IsCA && !isSelfSigned(c) {
							stored.AddCert(c)
						}
					}
				}
				inter = stored
			}
			chains, err := leaf.Verify(x509.VerifyOptions{
				Roots: ca.Roots, Intermediates: inter,
				CurrentTime: leaf.NotBefore,
				KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
			})
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			certs = chains[0]
			if ca.Intermediates != nil {
				anchors.learn(i, certs)
			}
		}
		if verified.Certificates == nil {
			verified.Certificates = certs
		}
		verified.CAs = append(verified.CAs, ca)
	}
	if verified.Certificates == nil {
		if firstErr == nil {
			firstErr = errors.New("the trusted root names no root certificate")
		}
		return nil, fmt.Errorf("certificate does not chain to a trusted root: %w (verify with the trusted root of the CA that issued it: --trusted-root or 'hallmark trust init')", firstErr)
	}
	return verified, nil
}

// Issuer is the certificate that issued the leaf, if the chain has one.
func (c *Chain) Issuer() *x509.Certificate {
	if len(c.Certificates) > 1 {
		return c.Certificates[1]
	}
	return nil
}

// VerifySCT checks the leaf's embedded SCT (VerifyEmbeddedSCT) with the
// issuer of the verified chain.
func (c *Chain) VerifySCT(ctKeys map[string]root.LogKey) error {
	return VerifyEmbeddedSCT(c.Certificates[0], c.Issuer(), ctKeys)
}

// CA names the first trusted CA the chain verified through: its URI, else
// its root's subject.
func (c *Chain) CA() string {
	if len(c.CAs) > 0 && c.CAs[0].URI != "" {
		return c.CAs[0].URI
	}
	return c.Certificates[len(c.Certificates)-1].Subject.String()
}

// isSelfSigned reports whether c names itself as its issuer (a root). It
// is a cheap structural test, not a signature check: chain certificates
// only feed the intermediates pool, and trust comes from the CAs' roots.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer)
}

// MatchIdentity reports whether c matches one of ids, as cosign does: the
// issuer (extension .1.1, else .1.8) equals or matches the issuer, and any
// SAN equals or matches the subject.
func MatchIdentity(c *x509.Certificate, ids []Identity) error {
	if len(ids) == 0 {
		return errors.New("no certificate identity to check: give --certificate-identity(-regexp) and --certificate-oidc-issuer(-regexp)")
	}
	sans := fulcio.SubjectAlternativeNames(c)
	issuer := fulcio.Issuer(c)
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
	return fmt.Errorf("%w, got subjects [%s] with issuer %s", ErrIdentityMismatch, strings.Join(sans, ", "), issuer)
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

// CheckValidity checks that c was valid at t (cosign's CheckExpiry).
func CheckValidity(c *x509.Certificate, t time.Time) error {
	f := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case c.NotAfter.Before(t):
		return fmt.Errorf("certificate expired before signatures were entered in log: %s is before %s", f(c.NotAfter), f(t))
	case c.NotBefore.After(t):
		return fmt.Errorf("certificate was issued after signatures were entered in log: %s is after %s", f(c.NotBefore), f(t))
	}
	return nil
}
