package verify

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// Signature kinds (Signed.Kind, Verified.Kind).
const (
	KindSimpleSigning = "cosign"          // a .sig layer
	KindBundle        = "sigstore-bundle" // a sigstore bundle referrer
	KindAttestation   = "attestation"     // a .att layer (DSSE envelope)
	KindBlob          = "blob"            // a signature over a blob (sign-blob without a sigstore bundle)
)

// Signed is one signature in the form it was stored, adapted to what
// verification reads. LayerSignature, LayerAttestation and BundleSignature
// adapt cosign's .sig layers, .att layers and sigstore bundles; they parse
// what they are given on first use, once.
type Signed interface {
	// Kind is KindSimpleSigning, KindAttestation, KindBundle or KindBlob.
	Kind() string
	// Name identifies the signature in errors: its layer digest, or
	// "bundle <manifest digest>".
	Name() string
	// Content is what was signed and the signatures over it. A stored form
	// that cannot be read is a *CheckError (format, payload digest).
	Content() (*Content, error)
	// Certificate is the signing certificate and the chain stored with
	// it, or nil, nil, nil for a key-based signature.
	Certificate() (*x509.Certificate, []*x509.Certificate, error)
	// TlogEntries are the transparency-log entries stored with the
	// signature: none when it was not logged.
	TlogEntries() ([]*rekor.LogEntry, error)
}

// cosignBundler is the ability of a .sig or .att layer to show its cosign
// bundle annotation, printed even when the log is not checked.
type cosignBundler interface {
	CosignBundle() *rekor.Bundle
}

// Content is what a signature covers.
type Content struct {
	// Payload is the signed document: a simple-signing payload, or the
	// in-toto statement of a DSSE envelope.
	Payload []byte
	// DSSE: the signatures are over the DSSE pre-authentication encoding
	// of an envelope whose payload is Payload, of PayloadType.
	DSSE        bool
	PayloadType string
	// Blob: the signatures are over Payload itself, an artifact that
	// claims nothing (sign-blob's message signature): it is about whatever
	// has its digest.
	Blob bool
	// Signed are the exact bytes the signatures are over: the payload
	// itself, or the DSSE pre-authentication encoding.
	Signed []byte
	// Signatures are the candidate signatures over Signed.
	Signatures [][]byte
	// Stored is the signature's stored form cosign prints (a layer's
	// payload, a bundle).
	Stored []byte

	// payloadSHA256 is the SHA-256 of Payload when an adapter has it.
	payloadSHA256 *[32]byte
	// doc is the payload, parsed once; the layers of one blob may share
	// it (Payloads).
	doc *document
}

// document is a payload parsed: simple-signing or an in-toto statement.
// Once parsed it is only read (several Contents may share it).
type document struct {
	parsed    bool
	simple    payload.SimpleSigning
	statement *payload.Statement
	err       error
}

// parse reads the payload once: a simple-signing payload as cosign verify
// does (ParseLenient), or an in-toto statement.
func (c *Content) parse() (*document, error) {
	if c.doc == nil {
		c.doc = &document{}
	}
	d := c.doc
	if d.parsed {
		return d, d.err
	}
	d.parsed = true
	switch {
	case !c.DSSE:
		d.simple, d.err = payload.ParseLenient(c.Payload)
	case c.PayloadType != payload.InTotoPayloadType:
		d.err = fmt.Errorf("DSSE payload type %q is not %q", c.PayloadType, payload.InTotoPayloadType)
	default:
		st, err := payload.ParseStatement(c.Payload)
		if d.err = err; err == nil {
			d.statement = &st
		}
	}
	return d, d.err
}

// signedAnnotations are the annotations signed for the image with digest
// subject: a simple-signing payload's optional map, or the annotations of
// the statement's subject that is the image. The map is shared: read it
// only.
func (c *Content) signedAnnotations(subject string) map[string]any {
	if c.Blob {
		return nil
	}
	d, err := c.parse()
	if err != nil {
		return nil
	}
	if d.statement == nil {
		return d.simple.Optional
	}
	s, _ := d.statement.SubjectFor(subject)
	return s.Annotations
}

