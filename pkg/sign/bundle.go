package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// SigstoreBundle returns s as a sigstore bundle v0.3, as sigstore-go makes
// it for cosign v3: the leaf certificate (keyless) or, for a key, the hint
// of pub (the standard base64 SHA-256 of its PKIX DER); the log entry,
// when s was logged; and the DSSE envelope of a DSSE signature, or else
// the message signature over s.Payload (sign-blob).
func (s *Signature) SigstoreBundle(pub crypto.PublicKey) ([]byte, error) {
	b := &bundle.Bundle{MediaType: oci.BundleMediaTypeV03}
	vm := &b.VerificationMaterial
	if s.Certificate != nil {
		block, _ := pem.Decode(s.Certificate)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, errors.New("the signing certificate is not PEM")
		}
		vm.Certificate = &bundle.Certificate{RawBytes: block.Bytes}
	} else {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("the signing key: %w", err)
		}
		sum := sha256.Sum256(der)
		vm.PublicKey = &bundle.PublicKeyIdentifier{Hint: base64.StdEncoding.EncodeToString(sum[:])}
	}
	if s.Entry != nil {
		e, err := bundle.EntryOf(s.Entry)
		if err != nil {
			return nil, fmt.Errorf("the log entry: %w", err)
		}
		vm.TlogEntries = []bundle.TlogEntry{e}
	}
	if s.RawSignature != nil {
		env, err := payload.ParseEnvelope(s.Payload)
		if err != nil {
			return nil, err
		}
		body, err := env.DecodePayload()
		if err != nil {
			return nil, err
		}
		b.DSSEEnvelope = &bundle.Envelope{Payload: body, PayloadType: env.PayloadType, Signatures: []bundle.EnvelopeSignature{{Sig: s.RawSignature}}}
	} else {
		sum := sha256.Sum256(s.Payload)
		b.MessageSignature = &bundle.MessageSignature{MessageDigest: &bundle.HashOutput{Algorithm: bundle.SHA256, Digest: sum[:]}, Signature: s.Signature}
	}
	return b.Bytes()
}

// PublicKeyOf is the public key of a signer that has one (KeySigner,
// KeylessSigner), for SigstoreBundle's key hint; else nil.
func PublicKeyOf(s Signer) crypto.PublicKey {
	if k, ok := s.(interface{ PublicKey() crypto.PublicKey }); ok {
		return k.PublicKey()
	}
	return nil
}

// emptyJSON is the config blob of a bundle referrer ("{}", the OCI empty
// descriptor's content).
var emptyJSON = []byte("{}")

// BundleAttachment is a sigstore bundle on its way to the registry as an
// OCI 1.1 referrer of an image, laid out exactly as cosign v3 writes it
// (WriteAttestationNewBundleFormat): an image manifest whose artifactType
// and config artifactType are the bundle media type, whose config is the
// empty descriptor ("{}"), whose one layer is the bundle, annotated with
// the content kind, the predicate type and the creation time, with the
// image as subject, pushed by digest. On a registry without the referrers
// API, go-containerregistry's push also adds it to the referrers tag
// schema's index ("<alg>-<hex>"), as cosign's does. Preparing reads the
// image's descriptor and uploads the config blob, which needs nothing
// signed, so it runs while the bundle is being signed.
type BundleAttachment struct {
	ctx     context.Context
	repo    name.Repository // where the referrer is stored
	subject name.Digest
	o       AttachOptions
	opts    []remote.Option // registry options for the referrer's repository

	desc *v1.Descriptor // the subject's
	err  error
}

