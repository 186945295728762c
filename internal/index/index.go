package index

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Artifact types that mark a referrer as a signature.
const (
	ArtifactTypeCosignSig = "application/vnd.dev.cosign.artifact.sig.v1+json"
	bundleTypePrefix      = "application/vnd.dev.sigstore.bundle"
	simpleSigningType     = "application/vnd.dev.cosign.simplesigning.v1+json"
	// maxSignatureBlob bounds what is read of one signature layer.
	maxSignatureBlob = 4 << 20
)

var sigTagRE = regexp.MustCompile(`^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.sig$`)

// Store is what the indexer needs of the metadata database.
type Store interface {
	RecordSignatures(ctx context.Context, sigs []meta.Signature) (int, error)
}

// Blobs opens stored blobs.
type Blobs interface {
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
}

// TrustedKey is a public key whose signatures count as verified.
type TrustedKey struct {
	Key         crypto.PublicKey
	Fingerprint string
}

// Config is the indexer's trust configuration.
type Config struct {
	Keys []TrustedKey
}

// Indexer records signatures as manifests are pushed.
type Indexer struct {
	store Store
	blobs Blobs
	cfg   Config
	log   *slog.Logger
}

// New returns an indexer.
func New(store Store, blobs Blobs, log *slog.Logger, cfg Config) *Indexer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Indexer{store: store, blobs: blobs, cfg: cfg, log: log}
}

// LoadTrustedKey parses a PEM public key for Config.Keys.
func LoadTrustedKey(pemBytes []byte) (TrustedKey, error) {
	pub, err := verify.ParsePublicKey(pemBytes)
	if err != nil {
		return TrustedKey{}, err
	}
	fp, err := verify.Fingerprint(pub)
	if err != nil {
		return TrustedKey{}, err
	}
	return TrustedKey{Key: pub, Fingerprint: fp}, nil
}

// ManifestPushed implements registry.EventSink.
func (ix *Indexer) ManifestPushed(ctx context.Context, m *meta.Manifest, tags []string) {
	defer func() {
		if r := recover(); r != nil {
			ix.log.Error("signature indexer panicked; manifest stored but not indexed", "repository", m.Repository, "digest", m.Digest, "panic", fmt.Sprint(r))
		}
	}()
	sigs := ix.Signatures(ctx, m, tags)
	if len(sigs) == 0 {
		return
	}
	n, err := ix.store.RecordSignatures(ctx, sigs)
	if err != nil {
		ix.log.Error("recording signatures", "repository", m.Repository, "digest", m.Digest, "err", err)
		return
	}
	if n > 0 {
		ix.log.Info("signatures indexed", "repository", m.Repository, "subject", sigs[0].Subject, "new", n)
	}
}

// ManifestDeleted implements registry.EventSink. Signatures stay in the
// index as history of what was signed.
func (ix *Indexer) ManifestDeleted(context.Context, string, string) {}

// subjectOf says whether m is a signature manifest and for which image.
func subjectOf(m *meta.Manifest, tags []string) (digest.Digest, bool) {
	for _, t := range tags {
		if g := sigTagRE.FindStringSubmatch(t); g != nil {
			return digest.Digest(g[1] + ":" + g[2]), true
		}
	}
	if m.Subject != "" && (m.ArtifactType == ArtifactTypeCosignSig || strings.HasPrefix(m.ArtifactType, bundleTypePrefix)) {
		return m.Subject, true
	}
	return "", false
}

// Signatures parses the signatures in m (none if m is not a signature
// manifest). Every problem becomes an invalid record, never an error.
func (ix *Indexer) Signatures(ctx context.Context, m *meta.Manifest, tags []string) []meta.Signature {
	subject, ok := subjectOf(m, tags)
	if !ok {
		return nil
	}
	base := meta.Signature{Repository: m.Repository, Subject: subject, Manifest: m.Digest, Kind: "cosign"}
	if strings.HasPrefix(m.ArtifactType, bundleTypePrefix) {
		base.Kind = "sigstore-bundle"
	}
	invalid := func(layer digest.Digest, key, detail string) meta.Signature {
		s := base
		s.Layer, s.Key, s.Status, s.StatusDetail = layer, key, meta.StatusInvalid, detail
		return s
	}
	pm, err := oci.ParseManifest(m.MediaType, m.Payload)
	if err != nil {
		return []meta.Signature{invalid("", "manifest:"+m.Digest.String(), err.Error())}
	}
	if oci.IsIndex(pm.MediaType) || len(pm.Layers) == 0 {
		return []meta.Signature{invalid("", "manifest:"+m.Digest.String(), "signature manifest has no signature layers")}
	}
	var out []meta.Signature
	for i, l := range pm.Layers {
		if i >= 1000 {
			out = append(out, invalid("", "manifest:"+m.Digest.String()+":overflow", "more than 1000 signature layers; the rest are ignored"))
			break
		}
		s := base
		s.Layer = l.Digest
		data, err := ix.readBlob(ctx, l)
		if err != nil {
			out = append(out, invalid(l.Digest, "layer:"+l.Digest.String()+":"+m.Digest.String(), err.Error()))
			continue
		}
		if base.Kind == "sigstore-bundle" || strings.HasPrefix(l.MediaType, bundleTypePrefix) {
			s.Kind = "sigstore-bundle"
			ix.bundle(&s, data)
		} else {
			ix.simpleSigning(&s, l, data)
		}
		out = append(out, s)
	}
	return out
}

