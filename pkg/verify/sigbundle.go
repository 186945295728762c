package verify

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// Sigstore bundle media types (cosign v3 and --new-bundle-format).
const (
	BundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	BundleMediaTypeV03    = "application/vnd.dev.sigstore.bundle.v0.3+json"
)

// Signature kinds reported in Verified.Kind.
const (
	KindSimpleSigning = "cosign"          // a .sig layer
	KindBundle        = "sigstore-bundle" // a sigstore bundle referrer
	KindAttestation   = "attestation"     // a .att layer (DSSE envelope)
)

// ErrInvalidBundle is wrapped by ParseSigstoreBundle errors.
var ErrInvalidBundle = errors.New("invalid sigstore bundle")

// maxBundleEntries bounds the tlog entries read from a bundle.
const maxBundleEntries = 8

// pbInt64 is a protojson int64: a JSON string (or, leniently, a number).
type pbInt64 int64

func (v *pbInt64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an int64", s)
	}
	*v = pbInt64(n)
	return nil
}

// pbBytes is protojson bytes: standard or URL-safe base64, padded or not.
type pbBytes []byte

func (v *pbBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(s); err == nil {
			*v = d
			return nil
		}
	}
	return errors.New("not base64")
}

// SigstoreBundle is a sigstore bundle (protojson, v0.1 to v0.3) as far as
// image verification reads it.
type SigstoreBundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial struct {
		Certificate *struct {
			RawBytes pbBytes `json:"rawBytes"`
		} `json:"certificate"`
		X509CertificateChain *struct {
			Certificates []struct {
				RawBytes pbBytes `json:"rawBytes"`
			} `json:"certificates"`
		} `json:"x509CertificateChain"`
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		TlogEntries []BundleTlogEntry `json:"tlogEntries"`
	} `json:"verificationMaterial"`
	DSSEEnvelope *struct {
		Payload     pbBytes `json:"payload"`
		PayloadType string  `json:"payloadType"`
		Signatures  []struct {
			Sig   pbBytes `json:"sig"`
			KeyID string  `json:"keyid"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
	MessageSignature json.RawMessage `json:"messageSignature"`
}

// BundleTlogEntry is a transparency-log entry in a sigstore bundle.
type BundleTlogEntry struct {
	LogIndex pbInt64 `json:"logIndex"`
	LogID    struct {
		KeyID pbBytes `json:"keyId"`
	} `json:"logId"`
	KindVersion struct {
		Kind    string `json:"kind"`
		Version string `json:"version"`
	} `json:"kindVersion"`
	IntegratedTime   pbInt64 `json:"integratedTime"`
	InclusionPromise *struct {
		SignedEntryTimestamp pbBytes `json:"signedEntryTimestamp"`
	} `json:"inclusionPromise"`
	InclusionProof *struct {
		LogIndex   pbInt64   `json:"logIndex"`
		RootHash   pbBytes   `json:"rootHash"`
		TreeSize   pbInt64   `json:"treeSize"`
		Hashes     []pbBytes `json:"hashes"`
		Checkpoint struct {
			Envelope string `json:"envelope"`
		} `json:"checkpoint"`
	} `json:"inclusionProof"`
	CanonicalizedBody pbBytes `json:"canonicalizedBody"`
}

// LogEntry converts the bundle entry.
func (e BundleTlogEntry) LogEntry() *LogEntry {
	le := &LogEntry{Body: e.CanonicalizedBody, IntegratedTime: int64(e.IntegratedTime), LogIndex: int64(e.LogIndex),
		LogID: fmt.Sprintf("%x", []byte(e.LogID.KeyID))}
	if e.InclusionPromise != nil {
		le.SET = e.InclusionPromise.SignedEntryTimestamp
	}
	if p := e.InclusionProof; p != nil {
		ip := &InclusionProof{LogIndex: int64(p.LogIndex), TreeSize: int64(p.TreeSize), RootHash: p.RootHash, Checkpoint: p.Checkpoint.Envelope}
		for _, h := range p.Hashes {
			ip.Hashes = append(ip.Hashes, h)
		}
		le.Proof = ip
	}
	return le
}

// ParseSigstoreBundle parses a sigstore bundle: a known media type, a
// DSSE envelope or message signature, at most a few log entries.
func ParseSigstoreBundle(b []byte) (*SigstoreBundle, error) {
	var sb SigstoreBundle
	if err := json.Unmarshal(b, &sb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidBundle, err)
	}
	if !strings.HasPrefix(sb.MediaType, BundleMediaTypePrefix) {
		return nil, fmt.Errorf("%w: media type %q is not a sigstore bundle's", ErrInvalidBundle, sb.MediaType)
	}
	if sb.DSSEEnvelope == nil && len(sb.MessageSignature) == 0 {
		return nil, fmt.Errorf("%w: neither a DSSE envelope nor a message signature", ErrInvalidBundle)
	}
	if len(sb.VerificationMaterial.TlogEntries) > maxBundleEntries {
		return nil, fmt.Errorf("%w: %d log entries; at most %d are read", ErrInvalidBundle, len(sb.VerificationMaterial.TlogEntries), maxBundleEntries)
	}
	return &sb, nil
}

// leaf returns the bundle's signing certificate, if any.
func (sb *SigstoreBundle) leaf() (*x509.Certificate, []*x509.Certificate, error) {
	vm := sb.VerificationMaterial
	var ders [][]byte
	switch {
	case vm.Certificate != nil:
		ders = [][]byte{vm.Certificate.RawBytes}
	case vm.X509CertificateChain != nil:
		for i, c := range vm.X509CertificateChain.Certificates {
			if i == maxChainCerts {
				break
			}
			ders = append(ders, c.RawBytes)
		}
	}
	if len(ders) == 0 {
		return nil, nil, nil
	}
	var certs []*x509.Certificate
	for _, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			return nil, nil, fmt.Errorf("bundle certificate: %v", err)
		}
		certs = append(certs, c)
	}
	return certs[0], certs[1:], nil
}

// Certificate returns the bundle's signing certificate (nil for a
// key-based bundle), unverified: for display; VerifySigstoreBundle checks it.
func (sb *SigstoreBundle) Certificate() (*x509.Certificate, error) {
	c, _, err := sb.leaf()
	return c, err
}

// BundleCheck says what a bundle must be about.
type BundleCheck struct {
	ImageDigest string // the statement must have this subject digest
	// PredicateType, when set, must be the statement's predicate type.
	PredicateType string
	// RefName is written as docker-reference in the synthesized claims
	// (cosign prints the reference it was given).
	RefName string
}

// VerifySigstoreBundle verifies a sigstore bundle attached to an image:
// the signer (key, or certificate chained to the trusted roots with SCT and
// identity), the DSSE signature over the in-toto statement, the statement's
// subject digest and predicate type, the log entry (SET, and inclusion
// proof when present) binding this signature, and the certificate validity
// at the logged time. Its claims are synthesized as cosign prints them:
// critical.type = the predicate type, optional = the subject's annotations
// (cosign v3's -a), against which opts.Annotations are checked.
func VerifySigstoreBundle(raw []byte, check BundleCheck, opts Options, digest string) (*Verified, error) {
	fail := func(c, format string, args ...any) error {
		return &CheckError{Check: c, Signature: digest, Reason: fmt.Sprintf(format, args...)}
	}
	sb, err := ParseSigstoreBundle(raw)
	if err != nil {
		return nil, fail(CheckFormat, "%v", err)
	}
	env := sb.DSSEEnvelope
	if env == nil {
		return nil, fail(CheckFormat, "the bundle holds a message signature, not a DSSE envelope over an in-toto statement; image bundles from cosign carry DSSE")
	}
	if env.PayloadType != payload.InTotoPayloadType {
		return nil, fail(CheckPayload, "DSSE payload type %q is not %q", env.PayloadType, payload.InTotoPayloadType)
	}
	if len(env.Signatures) == 0 {
		return nil, fail(CheckFormat, "DSSE envelope has no signature")
	}
	v := &Verified{Kind: KindBundle, Layer: Layer{Digest: digest, MediaType: sb.MediaType, Payload: raw}}
	leaf, chain, err := sb.leaf()
	if err != nil {
		return nil, fail(CheckCertificate, "%v", err)
	}
	pub := opts.PublicKey
	switch {
	case pub != nil:
	case opts.Cert == nil:
		return nil, fail(CheckSignature, "no public key or trusted root to verify with")
	case leaf == nil:
		return nil, fail(CheckCertificate, "bundle has no certificate (was it signed with a key? then verify with --key)")
	default:
		verified, err := VerifyCertificate(leaf, chain, *opts.Cert)
		if err != nil {
			return nil, certificateError(digest, err)
		}
		v.Certificate, v.chain, pub = leaf, verified, leaf.PublicKey
	}
	pae := payload.PAE(env.PayloadType, env.Payload)
	var sig []byte
	for _, s := range env.Signatures {
		if VerifySignature(pub, pae, s.Sig) == nil {
			sig = s.Sig
			break
		}
	}
	if sig == nil {
		return nil, fail(CheckSignature, "no DSSE signature verifies with the %s: the statement or the signature was changed after signing", keyWord(v.Certificate))
	}
	st, err := payload.ParseStatement(env.Payload)
	if err != nil {
		return nil, fail(CheckPayload, "%v", err)
	}
	if !st.HasSubjectDigest(check.ImageDigest) {
		return nil, fail(CheckDigestClaim, "the statement is not about the image %s (subjects: %s)", check.ImageDigest, subjectDigests(st))
	}
	if check.PredicateType != "" && st.PredicateType != check.PredicateType {
		return nil, fail(CheckPayload, "predicate type is %q, not %q", st.PredicateType, check.PredicateType)
	}
	ph := sha256.Sum256(env.Payload)
	want := loggedSignature{contentSHA256: ph[:], sig: sig}
	if v.Certificate != nil {
		want.keyDER = v.Certificate.Raw
	} else {
		want.keyDER, _ = x509.MarshalPKIXPublicKey(pub)
	}
	if err := v.checkBundleTlog(sb, opts, want); err != nil {
		return nil, &CheckError{Check: CheckTlog, Signature: digest, Reason: err.Error(), Err: err}
	}
	var integrated int64
	if v.LogEntry != nil {
		integrated = v.LogEntry.IntegratedTime
	}
	if err := v.checkCAWindow(opts, integrated, v.TlogVerified); err != nil {
		return nil, &CheckError{Check: CheckCertificate, Signature: digest, Reason: err.Error(), Err: err}
	}
	// The annotations are those of the subject that is this image (a
	// statement may name several images, each with its own).
	var ann map[string]any
	var subj struct {
		Subject []struct {
			Digest      map[string]string `json:"digest"`
			Annotations map[string]any    `json:"annotations"`
		} `json:"subject"`
	}
	if alg, hex, ok := strings.Cut(check.ImageDigest, ":"); ok && json.Unmarshal(env.Payload, &subj) == nil {
		for _, s := range subj.Subject {
			if s.Digest[alg] == hex {
				ann = s.Annotations
				break
			}
		}
	}
	v.Claims = Claims{Critical: Critical{Identity: IdentityClaim{DockerReference: check.RefName},
		Image: ImageClaim{DockerManifestDigest: check.ImageDigest}, Type: st.PredicateType}, Optional: ann}
	if !opts.SkipClaims {
		if err := checkAnnotations(ann, opts.Annotations); err != nil {
			return nil, fail(CheckAnnotation, "%v", err)
		}
	}
	if err := v.checkProvenance(ann, opts); err != nil {
		return nil, fail(CheckProvenanceAnnotations, "%v", err)
	}
	v.Statement = &st
	v.EnvelopeJSON, _ = json.Marshal(payload.Envelope{PayloadType: env.PayloadType, Payload: base64.StdEncoding.EncodeToString(env.Payload),
		Signatures: []payload.Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}}})
	return v, nil
}

func keyWord(c *x509.Certificate) string {
	if c != nil {
		return "certificate's key"
	}
	return "public key"
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

// checkBundleTlog verifies the first log entry of a bundle that binds
// want: its SET (or, for a key-based signature without one, its inclusion
// proof: a certificate's validity needs the SET-signed time), its
// inclusion proof when present, and the certificate's validity at its
// time.
func (v *Verified) checkBundleTlog(sb *SigstoreBundle, opts Options, want loggedSignature) error {
	if opts.IgnoreTlog {
		if c := v.Certificate; c != nil {
			if err := CheckValidity(c, opts.now()); err != nil {
				return fmt.Errorf("expected a signed timestamp to verify an expired certificate (%v)", err)
			}
		}
		return nil
	}
	entries := sb.VerificationMaterial.TlogEntries
	if len(entries) == 0 {
		return fmt.Errorf("%w: the bundle has no transparency log entry (verify with --insecure-ignore-tlog if it was signed without a log)", ErrNoBundle)
	}
	var errs []error
	for _, be := range entries {
		e := be.LogEntry()
		if err := checkEntryBody(e.Body, want); err != nil {
			errs = append(errs, err)
			continue
		}
		if e.SET == nil && e.Proof == nil {
			errs = append(errs, fmt.Errorf("%w: the log entry has neither a signed entry timestamp nor an inclusion proof", ErrSET))
			continue
		}
		if e.SET != nil {
			if err := VerifySET(e, opts.TlogKeys); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if e.Proof != nil {
			if err := VerifyInclusion(e, opts.TlogKeys); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if e.SET == nil && v.Certificate != nil {
			// Neither the proof nor its checkpoint covers integratedTime:
			// without a SET the time is the bundle's word, and it cannot
			// show the certificate was valid when the signature was logged.
			errs = append(errs, fmt.Errorf("%w: the log entry has an inclusion proof but no signed entry timestamp, so its integrated time is not authenticated and cannot show the certificate was valid when the signature was logged (re-sign with a log that returns a SET)", ErrSET))
			continue
		}
		if c := v.Certificate; c != nil {
			if err := CheckValidity(c, time.Unix(e.IntegratedTime, 0)); err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", ErrCertificateValidity, err))
				continue
			}
		}
		v.TlogVerified, v.LogEntry = true, e
		return nil
	}
	return errors.Join(errs...)
}
