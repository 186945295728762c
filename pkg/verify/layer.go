package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Layer annotation keys (cosign's).
const (
	AnnotationSignature   = "dev.cosignproject.cosign/signature"
	AnnotationCertificate = "dev.sigstore.cosign/certificate"
	AnnotationChain       = "dev.sigstore.cosign/chain"
	AnnotationBundle      = "dev.sigstore.cosign/bundle"
)

// Checks that can fail, named in errors.
const (
	CheckFormat      = "signature layer format"
	CheckSignature   = "signature"
	CheckPayload     = "payload"
	CheckDigestClaim = "digest claim"
	CheckAnnotation  = "annotation"
)

// CheckError says which check failed for which signature and why.
type CheckError struct {
	Check     string // one of the Check* constants
	Signature string // the signature layer digest
	Reason    string
}

func (e *CheckError) Error() string {
	if e.Signature == "" {
		return e.Check + ": " + e.Reason
	}
	return fmt.Sprintf("signature %s: %s check failed: %s", e.Signature, e.Check, e.Reason)
}

// Claims is a simple-signing payload as cosign prints it after verifying:
// the payload re-marshalled with the optional map enriched.
type Claims struct {
	Critical Critical       `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// Critical is the critical section of a simple-signing payload.
type Critical struct {
	Identity IdentityClaim `json:"identity"`
	Image    ImageClaim    `json:"image"`
	Type     string        `json:"type"`
}

// IdentityClaim names the signed repository.
type IdentityClaim struct {
	DockerReference string `json:"docker-reference"`
}

// ImageClaim carries the signed manifest digest.
type ImageClaim struct {
	DockerManifestDigest string `json:"docker-manifest-digest"`
}

// Layer is one signature as stored in a cosign signature manifest: the
// payload blob and the layer descriptor's annotations.
type Layer struct {
	Digest      string // layer digest (for messages)
	Payload     []byte
	Annotations map[string]string
}

// Options says what a signature must satisfy.
type Options struct {
	// PublicKey verifies key-based signatures.
	PublicKey crypto.PublicKey
	// Annotations must all appear in the payload's optional map with these
	// exact string values. An empty value also matches a missing key, as in
	// cosign.
	Annotations map[string]string
	// SkipClaims disables the digest and annotation checks (cosign's
	// --check-claims=false).
	SkipClaims bool
	// Cert, when set, verifies keyless signatures: the certificate in the
	// layer must chain to the trusted roots and match an identity.
	Cert *CertOptions
	// TlogKeys maps hex log IDs to transparency log keys. With IgnoreTlog
	// false, every signature must carry a bundle whose SET verifies.
	TlogKeys   map[string]crypto.PublicKey
	IgnoreTlog bool
}

// Verified is a signature that passed every check.
type Verified struct {
	Layer       Layer
	Claims      Claims
	Certificate *x509.Certificate // keyless signatures
	Bundle      *RekorBundle      // when the signature was logged
}

// VerifyLayer checks one signature layer of the image with digest
// imageDigest against opts.
func VerifyLayer(l Layer, imageDigest string, opts Options) (*Verified, error) {
	fail := func(check, format string, args ...any) error {
		return &CheckError{Check: check, Signature: l.Digest, Reason: fmt.Sprintf(format, args...)}
	}
	b64, ok := l.Annotations[AnnotationSignature]
	if !ok {
		return nil, fail(CheckFormat, "layer has no %s annotation", AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sig) == 0 {
		return nil, fail(CheckFormat, "annotation %s is not a base64 signature", AnnotationSignature)
	}
	verified := &Verified{Layer: l}
	pub := opts.PublicKey
	certPEM := []byte(l.Annotations[AnnotationCertificate])
	if pub == nil {
		if opts.Cert == nil {
			return nil, fail(CheckSignature, "no public key or trusted root to verify with")
		}
		if len(certPEM) == 0 {
			return nil, fail(CheckCertificate, "signature has no certificate (was it signed with a key? then verify with --key)")
		}
		cert, err := ParseCertificatePEM(certPEM)
		if err != nil {
			return nil, fail(CheckCertificate, "%v", err)
		}
		chain, err := ParseCertificatesPEM([]byte(l.Annotations[AnnotationChain]))
		if err != nil {
			return nil, fail(CheckCertificate, "chain: %v", err)
		}
		if err := VerifyCertificate(cert, chain, *opts.Cert); err != nil {
			check := CheckCertificate
			if strings.HasPrefix(err.Error(), "none of the expected identities") {
				check = CheckIdentity
			}
			return nil, fail(check, "%v", err)
		}
		verified.Certificate, pub = cert, cert.PublicKey
	}
	if err := VerifySignature(pub, l.Payload, sig); err != nil {
		return nil, fail(CheckSignature, "%v (wrong key, or payload/signature tampered with)", err)
	}
	if !opts.IgnoreTlog {
		raw, ok := l.Annotations[AnnotationBundle]
		if !ok {
			return nil, fail(CheckTlog, "signature has no transparency log bundle (signed with --tlog-upload=false? then verify with --insecure-ignore-tlog)")
		}
		material := certPEM
		if verified.Certificate == nil {
			material, _ = pemPublicKey(pub)
		}
		b, err := checkRekorBundle(raw, opts.TlogKeys, l.Payload, sig, material)
		if err != nil {
			return nil, fail(CheckTlog, "%v", err)
		}
		if c := verified.Certificate; c != nil {
			it := time.Unix(b.Payload.IntegratedTime, 0)
			if it.Before(c.NotBefore) || it.After(c.NotAfter) {
				return nil, fail(CheckTlog, "certificate was not valid when the signature was logged at %s (valid %s to %s)", it.UTC(), c.NotBefore.UTC(), c.NotAfter.UTC())
			}
		}
		verified.Bundle = b
	}
	c, err := ParseClaims(l.Payload)
	if err != nil {
		return nil, fail(CheckPayload, "%v", err)
	}
	if !opts.SkipClaims {
		if c.Critical.Image.DockerManifestDigest != imageDigest {
			return nil, fail(CheckDigestClaim, "payload is for %q, not the image %s", c.Critical.Image.DockerManifestDigest, imageDigest)
		}
		if err := checkAnnotations(c.Optional, opts.Annotations); err != nil {
			return nil, fail(CheckAnnotation, "%v", err)
		}
	}
	verified.Claims = *c
	verified.enrich()
	return verified, nil
}

// enrich adds to the claims' optional map what cosign adds when printing a
// verified signature: the certificate subject and issuer, and the bundle.
func (v *Verified) enrich() {
	if v.Certificate == nil && v.Bundle == nil {
		return
	}
	if v.Claims.Optional == nil {
		v.Claims.Optional = map[string]any{}
	}
	if c := v.Certificate; c != nil {
		if sans := SubjectAlternativeNames(c); len(sans) > 0 {
			v.Claims.Optional["Subject"] = sans[0]
		}
		if iss := CertIssuer(c); iss != "" {
			v.Claims.Optional["Issuer"] = iss
			v.Claims.Optional["1.3.6.1.4.1.57264.1.1"] = iss
		}
	}
	if v.Bundle != nil {
		v.Claims.Optional["Bundle"] = v.Bundle
	}
}

func pemPublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParseClaims parses a simple-signing payload leniently, as cosign verify
// does (the type is not checked), but requires the digest claim to exist.
func ParseClaims(payload []byte) (*Claims, error) {
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, fmt.Errorf("payload is not simple-signing JSON: %v", err)
	}
	if c.Critical.Image.DockerManifestDigest == "" {
		return nil, errors.New("payload has no critical.image.docker-manifest-digest")
	}
	return &c, nil
}

func checkAnnotations(have map[string]any, want map[string]string) error {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		w := want[k]
		v, ok := have[k]
		switch {
		case !ok && w == "":
		case !ok:
			errs = append(errs, fmt.Sprintf("%q is missing (want %q)", k, w))
		default:
			s, isStr := v.(string)
			if !isStr {
				errs = append(errs, fmt.Sprintf("%q is %v, not the string %q", k, v, w))
			} else if s != w {
				errs = append(errs, fmt.Sprintf("%q is %q, want %q", k, s, w))
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// VerifySignature checks sig over payload with pub: ECDSA (ASN.1) and RSA
// PKCS#1 v1.5 over SHA-256, or Ed25519 over the payload.
func VerifySignature(pub crypto.PublicKey, payload, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(k, h[:], sig) {
			return errors.New("ECDSA signature does not verify")
		}
	case *rsa.PublicKey:
		h := sha256.Sum256(payload)
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig); err != nil {
			return errors.New("RSA signature does not verify")
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(k, payload, sig) {
			return errors.New("Ed25519 signature does not verify")
		}
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
	return nil
}

// ParsePublicKey parses a PEM "PUBLIC KEY" (PKIX) block, or the public key
// of a PEM certificate.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found in public key")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
}

// Fingerprint is the SHA-256 fingerprint of a public key's PKIX DER, as
// "SHA256:<base64>" (the form ssh and cosign's key hints use).
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(h[:]), nil
}