// PrepareBundle starts attaching a bundle to subject in repo (repo is
// subject's repository, or the COSIGN_REPOSITORY override); Commit
// finishes it. Errors are reported by Commit.
func PrepareBundle(ctx context.Context, repo name.Repository, subject name.Digest, o AttachOptions) *BundleAttachment {
	a := &BundleAttachment{ctx: ctx, repo: repo, subject: subject, o: o, opts: o.Remote}
	subjectOpts := o.Remote
	if t, ok := o.Blobs.(transporter); ok {
		// One authentication for the uploads, the push and (when it is
		// the same repository) reading the image.
		if rt, err := t.RepoTransport(ctx, repo); err == nil {
			a.opts = []remote.Option{remote.WithContext(ctx), remote.WithTransport(rt)}
			if subject.Context().Name() == repo.Name() {
				subjectOpts = a.opts
			}
		}
	}
	var wg sync.WaitGroup
	var headErr, cfgErr error
	wg.Go(func() {
		if a.desc, headErr = remote.Head(subject, append([]remote.Option{remote.WithContext(ctx)}, subjectOpts...)...); headErr != nil {
			if oci.IsNotFound(headErr) {
				headErr = fmt.Errorf("%w: %s", oci.ErrImageNotFound, subject)
			}
			headErr = fmt.Errorf("reading the image %s: %w", subject, headErr)
		}
	})
	wg.Go(func() { cfgErr = a.writeBlob(emptyJSON, types.OCIConfigJSON) })
	wg.Wait()
	a.err = errors.Join(headErr, cfgErr)
	return a
}

// writeBlob uploads one blob of the referrer to its repository.
func (a *BundleAttachment) writeBlob(data []byte, mt types.MediaType) error {
	l := static.NewLayer(data, mt)
	var err error
	if a.o.Blobs != nil {
		var d v1.Hash
		if d, err = l.Digest(); err == nil {
			err = a.o.Blobs.WriteBlob(a.ctx, a.repo, d, data)
		}
	} else {
		err = remote.WriteLayer(a.repo, l, append([]remote.Option{remote.WithContext(a.ctx)}, a.o.Remote...)...)
	}
	if err != nil {
		return fmt.Errorf("pushing the bundle to %s: %w", a.repo, err)
	}
	return nil
}

// referrerManifest is an image manifest with the OCI 1.1 artifactType
// field (go-containerregistry's v1.Manifest lacks it), serialized as
// cosign v3 serializes its referrer manifests.
type referrerManifest struct {
	v1.Manifest
	ArtifactType string `json:"artifactType,omitempty"`
}

func (r referrerManifest) RawManifest() ([]byte, error)        { return json.Marshal(r) }
func (r referrerManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// Commit uploads the bundle and pushes its referrer manifest, annotated
// with predicateType, created at now.
func (a *BundleAttachment) Commit(bundleJSON []byte, predicateType string, now time.Time) (*AttachResult, error) {
	if a.err != nil {
		return nil, a.err
	}
	if err := a.writeBlob(bundleJSON, oci.BundleMediaTypeV03); err != nil {
		return nil, err
	}
	cfg, _, _ := v1.SHA256(bytes.NewReader(emptyJSON))
	layer, _, _ := v1.SHA256(bytes.NewReader(bundleJSON))
	m := referrerManifest{Manifest: v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: oci.MediaTypeOCIEmptyJSON, ArtifactType: oci.BundleMediaTypeV03,
			Digest: cfg, Size: int64(len(emptyJSON))},
		Layers: []v1.Descriptor{{MediaType: oci.BundleMediaTypeV03, Digest: layer, Size: int64(len(bundleJSON))}},
		Annotations: map[string]string{
			oci.AnnotationCreated:             now.UTC().Format(time.RFC3339),
			oci.AnnotationBundleContent:       oci.BundleContentDSSE,
			oci.AnnotationBundlePredicateType: predicateType,
		},
		Subject: &v1.Descriptor{MediaType: a.desc.MediaType, Digest: a.desc.Digest, Size: a.desc.Size},
	}, ArtifactType: oci.BundleMediaTypeV03}
	raw, err := m.RawManifest()
	if err != nil {
		return nil, err
	}
	d, _, _ := v1.SHA256(bytes.NewReader(raw))
	ref := a.repo.Digest(d.String())
	if err := remote.Put(ref, m, a.opts...); err != nil {
		return nil, fmt.Errorf("pushing the bundle referrer to %s: %w", a.repo, err)
	}
	return &AttachResult{Referrer: ref, Digest: d, Layers: 1}, nil
}
