package verify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// Checks that can fail, named in errors (and, by the CLI, in messages that
// mirror cosign's).
const (
	CheckFormat                = "signature layer format"
	CheckIntegrity             = "payload digest"
	CheckCertificate           = "certificate"
	CheckSCT                   = "certificate transparency (SCT)"
	CheckSignature             = "signature"
	CheckPayload               = "payload"
	CheckDigestClaim           = "digest claim"
	CheckTlog                  = "transparency log"
	CheckIdentity              = "identity"
	CheckAnnotation            = "annotation"
	CheckProvenanceAnnotations = "provenance"
)

// Class says what a failed check means for the signature.
type Class int

const (
	// Invalid: the signature is broken: it does not verify over what it
	// claims, its certificate, SCT or log evidence is wrong, or it is not
	// about the image.
	Invalid Class = iota
	// Unverifiable: nothing in the trust material covers it (an unknown
	// key, certificate authority or log, a time outside their windows, no
	// log entry) or it is in a form this verifier does not check.
	Unverifiable
	// NotAllowed: the signature is cryptographically valid and covered by
	// the trust material, but the policy refuses it (identity, annotations,
	// provenance, predicate type).
	NotAllowed
)

func (c Class) String() string {
	switch c {
	case Invalid:
		return "invalid"
	case Unverifiable:
		return "unverifiable"
	case NotAllowed:
		return "not allowed"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// CheckError says which check failed for which signature and why.
type CheckError struct {
	Check     string // one of the Check* constants
	Class     Class  // what the failure means
	Signature string // the signature: its layer digest, "bundle <manifest>"
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

// ClassOf is the class of a Verify error: the class of its *CheckError, or
// Invalid for any other error.
func ClassOf(err error) Class {
	var ce *CheckError
	if errors.As(err, &ce) {
		return ce.Class
	}
	return Invalid
}

// Policy says what a signature must satisfy beyond being valid under the
// trust material. The zero value requires everything it can: a subject,
// identities for certificates, a transparency-log entry and an SCT. The
// opt-outs are named for what they give up.
type Policy struct {
	// Subject is the digest of the image the signature must be about
	// ("sha256:<hex>"): the simple-signing digest claim, or a subject of
	// the in-toto statement.
	Subject string
	// Identities: a certificate must match one (cosign's
	// --certificate-identity[-regexp] and --certificate-oidc-issuer[-regexp]).
	Identities []Identity
	// Annotations must all be signed with exactly these string values
	// (cosign verify -a; payload.CheckAnnotations).
	Annotations map[string]string
	// PredicateType, when set, must be the in-toto statement's.
	PredicateType string
	// Provenance compares every signed annotation with what the signing
	// certificate attests (CheckProvenance); a contradiction fails.
	Provenance bool
	// Now is the verification time: a certificate and its CA must be valid
	// then when no log entry gives the signing time (zero: time.Now()).
	Now time.Time

	// WithoutIdentitiesUnsafe accepts any certificate identity (for an
	// index that records the identity instead of selecting one).
	WithoutIdentitiesUnsafe bool
	// WithoutClaimsUnsafe checks neither the subject nor the annotations
	// (cosign's --check-claims=false).
	WithoutClaimsUnsafe bool
	// IgnoreTlogUnsafe neither requires nor checks a transparency-log entry
	// (--insecure-ignore-tlog); a certificate must then be valid now.
	IgnoreTlogUnsafe bool
	// IgnoreTlogForKeysUnsafe does so for key-based signatures only (the
	// index trusts --trusted-key signatures made without a log).
	IgnoreTlogForKeysUnsafe bool
	// IgnoreSCTUnsafe does not require the certificate's SCT
	// (--insecure-ignore-sct).
	IgnoreSCTUnsafe bool
}

// now is p.Now, else the current time.
func (p *Policy) now() time.Time {
	if p.Now.IsZero() {
		return time.Now()
	}
	return p.Now
}

// Verified is a signature that passed every check.
type Verified struct {
	// Kind is KindSimpleSigning, KindBundle or KindAttestation.
	Kind string
	// Name identifies the signature (its layer digest, "bundle <manifest>").
	Name string
	// Claims is the verified simple-signing payload as cosign prints it
	// (the optional map enriched with the certificate and bundle); for a
	// bundle, the claims cosign synthesizes from its statement.
	Claims payload.SimpleSigning
	// Certificate is the signing certificate of a keyless signature, and
	// CA the certificate authority (its URI) it chains to.
	Certificate *x509.Certificate
	CA          string
	// Chain is the certificate's verified chain and the trusted CAs it
	// chains to (e.g. to tell which trusted root covers it).
	Chain *Chain
	// Key is the fingerprint of the trusted key of a key-based signature.
	Key string
	// Annotations are the string annotations signed for the image
	// (payload.Annotations), before cosign's output additions to Claims.
	Annotations map[string]string
	// Bundle is the cosign bundle annotation of a .sig or .att layer
	// (printed as cosign does).
	Bundle *rekor.Bundle
	// TlogVerified: the log entry LogEntry was checked against a trusted
	// log key. With the log ignored, a well-formed bundle is kept for
	// output but not checked.
	TlogVerified bool
	LogEntry     *rekor.LogEntry
	// Statement is the in-toto statement of a bundle or attestation.
	Statement *payload.Statement
	// EnvelopeJSON is the DSSE envelope of a bundle or attestation (an
	// attestation's is its layer payload).
	EnvelopeJSON []byte
	// Provenance is the annotation check, with Policy.Provenance.
	Provenance []ProvenanceCheck

	// stored is what cosign prints for the signature in text output.
	stored []byte
}

// OutputPayload is what cosign prints for the signature: the payload of a
// .sig layer, the envelope of an attestation, the synthesized claims of a
// bundle.
func (v *Verified) OutputPayload() []byte {
	if v.Kind == KindBundle {
		b, _ := json.Marshal(v.Claims)
		return b
	}
	return v.stored
}

// Verify checks one signature against the trust material and the policy,
// in the order of the specification, and returns it verified or a
// *CheckError naming the first check that failed and its Class:
//
//  1. its stored form (Signed.Content: format, payload digest);
//  2. the signed payload and its subject (the image digest): a payload for
//     another image is invalid whoever signed it;
//  3. the signer: a certificate chained to a trusted CA for code signing,
//     with an SCT of a trusted CT log; or a trusted key;
//  4. the signature over the exact signed bytes;
//  5. the transparency-log entry binding this very signature (SET and, when
//     present, inclusion proof with a trusted log key), the certificate
//     valid and its CA trusted at the logged time;
//  6. the policy: identity, predicate type, annotations, provenance.
//
// Checks 1 to 5 fail as Invalid or Unverifiable; only 6 fails as
// NotAllowed. Verify reads nothing but s; ctx is for cancellation.
func Verify(ctx context.Context, s Signed, trust *Trust, policy Policy) (*Verified, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if trust == nil {
		trust = &Trust{}
	}
	r := &run{s: s, name: s.Name(), trust: trust, policy: &policy, v: &Verified{Kind: s.Kind(), Name: s.Name()}}
	for _, step := range []func() error{r.content, r.claims, r.signer, r.signature, r.tlog, r.allowed} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	r.output()
	return r.v, nil
}