// Description is what a signature says about itself before any check:
// what an index records whatever the outcome of Verify.
type Description struct {
	// Annotations are the string annotations signed for the image with
	// the digest Describe was given (payload.Annotations).
	Annotations map[string]string
	// Certificate is the signing certificate, when it parses.
	Certificate *x509.Certificate
	// PayloadType is the DSSE payload type (empty for simple signing).
	PayloadType string
	// PredicateType is the in-toto statement's predicate type (DSSE).
	PredicateType string
	// LogIndex is the index of the first log entry stored with it.
	LogIndex *int64
	// KeyHint is the public key hint of a key-based bundle.
	KeyHint string
}

// Describe reads what s says about itself for the image with digest
// subject, checking nothing. What it parses is parsed once, for Verify too.
func Describe(s Signed, subject string) Description {
	var d Description
	if c, err := s.Content(); err == nil {
		d.PayloadType = c.PayloadType
		if ann := c.signedAnnotations(subject); ann != nil {
			d.Annotations = payload.Annotations(ann)
		}
		if doc, err := c.parse(); !c.Blob && err == nil && doc.statement != nil {
			d.PredicateType = doc.statement.PredicateType
		}
	}
	d.Certificate, _, _ = s.Certificate()
	if entries, err := s.TlogEntries(); err == nil && len(entries) > 0 {
		i := entries[0].LogIndex
		d.LogIndex = &i
	}
	if h, ok := s.(interface{ PublicKeyHint() string }); ok {
		d.KeyHint = h.PublicKeyHint()
	}
	return d
}

// Layer is one layer of a cosign signature or attestation manifest: the
// payload blob and the layer descriptor's annotations.
type Layer struct {
	// Digest is the layer descriptor's digest. When set, the payload must
	// hash to it (the "payload digest" check).
	Digest      string
	MediaType   string // informational; cosign does not check it
	Payload     []byte
	Annotations map[string]string
	// Payloads, when set, shares the digest check and the parse of the
	// payload with the other layers of the same blob given the same
	// Payloads.
	Payloads *Payloads
}

// Payloads lets the layers of one signature manifest that point at the
// same blob share its reading: the digest check, the hash and the parse of
// the payload run once per blob instead of once per layer (a manifest may
// point many layers, each with other annotations, at one large blob). The
// layers given one Payloads must carry the same payload bytes for the same
// digest, as the layers of one manifest read from one blob store do. It is
// not safe for concurrent use.
type Payloads struct{ m map[string]*sharedPayload }

// NewPayloads returns an empty Payloads.
func NewPayloads() *Payloads { return &Payloads{m: map[string]*sharedPayload{}} }

// sharedPayload is what the layers of one blob share: its digest check and
// SHA-256, and its parse.
type sharedPayload struct {
	sum *[32]byte
	err error
	doc *document
}

// layer holds what .sig and .att layers share: the certificate, chain and
// bundle annotations.
type layer struct {
	l Layer

	certDone bool
	cert     *x509.Certificate
	chain    []*x509.Certificate
	certErr  error

	// The bundle annotation, parsed once.
	bundleDone bool
	bundle     *rekor.Bundle
	entries    []*rekor.LogEntry
	bundleErr  error
}

func (a *layer) Name() string { return a.l.Digest }

// Certificate parses the certificate and chain annotations (once).
func (a *layer) Certificate() (*x509.Certificate, []*x509.Certificate, error) {
	if a.certDone {
		return a.cert, a.chain, a.certErr
	}
	a.certDone = true
	certPEM := a.l.Annotations[oci.AnnotationCertificate]
	if certPEM == "" {
		return nil, nil, nil
	}
	if a.cert, a.certErr = ParseCertificatePEM([]byte(certPEM)); a.certErr != nil {
		return nil, nil, a.certErr
	}
	if a.chain, a.certErr = ParseCertificatesPEM([]byte(a.l.Annotations[oci.AnnotationChain])); a.certErr != nil {
		a.cert, a.certErr = nil, fmt.Errorf("chain: %w", a.certErr)
	}
	return a.cert, a.chain, a.certErr
}

