package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Checks that can fail, named in errors.
const (
	CheckFormat                = "signature layer format"
	CheckIntegrity             = "payload digest"
	CheckSignature             = "signature"
	CheckPayload               = "payload"
	CheckDigestClaim           = "digest claim"
	CheckAnnotation            = "annotation"
	CheckProvenanceAnnotations = "provenance"
)

// CheckError says which check failed for which signature and why.
type CheckError struct {
	Check     string // one of the Check* constants
	Signature string // the signature layer digest
	// Index and Total, when set (1-based), place the signature among the
	// layers of its signature manifest.
	Index, Total int
	Reason       string
	// Err is the underlying error when there is one (errors.Is works
	// through CheckError, e.g. for rekor.ErrSET, ErrUnknownLog, ErrNoBundle).
	Err error
}

// Unwrap returns the underlying error.
func (e *CheckError) Unwrap() error { return e.Err }

func (e *CheckError) Error() string {
	if e.Signature == "" {
		return e.Check + " check failed: " + e.Reason
	}
	where := "signature " + e.Signature
	if e.Index > 0 && e.Total > 0 {
		where = fmt.Sprintf("signature %d of %d (layer %s)", e.Index, e.Total, e.Signature)
	}
	return fmt.Sprintf("%s: %s check failed: %s", where, e.Check, e.Reason)
}

// Layer is one signature as stored in a cosign signature manifest: the
// payload blob and the layer descriptor's annotations.
type Layer struct {
	// Digest is the layer descriptor's digest. When set, the payload must
	// hash to it (the "payload digest" check).
	Digest      string
	MediaType   string // layer media type (informational; cosign does not check it)
	Payload     []byte
	Annotations map[string]string
}

// Options says what a signature must satisfy.
type Options struct {
	// PublicKey verifies key-based signatures.
	PublicKey crypto.PublicKey
	// Annotations must all appear in the payload's optional map with these
	// exact string values (cosign verify -a). As in cosign, an empty value
	// does not match a missing key and non-string values never match.
	Annotations map[string]string
	// SkipClaims disables the digest and annotation checks (cosign's
	// --check-claims=false).
	SkipClaims bool
	// Cert, when set, verifies keyless signatures: the certificate in the
	// layer must chain to the trusted roots and match an identity.
	Cert *CertOptions
	// TlogKeys maps hex log IDs to transparency log keys. With IgnoreTlog
	// false, every signature must carry a bundle whose SET verifies with a
	// key trusted at the entry's integrated time.
	TlogKeys   map[string]root.LogKey
	IgnoreTlog bool
	// Now is the time a certificate (and its CA) must be valid at when the
	// log is ignored (zero: the current time).
	Now time.Time
	// Provenance compares every signed annotation with what the signing
	// certificate attests (CheckProvenance); a contradiction fails the
	// signature.
	Provenance bool
}

// Verified is a signature that passed every check.
type Verified struct {
	// Kind is KindSimpleSigning, KindBundle or KindAttestation.
	Kind  string
	Layer Layer
	// Claims is the verified simple-signing payload as cosign prints it
	// (the optional map enriched with the certificate and bundle).
	Claims      payload.SimpleSigning
	Certificate *x509.Certificate // keyless signatures
	Bundle      *rekor.Bundle     // when the signature was logged (printed as cosign does)
	// TlogVerified: Bundle was checked against a trusted log key. With
	// IgnoreTlog a well-formed bundle is kept for output but not checked.
	TlogVerified bool
	// LogEntry is the verified entry of a sigstore bundle.
	LogEntry *rekor.LogEntry
	// Statement is the in-toto statement of a bundle or attestation.
	Statement *payload.Statement
	// EnvelopeJSON is the DSSE envelope of a bundle or attestation (an
	// attestation's is its layer payload).
	EnvelopeJSON []byte
	// Provenance is the annotation check, with Options.Provenance.
	Provenance []ProvenanceCheck
	// chain is the verified certificate chain of a keyless signature,
	// whose CAs must be trusted at the observer time (checkCAWindow).
	chain *Chain
}

// now is opts.Now, else the current time.
func (opts Options) now() time.Time {
	if opts.Now.IsZero() {
		return time.Now()
	}
	return opts.Now
}

