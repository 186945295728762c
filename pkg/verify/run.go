package verify

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// run is one Verify call: the signature, what the checks have found so
// far, and the result being built.
type run struct {
	s      Signed
	name   string
	trust  *Trust
	policy *Policy
	v      *Verified

	c             *Content
	signedSHA256  [32]byte // of c.Signed
	payloadSHA256 [32]byte // of c.Payload (what a log entry records)
	chain         *Chain   // the certificate's verified chain
	pub           crypto.PublicKey
	keyDER        []byte // the certificate's DER, or the key's PKIX DER
	sig           []byte // the signature that verified

	payload     payload.SimpleSigning // a simple-signing payload
	annotations map[string]any        // the signed annotations
}

func (r *run) fail(check string, class Class, format string, args ...any) error {
	return &CheckError{Check: check, Class: class, Signature: r.name, Reason: fmt.Sprintf(format, args...)}
}

func (r *run) failErr(check string, class Class, err error) error {
	return &CheckError{Check: check, Class: class, Signature: r.name, Reason: err.Error(), Err: err}
}

// dsse reports whether the signature is over a DSSE envelope.
func (r *run) dsse() bool { return r.c.DSSE }

// noun names the stored form in messages.
func (r *run) noun() string {
	if r.v.Kind == KindBundle {
		return "bundle"
	}
	return "signature"
}

// content reads what was signed, and hashes it once for every check.
func (r *run) content() error {
	c, err := r.s.Content()
	if err != nil {
		var ce *CheckError
		if errors.As(err, &ce) {
			return err
		}
		return r.failErr(CheckFormat, Invalid, err)
	}
	r.c = c
	switch {
	case c.payloadSHA256 != nil:
		r.payloadSHA256 = *c.payloadSHA256
	default:
		r.payloadSHA256 = sha256.Sum256(c.Payload)
	}
	if r.dsse() {
		r.signedSHA256 = sha256.Sum256(c.Signed)
	} else {
		r.signedSHA256 = r.payloadSHA256 // a simple-signing payload is signed as is
	}
	return nil
}

// signer finds what the signature must verify with: its certificate,
// chained to a trusted CA with an SCT of a trusted CT log, or the trusted
// keys. A certificate is used when the trust has CAs; otherwise a
// signature is checked with the keys (as cosign --key ignores it).
func (r *run) signer() error {
	cert, chain, err := r.s.Certificate()
	if err != nil {
		return r.failErr(CheckCertificate, Invalid, err)
	}
	t := r.trust
	switch {
	case cert != nil && len(t.CAs) > 0:
		verified, err := verifyChain(cert, chain, t.CAs, t.anchors)
		if err != nil {
			return r.failErr(CheckCertificate, Unverifiable, err)
		}
		if !r.policy.IgnoreSCTUnsafe {
			if err := VerifyEmbeddedSCT(verified.Certificates[0], verified.Issuer(), t.CTLogKeys); err != nil {
				class := Invalid
				if errors.Is(err, ErrOutsideValidFor) {
					class = Unverifiable
				}
				return r.failErr(CheckSCT, class, err)
			}
		}
		r.v.Certificate, r.chain, r.pub, r.keyDER = cert, verified, cert.PublicKey, cert.Raw
		r.v.CA, r.v.Chain = verified.CA(), verified
	case len(t.Keys) > 0:
		// signature() tries every key.
	case len(t.CAs) > 0:
		return r.fail(CheckCertificate, Unverifiable, "%s has no certificate (was it signed with a key? then verify with --key)", r.noun())
	case cert != nil:
		return r.fail(CheckCertificate, Unverifiable, "no trusted root certificates: give --trusted-root or run 'hallmark trust init'")
	default:
		return r.fail(CheckSignature, Unverifiable, "no public key or trusted root to verify with")
	}
	return nil
}

// signature checks a signature over the exact signed bytes: with the
// certificate's key, else with each trusted key in turn.
func (r *run) signature() error {
	if r.pub != nil {
		var last error
		for _, sig := range r.c.Signatures {
			if last = verifySignature(r.pub, r.c.Signed, r.signedSHA256, sig); last == nil {
				r.sig = sig
				return nil
			}
		}
		if r.dsse() || last == nil {
			return r.fail(CheckSignature, Invalid, "no DSSE signature verifies with the certificate's key: the statement or the signature was changed after signing")
		}
		return r.fail(CheckSignature, Invalid, "%v: the signature does not match the certificate's key, so the payload or the signature was changed after signing", last)
	}
	var last error
	for _, k := range r.trust.Keys {
		for _, sig := range r.c.Signatures {
			if last = verifySignature(k.PublicKey, r.c.Signed, r.signedSHA256, sig); last == nil {
				r.pub, r.keyDER, r.sig, r.v.Key = k.PublicKey, k.DER(), sig, k.Fingerprint
				return nil
			}
		}
	}
	switch {
	case r.dsse() || last == nil:
		return r.fail(CheckSignature, Unverifiable, "no DSSE signature verifies with the %s: the statement or the signature was changed after signing", keyWords(len(r.trust.Keys)))
	case len(r.trust.Keys) > 1:
		return r.fail(CheckSignature, Unverifiable, "it verifies with none of the %d trusted keys: it was made with another key, or the payload was changed after signing", len(r.trust.Keys))
	}
	var km *keyMismatchError
	if errors.As(last, &km) {
		return r.fail(CheckSignature, Unverifiable, "%v", last)
	}
	return r.fail(CheckSignature, Unverifiable, "%v: it was made with another key than %s, or the payload was changed after signing", last, r.trust.Keys[0].Fingerprint)
}

