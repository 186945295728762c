package verify

import (
	"crypto/sha256"
	"fmt"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// Attestation layer annotation: the predicate type cosign attest records.
const AnnotationPredicateType = "predicateType"

// VerifyAttestationLayer checks one layer of a cosign ".att" image: a DSSE
// envelope over an in-toto statement, signed by opts.PublicKey or by a
// certificate chained to the trusted roots (with SCT and identity), logged
// (unless the log is ignored) in a dsse or hashedrekord entry bound to this
// signature, whose statement names the image digest (cosign's
// IntotoSubjectClaimVerifier). predicateType, when set, must be the
// statement's. The verified envelope is Verified.Layer.Payload.
func VerifyAttestationLayer(l Layer, imageDigest, predicateType string, opts Options) (*Verified, error) {
	fail := func(check, format string, args ...any) error {
		return &CheckError{Check: check, Signature: l.Digest, Reason: fmt.Sprintf(format, args...)}
	}
	if l.Digest != "" {
		if ok, got := oci.DigestMatches(l.Digest, l.Payload); !ok {
			return nil, fail(CheckIntegrity, "the envelope (%d bytes) hashes to %q, not to its layer digest: it was altered in the registry's storage or in transit", len(l.Payload), got)
		}
	}
	env, err := payload.ParseEnvelope(l.Payload)
	if err != nil {
		return nil, fail(CheckFormat, "%v", err)
	}
	if env.PayloadType != payload.InTotoPayloadType {
		return nil, fail(CheckPayload, "DSSE payload type %q is not %q", env.PayloadType, payload.InTotoPayloadType)
	}
	body, err := env.DecodePayload()
	if err != nil {
		return nil, fail(CheckFormat, "%v", err)
	}
	v := &Verified{Kind: KindAttestation, Layer: l, EnvelopeJSON: l.Payload}
	cert, pub, err := v.signerOf(l, opts)
	if err != nil {
		return nil, err
	}
	pae := payload.PAE(env.PayloadType, body)
	var sig []byte
	for _, s := range env.Signatures {
		raw, err := s.Decode()
		if err == nil && VerifySignature(pub, pae, raw) == nil {
			sig = raw
			break
		}
	}
	if sig == nil {
		return nil, fail(CheckSignature, "no DSSE signature verifies with the %s: the statement or the signature was changed after signing", keyWord(cert))
	}
	st, err := payload.ParseStatement(body)
	if err != nil {
		return nil, fail(CheckPayload, "%v", err)
	}
	if !opts.SkipClaims && !st.HasSubjectDigest(imageDigest) {
		return nil, fail(CheckDigestClaim, "the attestation is not about the image %s (subjects: %s)", imageDigest, subjectDigests(st))
	}
	if predicateType != "" && st.PredicateType != predicateType {
		return nil, fail(CheckPayload, "predicate type is %q, not %q", st.PredicateType, predicateType)
	}
	ph := sha256.Sum256(body)
	want := loggedSignature{contentSHA256: ph[:], sig: sig}
	// The log entry must be the dsse entry of this signature (what cosign
	// attest writes by default); an intoto entry is not accepted.
	if err := v.checkTlog(l, opts, want, pub); err != nil {
		return nil, err
	}
	v.Statement = &st
	return v, nil
}