// checkCAWindow checks that a CA the certificate chains to was trusted at
// the signature's observer time, as sigstore-go does: the integrated time
// of the verified log entry (logged), else, without the log, now.
func (v *Verified) checkCAWindow(opts Options, integrated int64, logged bool) error {
	if v.chain == nil {
		return nil
	}
	if logged {
		return v.chain.TrustedAt(time.Unix(integrated, 0), "the signature was logged")
	}
	return v.chain.TrustedAt(opts.now(), "without a transparency log the signature is checked at the verification time,")
}

// checkProvenance runs the provenance check of opts on the signed
// annotations (before cosign's output additions).
func (v *Verified) checkProvenance(signed map[string]any, opts Options) error {
	if !opts.Provenance {
		return nil
	}
	v.Provenance = CheckProvenance(v.Certificate, signed)
	return ProvenanceError(v.Provenance)
}

// OutputPayload is what cosign prints for the signature: the payload of a
// .sig layer, the envelope of an attestation, the synthesized claims of a
// bundle.
func (v *Verified) OutputPayload() []byte {
	switch v.Kind {
	case KindAttestation:
		return v.Layer.Payload
	case KindBundle:
		b, _ := json.Marshal(v.Claims)
		return b
	}
	return v.Layer.Payload
}

// VerifyLayer checks one signature layer of the image with digest
// imageDigest against opts.
func VerifyLayer(l Layer, imageDigest string, opts Options) (*Verified, error) {
	fail := func(check, format string, args ...any) error {
		return &CheckError{Check: check, Signature: l.Digest, Reason: fmt.Sprintf(format, args...)}
	}
	b64, ok := l.Annotations[oci.AnnotationSignature]
	if !ok {
		return nil, fail(CheckFormat, "layer has no %s annotation", oci.AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	switch {
	case b64 == "":
		return nil, fail(CheckFormat, "annotation %s is empty (attestation layers carry no signature there; this is not an image signature)", oci.AnnotationSignature)
	case err != nil:
		return nil, fail(CheckFormat, "annotation %s is not standard base64 (%v); the signature layer is corrupt", oci.AnnotationSignature, err)
	}
	if l.Digest != "" {
		if ok, got := oci.DigestMatches(l.Digest, l.Payload); !ok {
			if got == "" {
				return nil, fail(CheckIntegrity, "layer digest %q is not a sha256 or sha512 digest", l.Digest)
			}
			return nil, fail(CheckIntegrity, "the payload (%d bytes) hashes to %s, not to its layer digest: it was altered in the registry's storage or in transit", len(l.Payload), got)
		}
	}
	verified := &Verified{Kind: KindSimpleSigning, Layer: l}
	cert, pub, err := verified.signerOf(l, opts)
	if err != nil {
		return nil, err
	}
	if err := VerifySignature(pub, l.Payload, sig); err != nil {
		if cert != nil {
			return nil, fail(CheckSignature, "%v: the signature does not match the certificate's key, so the payload or the signature was changed after signing", err)
		}
		var km *keyMismatchError
		if errors.As(err, &km) {
			return nil, fail(CheckSignature, "%v", err)
		}
		fp, _ := Fingerprint(pub)
		return nil, fail(CheckSignature, "%v: it was made with another key than %s, or the payload was changed after signing", err, fp)
	}
	ph := sha256.Sum256(l.Payload)
	if err := verified.checkTlog(l, opts, loggedSignature{contentSHA256: ph[:], sig: sig}, pub); err != nil {
		return nil, err
	}
	c, err := payload.ParseLenient(l.Payload)
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
	if err := verified.checkProvenance(c.Optional, opts); err != nil {
		return nil, fail(CheckProvenanceAnnotations, "%v", err)
	}
	verified.Claims = c
	verified.enrich()
	return verified, nil
}

// signerOf returns the key a layer's signature must verify with: the
// given public key, or the certificate in the layer once it has chained
// to the trusted CAs, carried a trusted SCT and matched an identity (then
// v.Certificate and v.chain are set).
func (v *Verified) signerOf(l Layer, opts Options) (*x509.Certificate, crypto.PublicKey, error) {
	fail := func(check, format string, args ...any) error {
		return &CheckError{Check: check, Signature: l.Digest, Reason: fmt.Sprintf(format, args...)}
	}
	if opts.PublicKey != nil {
		return nil, opts.PublicKey, nil
	}
	if opts.Cert == nil {
		return nil, nil, fail(CheckSignature, "no public key or trusted root to verify with")
	}
	certPEM := []byte(l.Annotations[oci.AnnotationCertificate])
	if len(certPEM) == 0 {
		return nil, nil, fail(CheckCertificate, "signature has no certificate (was it signed with a key? then verify with --key)")
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, nil, fail(CheckCertificate, "%v", err)
	}
	chain, err := ParseCertificatesPEM([]byte(l.Annotations[oci.AnnotationChain]))
	if err != nil {
		return nil, nil, fail(CheckCertificate, "chain: %v", err)
	}
	verified, err := VerifyCertificate(cert, chain, *opts.Cert)
	if err != nil {
		return nil, nil, certificateError(l.Digest, err)
	}
	v.Certificate, v.chain = cert, verified
	return cert, cert.PublicKey, nil
}

// certificateError names the check a VerifyCertificate error failed:
// identity, SCT, else the certificate (chain).
func certificateError(sig string, err error) *CheckError {
	check := CheckCertificate
	switch {
	case errors.Is(err, ErrIdentityMismatch):
		check = CheckIdentity
	case errors.Is(err, ErrSCT):
		check = CheckSCT
	}
	return &CheckError{Check: check, Signature: sig, Reason: err.Error(), Err: err}
}

// checkTlog verifies the layer's bundle annotation (unless the log is
// ignored) against the signature it must log, and the certificate's
// validity and its CA's validFor at the logged time (or now, without a
// log).
func (v *Verified) checkTlog(l Layer, opts Options, want loggedSignature, pub crypto.PublicKey) error {
	fail := func(check, format string, args ...any) error {
		return &CheckError{Check: check, Signature: l.Digest, Reason: fmt.Sprintf(format, args...)}
	}
	if v.Certificate != nil {
		want.keyDER = v.Certificate.Raw
	} else {
		want.keyDER, _ = x509.MarshalPKIXPublicKey(pub)
	}
	if opts.IgnoreTlog {
		if raw, ok := l.Annotations[oci.AnnotationBundle]; ok {
			if b, err := rekor.ParseBundle(raw); err == nil {
				v.Bundle = b // cosign prints it even when the log is not checked
			}
		}
		if c := v.Certificate; c != nil {
			if err := CheckValidity(c, opts.now()); err != nil {
				return fail(CheckCertificate, "expected a signed timestamp to verify an expired certificate (%v); without the transparency log the certificate must be valid now, so verify without --insecure-ignore-tlog", err)
			}
		}
		if err := v.checkCAWindow(opts, 0, false); err != nil {
			return &CheckError{Check: CheckCertificate, Signature: l.Digest, Reason: err.Error(), Err: err}
		}
		return nil
	}
	raw, ok := l.Annotations[oci.AnnotationBundle]
	if !ok {
		return &CheckError{Check: CheckTlog, Signature: l.Digest, Err: ErrNoBundle,
			Reason: "signature has no transparency log bundle (signed with --tlog-upload=false? then verify with --insecure-ignore-tlog)"}
	}
	b, err := checkBundleFor(raw, opts.TlogKeys, want)
	if err != nil {
		return &CheckError{Check: CheckTlog, Signature: l.Digest, Reason: err.Error(), Err: err}
	}
	if c := v.Certificate; c != nil {
		if err := CheckValidity(c, time.Unix(b.Payload.IntegratedTime, 0)); err != nil {
			return &CheckError{Check: CheckTlog, Signature: l.Digest, Reason: err.Error(), Err: fmt.Errorf("%w: %w", ErrCertificateValidity, err)}
		}
	}
	if err := v.checkCAWindow(opts, b.Payload.IntegratedTime, true); err != nil {
		return &CheckError{Check: CheckCertificate, Signature: l.Digest, Reason: err.Error(), Err: err}
	}
	v.Bundle, v.TlogVerified = b, true
	return nil
}

// certOutputKeys are the certificate extensions cosign v2 adds to a
// verified payload's optional map, under their name and their OID.
var certOutputKeys = []struct {
	n    int
	name string
}{{fulcio.IssuerV1, "Issuer"}, {fulcio.GitHubWorkflowTrigger, "githubWorkflowTrigger"}, {fulcio.GitHubWorkflowSHA, "githubWorkflowSha"},
	{fulcio.GitHubWorkflowName, "githubWorkflowName"}, {fulcio.GitHubWorkflowRepository, "githubWorkflowRepository"}, {fulcio.GitHubWorkflowRef, "githubWorkflowRef"}}

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
		if sans := fulcio.SubjectAlternativeNames(c); len(sans) > 0 {
			v.Claims.Optional["Subject"] = sans[0]
		}
		// cosign v2 prints the raw .1.1 issuer and GitHub's .1.2-.1.6.
		for _, k := range certOutputKeys {
			if val, ok := fulcio.Value(c, k.n); ok {
				if k.name != "" {
					v.Claims.Optional[k.name] = val
				}
				v.Claims.Optional[fulcio.OID(k.n).String()] = val
			}
		}
	}
	if v.Bundle != nil {
		v.Claims.Optional["Bundle"] = v.Bundle
	}
}