func keyWords(n int) string {
	if n > 1 {
		return "trusted keys"
	}
	return "public key"
}

// claims reads the signed payload and checks that it is about the image.
func (r *run) claims() error {
	c := r.c
	if c.Blob {
		return nil // the signature itself binds the blob; it claims nothing more
	}
	d, err := c.parse()
	if err != nil {
		return r.failErr(CheckPayload, Invalid, err)
	}
	r.annotations = c.signedAnnotations(r.policy.Subject)
	if d.statement == nil {
		r.payload = d.simple
		if got := d.simple.Critical.Image.DockerManifestDigest; !r.policy.WithoutClaimsUnsafe && got != r.policy.Subject {
			return r.fail(CheckDigestClaim, Invalid, "payload is for %q, not the image %s", got, r.policy.Subject)
		}
		return nil
	}
	st := d.statement
	r.v.Statement = st
	if !r.policy.WithoutClaimsUnsafe && !st.HasSubjectDigest(r.policy.Subject) {
		what := "statement"
		if r.v.Kind == KindAttestation {
			what = "attestation"
		}
		return r.fail(CheckDigestClaim, Invalid, "the %s is not about the image %s (subjects: %s)", what, r.policy.Subject, subjectDigests(*st))
	}
	return nil
}

func subjectDigests(st payload.Statement) string {
	var out []string
	for _, s := range st.Subject {
		for alg, d := range s.Digest {
			out = append(out, alg+":"+d)
		}
	}
	return strings.Join(out, ", ")
}

// tlog checks the transparency-log entry stored with the signature (unless
// the policy ignores the log), then that the certificate's CA was trusted
// when the signature was logged.
func (r *run) tlog() error {
	p, cert := r.policy, r.v.Certificate
	if p.IgnoreTlogUnsafe || (cert == nil && p.IgnoreTlogForKeysUnsafe) {
		if cb, ok := r.s.(cosignBundler); ok {
			r.v.Bundle = cb.CosignBundle() // cosign prints it even when the log is not checked
		}
		if cert != nil {
			if err := CheckValidity(cert, p.now()); err != nil {
				return r.fail(CheckCertificate, Unverifiable, "expected a signed timestamp to verify an expired certificate (%v); without the transparency log the certificate must be valid now, so verify without --insecure-ignore-tlog", err)
			}
		}
		return r.caWindow(p.now(), "without a transparency log the signature is checked at the verification time,")
	}
	entries, err := r.s.TlogEntries()
	if err != nil {
		return r.failErr(CheckTlog, Invalid, err)
	}
	if len(entries) == 0 {
		reason := "signature has no transparency log bundle (signed with --tlog-upload=false? then verify with --insecure-ignore-tlog)"
		if r.v.Kind == KindBundle {
			reason = ErrNoBundle.Error() + ": the bundle has no transparency log entry (verify with --insecure-ignore-tlog if it was signed without a log)"
		}
		return &CheckError{Check: CheckTlog, Class: Unverifiable, Signature: r.name, Reason: reason, Err: ErrNoBundle}
	}
	var errs []error
	for _, e := range entries {
		if err := r.logEntry(e); err != nil {
			errs = append(errs, err)
			continue
		}
		r.v.TlogVerified, r.v.LogEntry = true, e
		if cb, ok := r.s.(cosignBundler); ok {
			r.v.Bundle = cb.CosignBundle()
		}
		return r.caWindow(time.Unix(e.IntegratedTime, 0), "the signature was logged")
	}
	err = errors.Join(errs...)
	return r.failErr(CheckTlog, tlogClass(err), err)
}