// TlogEntries reads the cosign bundle annotation: its log entry (with its
// SET, without inclusion proof).
func (a *layer) TlogEntries() ([]*rekor.LogEntry, error) {
	a.readBundle()
	return a.entries, a.bundleErr
}

// readBundle parses the bundle annotation and its log entry, once.
func (a *layer) readBundle() {
	if a.bundleDone {
		return
	}
	a.bundleDone = true
	raw, ok := a.l.Annotations[oci.AnnotationBundle]
	if !ok {
		return
	}
	if a.bundle, a.bundleErr = rekor.ParseBundle(raw); a.bundleErr != nil {
		return
	}
	e, err := a.bundle.Entry()
	if err != nil {
		a.bundleErr = err
		return
	}
	a.entries = []*rekor.LogEntry{e}
}

// CosignBundle is the well-formed bundle annotation, or nil.
func (a *layer) CosignBundle() *rekor.Bundle {
	a.readBundle()
	if a.bundle == nil {
		return nil
	}
	return a.bundle
}

// integrity checks that the layer's payload hashes to its digest, and
// returns the payload's SHA-256 when that is the digest's algorithm.
func (a *layer) integrity(what string) (*[32]byte, error) {
	if a.l.Digest == "" {
		return nil, nil
	}
	var sum *[32]byte
	var ok bool
	var got string
	if strings.HasPrefix(a.l.Digest, "sha256:") {
		s := sha256.Sum256(a.l.Payload) // also the signature's and the log entry's digest
		sum, got = &s, "sha256:"+hex.EncodeToString(s[:])
		ok = got == a.l.Digest
	} else {
		ok, got = oci.DigestMatches(a.l.Digest, a.l.Payload)
	}
	switch {
	case got == "":
		return nil, a.fail(CheckIntegrity, "layer digest %q is not a sha256 or sha512 digest", a.l.Digest)
	case !ok:
		return nil, a.fail(CheckIntegrity, "the %s (%d bytes) hashes to %s, not to its layer digest: it was altered in the registry's storage or in transit", what, len(a.l.Payload), got)
	}
	return sum, nil
}

func (a *layer) fail(check, format string, args ...any) error {
	return &CheckError{Check: check, Class: Invalid, Signature: a.l.Digest, Reason: fmt.Sprintf(format, args...)}
}

// LayerSignature adapts one layer of a cosign ".sig" manifest: a
// simple-signing payload signed as is, the signature in its annotation.
func LayerSignature(l Layer) Signed { return &sigLayer{layer: layer{l: l}} }

// BlobSignature adapts a signature over blob as cosign sign-blob makes it
// without a sigstore bundle (or with --signature and --certificate): the
// signature, certificate, chain and cosign bundle in the annotations a
// ".sig" layer would carry them in (what cosign's bundle file holds).
// It is named by the blob's digest.
func BlobSignature(blob []byte, annotations map[string]string) Signed {
	sum := sha256.Sum256(blob)
	return &sigLayer{layer: layer{l: Layer{Digest: "sha256:" + hex.EncodeToString(sum[:]), Payload: blob, Annotations: annotations}}, blob: true}
}

type sigLayer struct {
	layer
	blob    bool // a BlobSignature
	content *Content
	err     error
}

func (a *sigLayer) Kind() string {
	if a.blob {
		return KindBlob
	}
	return KindSimpleSigning
}

func (a *sigLayer) Content() (*Content, error) {
	if a.content != nil || a.err != nil {
		return a.content, a.err
	}
	a.content, a.err = a.read()
	return a.content, a.err
}