// checkAnnotations applies cosign verify -a (payload.CheckAnnotations),
// the failures joined with "; " as one reason.
func checkAnnotations(have map[string]any, want map[string]string) error {
	err := payload.CheckAnnotations(have, want)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	lines := make([]string, 0, len(joined.Unwrap()))
	for _, e := range joined.Unwrap() {
		lines = append(lines, e.Error())
	}
	return errors.New(strings.Join(lines, "; "))
}

// VerifySignature checks sig over payload with pub: ECDSA (ASN.1) and RSA
// PKCS#1 v1.5 over SHA-256, or Ed25519 over the payload. When the
// signature's shape shows it was made with another kind of key than pub,
// the error says so.
func VerifySignature(pub crypto.PublicKey, payload, sig []byte) error {
	shape := signatureShape(sig)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(payload)
		if ecdsa.VerifyASN1(k, h[:], sig) {
			return nil
		}
		if shape != "ECDSA" {
			return &keyMismatchError{fmt.Sprintf("the key is ECDSA %s but the signature is not an ASN.1 ECDSA signature (%d bytes, %s): verify with the key that made it", curveName(k), len(sig), shape)}
		}
		return fmt.Errorf("ECDSA signature does not verify with the ECDSA %s key", curveName(k))
	case *rsa.PublicKey:
		h := sha256.Sum256(payload)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil {
			return nil
		}
		if len(sig) != k.Size() {
			return &keyMismatchError{fmt.Sprintf("the key is RSA %d but the signature is %d bytes (%s), not an RSA-%d signature: verify with the key that made it", k.N.BitLen(), len(sig), shape, k.N.BitLen())}
		}
		return fmt.Errorf("RSA signature does not verify with the RSA %d key", k.N.BitLen())
	case ed25519.PublicKey:
		if ed25519.Verify(k, payload, sig) {
			return nil
		}
		if len(sig) != ed25519.SignatureSize {
			return &keyMismatchError{fmt.Sprintf("the key is Ed25519 but the signature is %d bytes (%s), not a 64-byte Ed25519 signature: verify with the key that made it", len(sig), shape)}
		}
		return errors.New("Ed25519 signature does not verify with the Ed25519 key")
	default:
		return fmt.Errorf("unsupported public key type %T (use ECDSA, RSA or Ed25519)", pub)
	}
}

// keyMismatchError says that a signature cannot have been made with a key
// of the given type at all.
type keyMismatchError struct{ msg string }

func (e *keyMismatchError) Error() string { return e.msg }

// signatureShape guesses what kind of key made sig, for error messages.
func signatureShape(sig []byte) string {
	var es struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &es); err == nil && len(rest) == 0 && es.R != nil && es.S != nil {
		return "ECDSA"
	}
	switch len(sig) {
	case ed25519.SignatureSize:
		return "looks like Ed25519"
	case 256, 384, 512:
		return fmt.Sprintf("looks like RSA-%d", len(sig)*8)
	}
	return "unknown format"
}

func curveName(k *ecdsa.PublicKey) string {
	if k.Curve == nil {
		return "(no curve)"
	}
	return k.Curve.Params().Name
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