// logEntry checks one log entry: it logs exactly this signature; its SET
// (or, for a key-based signature without one, its inclusion proof) and its
// inclusion proof when present verify with the log's key, trusted at the
// entry's integrated time; the certificate was valid then.
func (r *run) logEntry(e *rekor.LogEntry) error {
	if err := checkEntryBody(e.Body, loggedSignature{contentSHA256: r.payloadSHA256[:], sig: r.sig, keyDER: r.keyDER}); err != nil {
		return err
	}
	if e.SET == nil && e.Proof == nil {
		return fmt.Errorf("%w: the log entry has neither a signed entry timestamp nor an inclusion proof", rekor.ErrSET)
	}
	if e.SET != nil {
		if err := VerifySET(e, r.trust.TlogKeys); err != nil {
			return err
		}
	}
	if e.Proof != nil {
		if err := VerifyInclusion(e, r.trust.TlogKeys); err != nil {
			return err
		}
	}
	cert := r.v.Certificate
	if cert == nil {
		return nil
	}
	if e.SET == nil {
		// Neither the proof nor its checkpoint covers integratedTime:
		// without a SET the time is the entry's word, and it cannot show
		// the certificate was valid when the signature was logged.
		return fmt.Errorf("%w: the log entry has an inclusion proof but no signed entry timestamp, so its integrated time is not authenticated and cannot show the certificate was valid when the signature was logged (re-sign with a log that returns a SET)", rekor.ErrSET)
	}
	if err := CheckValidity(cert, time.Unix(e.IntegratedTime, 0)); err != nil {
		return validityError{err}
	}
	return nil
}

// validityError is a certificate not valid at the logged time, in cosign's
// words; it matches ErrCertificateValidity.
type validityError struct{ err error }

func (e validityError) Error() string   { return e.err.Error() }
func (e validityError) Unwrap() []error { return []error{ErrCertificateValidity, e.err} }

// tlogClass is the class of the log check's failure: broken evidence is
// Invalid; a log or a time the trust does not cover is Unverifiable.
func tlogClass(err error) Class {
	for _, broken := range []error{rekor.ErrSET, rekor.ErrInclusionProof, rekor.ErrEntryMismatch, ErrCertificateValidity} {
		if errors.Is(err, broken) {
			return Invalid
		}
	}
	if errors.Is(err, ErrUnknownLog) || errors.Is(err, ErrOutsideValidFor) {
		return Unverifiable
	}
	return Invalid
}

// caWindow checks that a CA the certificate chains to was trusted at the
// signature's observer time, as sigstore-go does: the integrated time of
// the verified log entry, else the verification time.
func (r *run) caWindow(t time.Time, event string) error {
	if r.chain == nil {
		return nil
	}
	if err := r.chain.TrustedAt(t, event); err != nil {
		return r.failErr(CheckCertificate, Unverifiable, err)
	}
	return nil
}

// allowed applies the policy to the valid signature: identity, predicate
// type, annotations, provenance.
func (r *run) allowed() error {
	p, cert := r.policy, r.v.Certificate
	if cert != nil && !p.WithoutIdentitiesUnsafe {
		if err := MatchIdentity(cert, p.Identities); err != nil {
			return r.failErr(CheckIdentity, NotAllowed, err)
		}
	}
	if st := r.v.Statement; st != nil && p.PredicateType != "" && st.PredicateType != p.PredicateType {
		return r.fail(CheckPayload, NotAllowed, "predicate type is %q, not %q", st.PredicateType, p.PredicateType)
	}
	if !p.WithoutClaimsUnsafe {
		if err := checkAnnotations(r.annotations, p.Annotations); err != nil {
			return r.fail(CheckAnnotation, NotAllowed, "%v", err)
		}
	}
	if p.Provenance {
		r.v.Provenance = CheckProvenance(cert, r.annotations)
		if err := ProvenanceError(r.v.Provenance); err != nil {
			return r.fail(CheckProvenanceAnnotations, NotAllowed, "%v", err)
		}
	}
	return nil
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

// output fills in what cosign prints for a verified signature.
func (r *run) output() {
	v := r.v
	v.stored = r.c.Stored
	v.Annotations = payload.Annotations(r.annotations)
	switch v.Kind {
	case KindSimpleSigning:
		v.Claims = r.payload
		r.enrich()
	case KindAttestation:
		v.EnvelopeJSON = r.c.Stored
	case KindBundle:
		if r.c.Blob {
			return
		}
		var predicateType string
		if v.Statement != nil {
			predicateType = v.Statement.PredicateType
		}
		v.Claims = payload.SimpleSigning{Critical: payload.Critical{Image: payload.Image{DockerManifestDigest: r.policy.Subject},
			Type: predicateType}, Optional: r.annotations}
		v.EnvelopeJSON, _ = json.Marshal(payload.Envelope{PayloadType: r.c.PayloadType, Payload: base64.StdEncoding.EncodeToString(r.c.Payload),
			Signatures: []payload.Signature{{Sig: base64.StdEncoding.EncodeToString(r.sig)}}})
	}
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
func (r *run) enrich() {
	v := r.v
	if v.Certificate == nil && v.Bundle == nil {
		return
	}
	// The parsed payload's map may be shared (Payloads): add to a copy.
	v.Claims.Optional = maps.Clone(v.Claims.Optional)
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
				v.Claims.Optional[k.name] = val
				v.Claims.Optional[fulcio.OID(k.n).String()] = val
			}
		}
	}
	if v.Bundle != nil {
		v.Claims.Optional["Bundle"] = v.Bundle
	}
}
