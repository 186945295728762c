package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// maxSignatureBlob bounds what is read of one signature layer.
const maxSignatureBlob = 4 << 20

// Store is what the indexer needs of the metadata database.
type Store interface {
	RecordSignatures(ctx context.Context, sigs []meta.Signature) (int, error)
	// BlobSize tells whether repo has blob d: a layer is read only then.
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
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

// Config is what the indexer verifies signatures against: the trusted
// roots (the one the server publishes: its CA, CT log and transparency
// log) and the --trusted-key keys. A signature is verified when they cover
// it and every check passes, the SCT and the log entry included.
type Config struct {
	Roots []*root.Material
	Keys  []verify.Key
}

// Indexer records signatures as manifests are pushed.
type Indexer struct {
	store Store
	blobs Blobs
	log   *slog.Logger
	trust *verify.Trust
}

// New returns an indexer.
func New(store Store, blobs Blobs, log *slog.Logger, cfg Config) *Indexer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Indexer{store: store, blobs: blobs, log: log, trust: verify.NewTrust(cfg.Roots, cfg.Keys...)}
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

// ManifestDeleted implements registry.EventSink. The store already did
// what a delete means for the index, in the delete's transaction: the
// signatures the deleted manifests carried, and those of a deleted image,
// stay as history of what was signed but are marked deleted, so the
// provenance API no longer lists or finds them; pushed again, they are
// listed again. The transparency log keeps every entry.
func (ix *Indexer) ManifestDeleted(context.Context, string, string) {}

// Signatures parses the signatures in m (none if m is not a signature
// manifest). Every problem becomes an invalid record, never an error.
func (ix *Indexer) Signatures(ctx context.Context, m *meta.Manifest, tags []string) []meta.Signature {
	return ix.signatures(ctx, m, tags, nil)
}

// layerKey is the dedupe key of one signature layer.
func layerKey(l oci.Descriptor, bundleKind bool) string {
	if bundleKind || oci.IsBundleType(l.MediaType) {
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
	base := meta.Signature{Repository: m.Repository, Subject: subject, Manifest: m.Digest, Kind: verify.KindSimpleSigning}
	if oci.IsBundleType(m.ArtifactType) {
		base.Kind = verify.KindBundle
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
			keys = append(keys, layerKey(l, base.Kind == verify.KindBundle))
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
		data, err := ix.readBlob(ctx, m.Repository, l)
		if err != nil {
			out = append(out, invalid(l.Digest, "layer:"+l.Digest.String()+":"+m.Digest.String(), err.Error()))
			continue
		}
		ix.record(ctx, &s, l, data)
		out = append(out, s)
	}
	return out
}

// readBlob reads layer l of a manifest of repo. The layer must be repo's:
// the registry lets a manifest name layers the repository lacks (foreign
// layers; any with --sparse-manifests), and the blob store, shared by all
// repositories, would otherwise hand out another repository's content.
func (ix *Indexer) readBlob(ctx context.Context, repo string, l oci.Descriptor) ([]byte, error) {
	if l.Size > maxSignatureBlob {
		return nil, fmt.Errorf("signature layer is %d bytes; the limit is %d", l.Size, maxSignatureBlob)
	}
	if _, err := ix.store.BlobSize(ctx, repo, l.Digest); err != nil {
		return nil, fmt.Errorf("signature layer %s is not in repository %s: %v", l.Digest, repo, err)
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

// record fills s from one stored signature layer: what the signature says
// about itself, and the outcome of verifying it, once, against the
// indexer's trust.
func (ix *Indexer) record(ctx context.Context, s *meta.Signature, l oci.Descriptor, data []byte) {
	var signed verify.Signed
	if s.Kind == verify.KindBundle || oci.IsBundleType(l.MediaType) {
		s.Kind = verify.KindBundle
		s.Key = layerKey(l, true)
		signed = verify.BundleSignature(data, l.Digest.String())
	} else {
		s.Key = layerKey(l, false)
		s.PayloadType = l.MediaType
		signed = verify.LayerSignature(verify.Layer{Digest: l.Digest.String(), MediaType: l.MediaType, Payload: data, Annotations: l.Annotations})
	}
	d := verify.Describe(signed, s.Subject.String())
	s.Annotations, s.LogIndex = d.Annotations, d.LogIndex
	if d.PayloadType != "" {
		s.PayloadType = d.PayloadType
	}
	if d.Certificate != nil {
		s.Signer, s.CertIssuer = fulcio.Identity(d.Certificate)
		s.CertExtensions = fulcio.Values(d.Certificate)
	} else if d.KeyHint != "" {
		s.Signer = "SHA256:" + d.KeyHint
	}
	v, err := verify.Verify(ctx, signed, ix.trust, verify.Policy{Subject: s.Subject.String(),
		// The index records the identity rather than selecting one, and
		// trusts --trusted-key signatures made without a log.
		WithoutIdentitiesUnsafe: true, IgnoreTlogForKeysUnsafe: true})
	if v != nil && v.Key != "" {
		s.Signer = v.Key
	}
	s.Status, s.StatusDetail = status(v, err)
}

// status turns the outcome of Verify into the index's status: verified;
// invalid when the signature is broken (a bad signature, certificate, SCT
// or log entry, a payload for another image); unverified when the
// server's trust does not cover it (another key, CA or log, not logged).
// Until projects have trust policies nothing the policy refuses reaches
// here; it would be unverified.
func status(v *verify.Verified, err error) (string, string) {
	if err == nil {
		if v.Key != "" {
			return meta.StatusVerified, "verified with trusted key " + v.Key
		}
		detail := "certificate issued by this server's CA; transparency log entry verified (SET)"
		if e := v.LogEntry; e != nil {
			detail = fmt.Sprintf("certificate issued by this server's CA; transparency log entry %d verified (SET)", e.LogIndex)
		}
		return meta.StatusVerified, detail
	}
	var ce *verify.CheckError
	if !errors.As(err, &ce) {
		return meta.StatusInvalid, err.Error()
	}
	if ce.Class == verify.Invalid {
		return meta.StatusInvalid, ce.Check + ": " + ce.Reason
	}
	switch {
	case ce.Check == verify.CheckSignature:
		return meta.StatusUnverified, "signed with a key the server does not trust"
	case ce.Check == verify.CheckCertificate:
		return meta.StatusUnverified, "certificate is not issued by this server's CA: " + ce.Reason
	case errors.Is(err, verify.ErrNoBundle):
		return meta.StatusUnverified, "certificate issued by this server's CA, but the signature carries no transparency log bundle (signed with --tlog-upload=false)"
	case errors.Is(err, verify.ErrUnknownLog):
		return meta.StatusUnverified, "logged in a transparency log this server does not know: " + ce.Reason
	}
	return meta.StatusUnverified, ce.Check + ": " + ce.Reason
}
