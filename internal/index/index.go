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
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	sspayload "github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// maxSignatureBlob bounds what is read of one signature layer.
const maxSignatureBlob = 4 << 20

// Store is what the indexer needs of the metadata database.
type Store interface {
	RecordSignatures(ctx context.Context, sigs []meta.Signature) (int, error)
}

// knownKeys is an optional Store ability: which of keys are already
// recorded in repo. With it, re-pushed signature manifests (cosign appends
// a layer and pushes the whole manifest again) cost only their new layers.
type knownKeys interface {
	KnownSignatureKeys(ctx context.Context, repo string, keys []string) (map[string]bool, error)
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

// KeylessTrust is what keyless signatures are verified against: the
// server's own CA (its chain and CT log key) and transparency log key,
// each trusted within its window.
type KeylessTrust struct {
	CAs       []root.CA
	CTLogKeys map[string]root.LogKey // hex log ID -> key
	TlogKeys  map[string]root.LogKey // hex log ID -> key
}

// Indexer records signatures as manifests are pushed.
type Indexer struct {
	store   Store
	blobs   Blobs
	cfg     Config
	log     *slog.Logger
	keyless atomic.Pointer[KeylessTrust]
}

// SetKeylessTrust makes keyless signatures verifiable: a signature whose
// certificate chains to t's CA (with an SCT of its CT log) and whose log
// bundle's SET verifies with t's log key is recorded as verified. Until it
// is called, keyless signatures are recorded as unverified.
func (ix *Indexer) SetKeylessTrust(t KeylessTrust) { ix.keyless.Store(&t) }

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
	var recorded func(keys []string) map[string]bool
	if kk, ok := ix.store.(knownKeys); ok {
		recorded = func(keys []string) map[string]bool {
			known, err := kk.KnownSignatureKeys(ctx, m.Repository, keys)
			if err != nil {
				ix.log.Warn("looking up indexed signatures; indexing every layer", "repository", m.Repository, "err", err)
				return nil
			}
			return known
		}
	}
	sigs := ix.signatures(ctx, m, tags, recorded)
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

// Signatures parses the signatures in m (none if m is not a signature
// manifest). Every problem becomes an invalid record, never an error.
func (ix *Indexer) Signatures(ctx context.Context, m *meta.Manifest, tags []string) []meta.Signature {
	return ix.signatures(ctx, m, tags, nil)
}

// layerKey is the dedupe key of one signature layer.
func layerKey(l oci.Descriptor, bundleKind bool) string {
	if bundleKind || strings.HasPrefix(l.MediaType, oci.BundleMediaTypePrefix) {
		return dedupeKey(l.Digest.String())
	}
	sigB64, certPEM := l.Annotations[oci.AnnotationSignature], l.Annotations[oci.AnnotationCertificate]
	if b := l.Annotations[oci.AnnotationBundle]; b != "" {
		// A re-pushed layer with another log bundle (e.g. a forged SET) is
		// another record, judged on its own.
		return dedupeKey(l.Digest.String(), sigB64, certPEM, b)
	}
	return dedupeKey(l.Digest.String(), sigB64, certPEM)
}

// signatures parses the signature layers of m. With recorded, the layers
// whose dedupe keys it reports as already recorded are skipped (it is
// asked once, with the keys of every layer read).
func (ix *Indexer) signatures(ctx context.Context, m *meta.Manifest, tags []string, recorded func(keys []string) map[string]bool) []meta.Signature {
	subject, ok := m.SignatureSubject(tags)
	if !ok {
		return nil
	}
	base := meta.Signature{Repository: m.Repository, Subject: subject, Manifest: m.Digest, Kind: "cosign"}
	if strings.HasPrefix(m.ArtifactType, oci.BundleMediaTypePrefix) {
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
	var keys []string
	var known map[string]bool
	if recorded != nil {
		for _, l := range pm.Layers[:min(len(pm.Layers), 1000)] {
			keys = append(keys, layerKey(l, base.Kind == "sigstore-bundle"))
		}
		known = recorded(keys)
	}
	var out []meta.Signature
	for i, l := range pm.Layers {
		if i >= 1000 {
			out = append(out, invalid("", "manifest:"+m.Digest.String()+":overflow", "more than 1000 signature layers; the rest are ignored"))
			break
		}
		if known != nil && known[keys[i]] {
			continue
		}
		s := base
		s.Layer = l.Digest
		data, err := ix.readBlob(ctx, l)
		if err != nil {
			out = append(out, invalid(l.Digest, "layer:"+l.Digest.String()+":"+m.Digest.String(), err.Error()))
			continue
		}
		if base.Kind == "sigstore-bundle" || strings.HasPrefix(l.MediaType, oci.BundleMediaTypePrefix) {
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
	sigB64 := l.Annotations[oci.AnnotationSignature]
	certPEM := l.Annotations[oci.AnnotationCertificate]
	s.Key = layerKey(l, false)
	s.PayloadType = l.MediaType
	setStatus := func(status, detail string) { s.Status, s.StatusDetail = status, detail }

	claims, err := sspayload.ParseLenient(payload)
	if err != nil {
		setStatus(meta.StatusInvalid, err.Error())
		return
	}
	s.Annotations = sspayload.Annotations(claims.Optional)
	if bundle := l.Annotations[oci.AnnotationBundle]; bundle != "" {
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
		setStatus(meta.StatusInvalid, "missing or malformed "+oci.AnnotationSignature+" annotation")
		return
	}
	if certPEM != "" {
		cert, err := parseCert(certPEM)
		if err != nil {
			setStatus(meta.StatusInvalid, "certificate: "+err.Error())
			return
		}
		s.Signer, s.CertIssuer = fulcio.Identity(cert)
		s.CertExtensions = fulcio.Values(cert)
		if err := verify.VerifySignature(cert.PublicKey, payload, sig); err != nil {
			setStatus(meta.StatusInvalid, "signature does not verify with the certificate's key")
			return
		}
		t := ix.keyless.Load()
		if t == nil {
			setStatus(meta.StatusUnverified, "signature matches its certificate; no trusted certificate authority is configured")
			return
		}
		layer := verify.Layer{Digest: l.Digest.String(), MediaType: l.MediaType, Payload: payload, Annotations: l.Annotations}
		_, err = verify.VerifyLayer(layer, s.Subject.String(), t.options())
		setStatus(keylessStatus(err, s.LogIndex))
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

func parseCert(p string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// options verifies keyless signatures against the server's own trust,
// without selecting an identity and without the claims (checked apart).
func (t *KeylessTrust) options() verify.Options {
	return verify.Options{SkipClaims: true, TlogKeys: t.TlogKeys, Cert: &verify.CertOptions{CAs: t.CAs,
		CTLogKeys: t.CTLogKeys, IgnoreSCT: true, AnyIdentity: true}}
}

// keylessStatus turns the outcome of verifying a keyless signature
// against the server's own CA and log into a status: verified; invalid when
// something the server's services vouched for does not hold (a bad SCT or
// SET, a log entry for another signature, a certificate not valid at the
// logged time); unverified when the server cannot vouch (another CA,
// another log, not logged).
func keylessStatus(err error, logIndex *int64) (string, string) {
	if err == nil {
		detail := "certificate issued by this server's CA; "
		if logIndex != nil {
			detail += fmt.Sprintf("transparency log entry %d verified (SET)", *logIndex)
		} else {
			detail += "transparency log entry verified (SET)"
		}
		return meta.StatusVerified, detail
	}
	var ce *verify.CheckError
	if !errors.As(err, &ce) {
		return meta.StatusInvalid, err.Error()
	}
	switch {
	case ce.Check == verify.CheckCertificate:
		return meta.StatusUnverified, "certificate is not issued by this server's CA: " + ce.Reason
	case errors.Is(err, verify.ErrNoBundle):
		return meta.StatusUnverified, "certificate issued by this server's CA, but the signature carries no transparency log bundle (signed with --tlog-upload=false)"
	case errors.Is(err, verify.ErrUnknownLog):
		return meta.StatusUnverified, "logged in a transparency log this server does not know: " + ce.Reason
	}
	return meta.StatusInvalid, ce.Check + ": " + ce.Reason
}