func (ix *Indexer) readBlob(ctx context.Context, l oci.Descriptor) ([]byte, error) {
	if l.Size > maxSignatureBlob {
		return nil, fmt.Errorf("signature layer is %d bytes; the limit is %d", l.Size, maxSignatureBlob)
	}
	rc, _, err := ix.blobs.Open(ctx, l.Digest)
	if err != nil {
		return nil, fmt.Errorf("signature layer %s is not in the registry: %v", l.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxSignatureBlob+1))
	if err != nil {
		return nil, err
	}
	if l.Digest.Algorithm().FromBytes(b) != l.Digest {
		return nil, fmt.Errorf("signature layer content does not match its digest %s", l.Digest)
	}
	return b, nil
}

func dedupeKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// simpleSigning fills s from a cosign simple-signing layer.
func (ix *Indexer) simpleSigning(s *meta.Signature, l oci.Descriptor, payload []byte) {
	sigB64 := l.Annotations[verify.AnnotationSignature]
	certPEM := l.Annotations[verify.AnnotationCertificate]
	s.Key = dedupeKey(l.Digest.String(), sigB64, certPEM)
	s.PayloadType = l.MediaType
	setStatus := func(status, detail string) { s.Status, s.StatusDetail = status, detail }

	claims, err := verify.ParseClaims(payload)
	if err != nil {
		setStatus(meta.StatusInvalid, err.Error())
		return
	}
	s.Annotations = stringAnnotations(claims.Optional)
	if bundle := l.Annotations[verify.AnnotationBundle]; bundle != "" {
		var rb struct {
			Payload struct {
				LogIndex *int64 `json:"logIndex"`
			} `json:"Payload"`
		}
		if json.Unmarshal([]byte(bundle), &rb) == nil {
			s.LogIndex = rb.Payload.LogIndex
		}
	}
	if claims.Critical.Image.DockerManifestDigest != s.Subject.String() {
		setStatus(meta.StatusInvalid, fmt.Sprintf("payload is for %q, not for %s", claims.Critical.Image.DockerManifestDigest, s.Subject))
		return
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		setStatus(meta.StatusInvalid, "missing or malformed "+verify.AnnotationSignature+" annotation")
		return
	}
	if certPEM != "" {
		cert, err := parseCert(certPEM)
		if err != nil {
			setStatus(meta.StatusInvalid, "certificate: "+err.Error())
			return
		}
		s.Signer, s.CertIssuer = certIdentity(cert)
		if err := verify.VerifySignature(cert.PublicKey, payload, sig); err != nil {
			setStatus(meta.StatusInvalid, "signature does not verify with the certificate's key")
			return
		}
		setStatus(meta.StatusUnverified, "signature matches its certificate; no trusted certificate authority is configured")
		return
	}
	for _, k := range ix.cfg.Keys {
		if verify.VerifySignature(k.Key, payload, sig) == nil {
			s.Signer = k.Fingerprint
			setStatus(meta.StatusVerified, "verified with trusted key "+k.Fingerprint)
			return
		}
	}
	setStatus(meta.StatusUnverified, "signed with a key the server does not trust")
}

func stringAnnotations(opt map[string]any) map[string]string {
	out := make(map[string]string, len(opt))
	for k, v := range opt {
		if s, ok := v.(string); ok {
			out[k] = s
		} else if b, err := json.Marshal(v); err == nil {
			out[k] = string(b)
		}
	}
	return out
}

func parseCert(p string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// oidIssuer is Fulcio's OIDC issuer extension (raw string, v1).
var oidIssuer = []int{1, 3, 6, 1, 4, 1, 57264, 1, 1}

// certIdentity returns the first subject alternative name and the OIDC
// issuer recorded in a Fulcio-style certificate.
func certIdentity(c *x509.Certificate) (subject, issuer string) {
	switch {
	case len(c.URIs) > 0:
		subject = c.URIs[0].String()
	case len(c.EmailAddresses) > 0:
		subject = c.EmailAddresses[0]
	case len(c.DNSNames) > 0:
		subject = c.DNSNames[0]
	}
	for _, e := range c.Extensions {
		if e.Id.Equal(oidIssuer) {
			issuer = string(e.Value)
		}
	}
	return subject, issuer
}