func (a *sigLayer) read() (*Content, error) {
	b64, ok := a.l.Annotations[oci.AnnotationSignature]
	if !ok {
		return nil, a.fail(CheckFormat, "layer has no %s annotation", oci.AnnotationSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(b64)
	switch {
	case b64 == "":
		return nil, a.fail(CheckFormat, "annotation %s is empty (attestation layers carry no signature there; this is not an image signature)", oci.AnnotationSignature)
	case err != nil:
		return nil, a.fail(CheckFormat, "annotation %s is not standard base64 (%v); the signature layer is corrupt", oci.AnnotationSignature, err)
	}
	sp := a.shared()
	if sp.err != nil {
		return nil, sp.err
	}
	return &Content{Payload: a.l.Payload, Signed: a.l.Payload, Signatures: [][]byte{sig}, Stored: a.l.Payload, Blob: a.blob, payloadSHA256: sp.sum, doc: sp.doc}, nil
}

// shared checks the payload against its digest and prepares its parse,
// once per blob of the layer's Payloads.
func (a *sigLayer) shared() *sharedPayload {
	ps := a.l.Payloads
	if ps != nil && a.l.Digest != "" {
		if sp, ok := ps.m[a.l.Digest]; ok {
			return sp
		}
	}
	sp := &sharedPayload{doc: &document{}}
	sp.sum, sp.err = a.integrity("payload")
	if ps != nil && a.l.Digest != "" {
		ps.m[a.l.Digest] = sp
	}
	return sp
}

// LayerAttestation adapts one layer of a cosign ".att" manifest: a DSSE
// envelope over an in-toto statement, the certificate and bundle in its
// annotations.
func LayerAttestation(l Layer) Signed { return &attLayer{layer: layer{l: l}} }

type attLayer struct {
	layer
	content *Content
	err     error
}

func (a *attLayer) Kind() string { return KindAttestation }

func (a *attLayer) Content() (*Content, error) {
	if a.content != nil || a.err != nil {
		return a.content, a.err
	}
	if _, a.err = a.integrity("envelope"); a.err != nil {
		return nil, a.err
	}
	env, err := payload.ParseEnvelope(a.l.Payload)
	if err != nil {
		a.err = a.fail(CheckFormat, "%v", err)
		return nil, a.err
	}
	a.content, a.err = envelopeContent(env, a.l.Payload, a.fail)
	return a.content, a.err
}

// envelopeContent is what a DSSE envelope's signatures cover: its PAE.
// Signatures that are not base64 are left out (they verify nothing).
func envelopeContent(env payload.Envelope, stored []byte, fail func(check, format string, args ...any) error) (*Content, error) {
	body, err := env.DecodePayload()
	if err != nil {
		return nil, fail(CheckFormat, "%v", err)
	}
	c := &Content{Payload: body, DSSE: true, PayloadType: env.PayloadType, Signed: payload.PAE(env.PayloadType, body), Stored: stored}
	for _, s := range env.Signatures {
		if raw, err := s.Decode(); err == nil {
			c.Signatures = append(c.Signatures, raw)
		}
	}
	return c, nil
}

// BundleSignature adapts a sigstore bundle (cosign v3 and
// --new-bundle-format) named name in errors ("bundle <manifest digest>").
func BundleSignature(raw []byte, name string) Signed { return &bundleSig{raw: raw, name: name} }

// BlobBundle adapts a sigstore bundle of blob (sign-blob --bundle): a
// message signature over blob, whose digest the bundle must name, or a
// DSSE envelope over a statement whose subject is blob's digest.
func BlobBundle(raw []byte, name string, blob []byte) Signed {
	return &bundleSig{raw: raw, name: name, blob: blob, isBlob: true}
}

type bundleSig struct {
	raw    []byte
	name   string
	blob   []byte // the artifact of a BlobBundle
	isBlob bool

	parsed    bool
	b         *bundle.Bundle // nil when the bundle does not parse (err)
	content   *Content       // nil when it holds no DSSE envelope (err)
	err, cErr error
}

func (a *bundleSig) Kind() string { return KindBundle }
func (a *bundleSig) Name() string { return a.name }

func (a *bundleSig) fail(check, format string, args ...any) error {
	return &CheckError{Check: check, Class: Invalid, Signature: a.name, Reason: fmt.Sprintf(format, args...)}
}

// bundle parses the bundle and its DSSE envelope, once.
func (a *bundleSig) bundle() (*bundle.Bundle, error) {
	if a.parsed {
		return a.b, a.err
	}
	a.parsed = true
	if a.b, a.err = bundle.Parse(a.raw); a.err != nil {
		a.err = a.fail(CheckFormat, "%v", a.err)
		return nil, a.err
	}
	env := a.b.DSSEEnvelope
	switch {
	case env == nil && a.isBlob:
		a.content, a.cErr = a.messageContent(a.b.MessageSignature)
	case env == nil:
		a.cErr = &CheckError{Check: CheckFormat, Class: Unverifiable, Signature: a.name,
			Reason: "the bundle holds a message signature, not a DSSE envelope over an in-toto statement; image bundles from cosign carry DSSE"}
	case len(env.Signatures) == 0:
		a.cErr = a.fail(CheckFormat, "DSSE envelope has no signature")
	default:
		c := &Content{Payload: env.Payload, DSSE: true, PayloadType: env.PayloadType, Signed: payload.PAE(env.PayloadType, env.Payload), Stored: a.raw}
		for _, s := range env.Signatures {
			c.Signatures = append(c.Signatures, s.Sig)
		}
		a.content = c
	}
	return a.b, nil
}

// messageContent is what a message signature covers: the blob, whose
// digest the bundle must name.
func (a *bundleSig) messageContent(m *bundle.MessageSignature) (*Content, error) {
	sum := sha256.Sum256(a.blob)
	if len(m.Signature) == 0 {
		return nil, a.fail(CheckFormat, "the message signature is empty")
	}
	if d := m.MessageDigest; d != nil && d.Algorithm != bundle.SHA256 {
		return nil, &CheckError{Check: CheckFormat, Class: Unverifiable, Signature: a.name,
			Reason: fmt.Sprintf("the message digest is %s; only %s (SHA-256) is verified", d.Algorithm, bundle.SHA256)}
	} else if d != nil && !bytes.Equal(d.Digest, sum[:]) {
		return nil, a.fail(CheckIntegrity, "the bundle signs the digest sha256:%x, not the blob's (sha256:%x): it is the bundle of another file", []byte(d.Digest), sum[:])
	}
	return &Content{Payload: a.blob, Signed: a.blob, Signatures: [][]byte{m.Signature}, Stored: a.raw, Blob: true, payloadSHA256: &sum}, nil
}

func (a *bundleSig) Content() (*Content, error) {
	if _, err := a.bundle(); err != nil {
		return nil, err
	}
	return a.content, a.cErr
}

func (a *bundleSig) Certificate() (*x509.Certificate, []*x509.Certificate, error) {
	b, err := a.bundle()
	if err != nil {
		return nil, nil, err
	}
	return b.Certificates()
}

func (a *bundleSig) TlogEntries() ([]*rekor.LogEntry, error) {
	b, err := a.bundle()
	if err != nil {
		return nil, err
	}
	out := make([]*rekor.LogEntry, len(b.VerificationMaterial.TlogEntries))
	for i, e := range b.VerificationMaterial.TlogEntries {
		out[i] = e.LogEntry()
	}
	return out, nil
}

// PublicKeyHint is the key hint of a key-based bundle, if any.
func (a *bundleSig) PublicKeyHint() string {
	if b, err := a.bundle(); err == nil && b.VerificationMaterial.PublicKey != nil {
		return b.VerificationMaterial.PublicKey.Hint
	}
	return ""
}
