package sign

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// Media types and annotation keys of cosign's signature layout (the ones
// pkg/payload and pkg/oci define).
const (
	SimpleSigningMediaType = payload.SimpleSigningMediaType
	AnnotationSignature    = oci.AnnotationSignature
	AnnotationCertificate  = oci.AnnotationCertificate
	AnnotationChain        = oci.AnnotationChain
	AnnotationBundle       = oci.AnnotationBundle
	SignatureTagSuffix     = oci.SignatureSuffix
	AttestationTagSuffix   = oci.AttestationSuffix
)

// MaxSignatureLayers is the number of signature layers cosign reads; Attach
// refuses to grow a signature manifest beyond it.
const MaxSignatureLayers = oci.MaxSignatureLayers

// TargetRepository is where signatures of an image in repo are stored:
// repo itself, or the COSIGN_REPOSITORY override when set.
func TargetRepository(repo name.Repository, override string, opts ...name.Option) (name.Repository, error) {
	if override == "" {
		return repo, nil
	}
	r, err := name.NewRepository(override, opts...)
	if err != nil {
		return name.Repository{}, fmt.Errorf("COSIGN_REPOSITORY %q is not a repository reference (want registry/path): %w", override, err)
	}
	return r, nil
}

// annotations returns the annotations cosign puts on a signature layer.
func (s *Signature) annotations() map[string]string {
	ann := map[string]string{AnnotationSignature: base64.StdEncoding.EncodeToString(s.Signature)}
	if s.Certificate != nil {
		ann[AnnotationCertificate] = string(s.Certificate)
		ann[AnnotationChain] = string(s.Chain)
	}
	if s.Bundle != nil {
		ann[AnnotationBundle] = string(s.Bundle)
	}
	return ann
}

// AttachOptions tune Attach.
type AttachOptions struct {
	// Verifier, when set, is the signer's public key: an existing layer
	// with the same payload, the same other annotations and a signature
	// that verifies with it is a duplicate and nothing is pushed (cosign's
	// duplicate detection; randomized ECDSA signatures never repeat).
	Verifier crypto.PublicKey
	// TagPrefix is prepended to the signature tag (--attachment-tag-prefix).
	TagPrefix string
	// DockerMediaTypes writes a Docker schema 2 manifest and config instead
	// of OCI ones (cosign's COSIGN_DOCKER_MEDIA_TYPES=1).
	DockerMediaTypes bool
	// Remote are the registry client options (auth, transport, context).
	Remote []remote.Option
	// Blobs, when set, uploads the new payload and config blobs (e.g.
	// MonolithicBlobs); else go-containerregistry does.
	Blobs BlobWriter
}

// AttachResult says what Attach (or a BundleAttachment) did.
type AttachResult struct {
	Tag name.Tag
	// Referrer is the bundle referrer manifest (bundle layout; Tag is
	// then empty).
	Referrer  name.Digest
	Digest    v1.Hash // digest of the signature manifest now under Tag (or of Referrer)
	Layers    int     // signature layers in it
	Duplicate bool    // the same signature was already attached; nothing pushed
}

// Attach appends sig as a new layer of the signature image stored under
// the ".sig" tag of subject in repo (creating it if absent) and pushes it,
// laid out exactly as cosign v2 does: an OCI manifest over go-containerregistry's
// empty image whose config gets one history entry and diff_id per layer,
// the payload as an uncompressed layer of media type SimpleSigningMediaType
// carrying the signature (and certificate, chain, bundle) as annotations.
func Attach(repo name.Repository, subject v1.Hash, sig *Signature, o AttachOptions) (*AttachResult, error) {
	return attach(repo, subject, SignatureTagSuffix, SimpleSigningMediaType, sig.Payload, sig.annotations(), nil, o)
}

// AttestationMediaType is the layer media type of a cosign attestation.
const AttestationMediaType = payload.DSSEMediaType

// AnnotationPredicateType is the attestation layer's predicate type.
const AnnotationPredicateType = oci.AnnotationPredicateType

// AttachAttestation appends an attestation (sig.Payload is the DSSE
// envelope) as a new layer of the image under the ".att" tag of subject,
// laid out as cosign attest does: media type AttestationMediaType, an
// empty signature annotation, the predicate type, and the certificate,
// chain and bundle. With replace, earlier attestations of the same
// predicate type are dropped (cosign attest --replace).
func AttachAttestation(repo name.Repository, subject v1.Hash, sig *Signature, predicateType string, replace bool, o AttachOptions) (*AttachResult, error) {
	ann := sig.annotations()
	ann[AnnotationSignature] = ""
	ann[AnnotationPredicateType] = predicateType
	var drop func(v1.Descriptor) bool
	if replace {
		drop = func(d v1.Descriptor) bool { return d.Annotations[AnnotationPredicateType] == predicateType }
	}
	o.Verifier = nil // randomized signatures and fresh certificates never repeat
	return attach(repo, subject, AttestationTagSuffix, AttestationMediaType, sig.Payload, ann, drop, o)
}

func attach(repo name.Repository, subject v1.Hash, suffix, mediaType string, blob []byte, ann map[string]string, drop func(v1.Descriptor) bool, o AttachOptions) (*AttachResult, error) {
	return prepare(context.Background(), repo, subject, suffix, mediaType, blob, drop, o).commit(ann, o.Verifier)
}

// Attachment is a signature layer on its way to the registry. Preparing
// it reads the existing signature image and uploads the new layer's blobs
// (the payload and the new config), which needs only the payload, so it
// can run while the payload is being signed and logged; Commit then writes
// the manifest with the layer's annotations (signature, certificate,
// chain, bundle) in one request.
//
// The registry has no compare-and-swap for tags, so signers of the same
// image race: each reads the tag, appends its layer and writes the tag
// back, and the last writer would drop the others' layers. Commit
// therefore checks the tag just before writing (and merges onto what is
// there now if it moved), and reads it back after writing: if another
// writer replaced it, Commit merges again and retries, a bounded number of
// times with backoff.
type Attachment struct {
	// ctx is the context of PrepareAttach: an Attachment is one request in
	// flight, finished by Commit, which takes none.
	ctx       context.Context
	tag       name.Tag
	drop      func(v1.Descriptor) bool
	base      v1.Image
	baseHash  v1.Hash // digest of base as read from the tag; zero when the tag was absent
	m         *v1.Manifest
	layer     v1.Layer
	mediaType string
	blob      []byte
	config    v1.Hash // the config digest the uploaded config blob has
	o         AttachOptions
	ropts     []remote.Option // registry options for reading the signature image
	wopts     []remote.Option // and for writing it (with cond)
	cond      *condTransport  // makes the manifest PUT conditional on baseHash
	err       error
}

// maxAttachAttempts bounds how often Commit merges and writes again when
// other writers keep replacing the tag.
const maxAttachAttempts = 10

// PrepareAttach prepares attaching a signature over payload to subject (see
// Attach); Commit finishes it. Errors are reported by Commit.
func PrepareAttach(ctx context.Context, repo name.Repository, subject v1.Hash, payload []byte, o AttachOptions) *Attachment {
	return prepare(ctx, repo, subject, SignatureTagSuffix, SimpleSigningMediaType, payload, nil, o)
}

// Commit writes the signature manifest with sig's layer annotations. With
// o.Verifier (given to PrepareAttach or here), an identical signature
// already attached makes it a no-op (cosign's duplicate detection).
func (a *Attachment) Commit(sig *Signature, verifier crypto.PublicKey) (*AttachResult, error) {
	if verifier == nil {
		verifier = a.o.Verifier
	}
	return a.commit(sig.annotations(), verifier)
}

func prepare(ctx context.Context, repo name.Repository, subject v1.Hash, suffix, mediaType string, blob []byte, drop func(v1.Descriptor) bool, o AttachOptions) *Attachment {
	a := &Attachment{ctx: ctx, tag: oci.AttachmentTag(repo, o.TagPrefix, subject, suffix),
		drop: drop, mediaType: mediaType, blob: blob, o: o}
	a.err = a.load()
	return a
}

func (a *Attachment) load() error {
	ctx, tag, o := a.ctx, a.tag, a.o
	a.layer = static.NewLayer(a.blob, types.MediaType(a.mediaType))
	// The payload blob is new and needs nothing else: with a BlobWriter
	// it is uploaded while the existing signatures are read.
	var payloadDone chan error
	if o.Blobs != nil {
		payloadDone = make(chan error, 1)
		go func() {
			d, err := a.layer.Digest()
			if err == nil {
				err = o.Blobs.WriteBlob(ctx, tag.Context(), d, a.blob)
			}
			payloadDone <- err
		}()
	}
	err := a.loadBase()
	if payloadDone != nil {
		if perr := <-payloadDone; perr != nil && err == nil {
			err = fmt.Errorf("pushing signature to %s: %w", tag, perr)
		}
	}
	return err
}

// transporter is a BlobWriter that shares its authenticated transport.
type transporter interface {
	RepoTransport(ctx context.Context, repo name.Repository) (http.RoundTripper, error)
}

func (a *Attachment) loadBase() error {
	repo := a.tag.Context()
	a.cond = &condTransport{path: "/v2/" + repo.RepositoryStr() + "/manifests/" + a.tag.TagStr()}
	if t, ok := a.o.Blobs.(transporter); ok {
		// Read the existing signatures and write the manifest on the
		// connection the uploads use (one authentication for all).
		if rt, err := t.RepoTransport(a.ctx, repo); err == nil {
			a.ropts = []remote.Option{remote.WithContext(a.ctx), remote.WithTransport(rt)}
			a.cond.inner = rt
			a.wopts = []remote.Option{remote.WithContext(a.ctx), remote.WithTransport(a.cond)}
		}
	}
	if a.ropts == nil {
		a.ropts = a.o.Remote
		// The caller's own transport, if any, comes later and wins; the
		// write is then unconditional (and checked by reading it back).
		a.cond.inner = remote.DefaultTransport
		a.wopts = append([]remote.Option{remote.WithTransport(a.cond)}, a.o.Remote...)
	}
	if err := a.readBase(); err != nil {
		return err
	}
	return a.uploadBlobs(a.o.Blobs == nil)
}

// readBase reads the signature image now under the tag (or starts from the
// empty one) into base, baseHash and m, without the layers drop selects.
func (a *Attachment) readBase() error {
	tag, o := a.tag, a.o
	a.baseHash = v1.Hash{}
	base, err := remote.Image(tag, a.ropts...)
	if err != nil {
		if !oci.IsNotFound(err) {
			return fmt.Errorf("reading existing signatures %s: %w", tag, err)
		}
		base = emptySignatureImage(o.DockerMediaTypes)
	} else if a.baseHash, err = base.Digest(); err != nil {
		return fmt.Errorf("reading existing signatures %s: %w", tag, err)
	}
	m, err := base.Manifest()
	if err != nil {
		return fmt.Errorf("reading existing signatures %s: %w (the tag does not hold a signature manifest; delete it or sign into another repository with COSIGN_REPOSITORY)", tag, err)
	}
	if a.drop != nil {
		if base, err = dropLayers(base, m, a.drop, o.DockerMediaTypes); err != nil {
			return fmt.Errorf("replacing attestations in %s: %w", tag, err)
		}
		if m, err = base.Manifest(); err != nil {
			return err
		}
	}
	a.base, a.m = base, m
	return nil
}

// uploadBlobs uploads the config the new manifest will reference (it does
// not depend on the annotations) and, with withLayer, the payload layer.
func (a *Attachment) uploadBlobs(withLayer bool) error {
	tag, o := a.tag, a.o
	provisional, err := mutate.Append(a.base, mutate.Addendum{Layer: a.layer})
	if err != nil {
		return err
	}
	cfg, err := provisional.RawConfigFile()
	if err != nil {
		return err
	}
	if a.config, err = provisional.ConfigName(); err != nil {
		return err
	}
	cm, err := provisional.Manifest()
	if err != nil {
		return err
	}
	if o.Blobs != nil {
		if err := o.Blobs.WriteBlob(a.ctx, tag.Context(), a.config, cfg); err != nil {
			return fmt.Errorf("pushing signature to %s: %w", tag, err)
		}
		return nil
	}
	layers := []v1.Layer{static.NewLayer(cfg, cm.Config.MediaType)}
	if withLayer {
		layers = append(layers, a.layer)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	for i, l := range layers {
		wg.Go(func() { errs[i] = remote.WriteLayer(tag.Context(), l, o.Remote...) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pushing signature to %s: %w", tag, err)
	}
	return nil
}

func (a *Attachment) commit(ann map[string]string, verifier crypto.PublicKey) (*AttachResult, error) {
	if a.err != nil {
		return nil, a.err
	}
	for attempt := 1; ; attempt++ {
		// Merge onto the tag as it is now if it moved since it was read.
		if moved, err := a.tagMoved(); err != nil {
			return nil, err
		} else if moved {
			if err := a.rebase(); err != nil {
				return nil, err
			}
		}
		res, err := a.write(ann, verifier)
		var te *transport.Error
		switch {
		case errors.As(err, &te) && te.StatusCode == http.StatusPreconditionFailed:
			// The registry refused the write: the tag moved since it was
			// read. Merge again.
		case err != nil || res.Duplicate:
			return res, err
		default:
			// Read it back: a registry that ignores the condition may
			// have let another writer replace it with a version that
			// lacks this layer.
			kept, err := a.layerKept(res.Digest, ann)
			if err != nil {
				return nil, err
			}
			if kept {
				return res, nil
			}
		}
		if attempt == maxAttachAttempts {
			return nil, fmt.Errorf("pushing signature to %s: other signers replaced the tag %d times in a row, dropping this signature; sign again", a.tag, attempt)
		}
		if err := a.backoff(attempt); err != nil {
			return nil, err
		}
		if err := a.rebase(); err != nil {
			return nil, err
		}
	}
}

// write appends the layer to base and writes the manifest under the tag,
// unless verifier recognises an identical signature already there.
func (a *Attachment) write(ann map[string]string, verifier crypto.PublicKey) (*AttachResult, error) {
	tag, m, base := a.tag, a.m, a.base
	ld, err := a.layer.Digest()
	if err != nil {
		return nil, err
	}
	if verifier != nil {
		for _, l := range m.Layers {
			if l.Digest == ld && string(l.MediaType) == a.mediaType && sameExceptSignature(l.Annotations, ann) && verifiesWith(verifier, a.blob, l.Annotations) {
				d, err := base.Digest()
				if err != nil {
					return nil, err
				}
				return &AttachResult{Tag: tag, Digest: d, Layers: len(m.Layers), Duplicate: true}, nil
			}
		}
	}
	if len(m.Layers) >= MaxSignatureLayers {
		return nil, fmt.Errorf("%s already holds %d signatures, the most cosign reads; remove old ones (e.g. cosign clean) before signing again", tag, len(m.Layers))
	}
	img, err := mutate.Append(base, mutate.Addendum{Layer: a.layer, Annotations: ann})
	if err != nil {
		return nil, err
	}
	// Every blob is in the repository (the existing layers were read from
	// it, the new ones uploaded by load): write only the manifest, unless
	// the config somehow differs from the one uploaded.
	put := remote.Put
	if cn, err := img.ConfigName(); err != nil || cn != a.config {
		put = func(ref name.Reference, t remote.Taggable, opts ...remote.Option) error {
			return remote.Write(ref, img, opts...)
		}
	}
	a.cond.set(a.baseHash)
	if err := put(tag, img, a.wopts...); err != nil {
		return nil, fmt.Errorf("pushing signature to %s: %w", tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	return &AttachResult{Tag: tag, Digest: d, Layers: len(m.Layers) + 1}, nil
}

// tagMoved reports whether the tag no longer holds the image base was read
// from (another signer wrote it since).
func (a *Attachment) tagMoved() (bool, error) {
	desc, err := remote.Head(a.tag, a.ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return false, nil // deleted since (cosign clean): write ours
		}
		return false, fmt.Errorf("reading existing signatures %s: %w", a.tag, err)
	}
	return desc.Digest != a.baseHash, nil
}

// rebase reads the tag again and uploads the config of the merged image.
func (a *Attachment) rebase() error {
	if err := a.readBase(); err != nil {
		return err
	}
	return a.uploadBlobs(false)
}

// layerKept reports whether the tag, just written with the manifest
// written, still holds a layer with this payload and exactly these
// annotations (the signature is in them).
func (a *Attachment) layerKept(written v1.Hash, ann map[string]string) (bool, error) {
	if desc, err := remote.Head(a.tag, a.ropts...); err == nil && desc.Digest == written {
		return true, nil
	}
	ld, err := a.layer.Digest()
	if err != nil {
		return false, err
	}
	img, err := remote.Image(a.tag, a.ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("reading back signatures %s: %w", a.tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return false, fmt.Errorf("reading back signatures %s: %w", a.tag, err)
	}
	for _, l := range m.Layers {
		if l.Digest == ld && maps.Equal(l.Annotations, ann) {
			return true, nil
		}
	}
	return false, nil
}

// condTransport sends the manifest PUT of one tag with the condition that
// the tag still holds what the attachment was merged onto: If-Match with
// its digest (a manifest's entity tag, as GET sends it), or If-None-Match: *
// when there was no tag. A registry that honours it (Hallmark) refuses
// with 412 when another signer wrote the tag in between; others ignore it.
type condTransport struct {
	inner http.RoundTripper
	path  string // /v2/<repository>/manifests/<tag>

	mu   sync.Mutex
	base v1.Hash // zero: the tag did not exist
}

func (c *condTransport) set(base v1.Hash) {
	c.mu.Lock()
	c.base = base
	c.mu.Unlock()
}

func (c *condTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.URL.Path != c.path {
		return c.inner.RoundTrip(req)
	}
	c.mu.Lock()
	base := c.base
	c.mu.Unlock()
	req = req.Clone(req.Context())
	if base == (v1.Hash{}) {
		req.Header.Set("If-None-Match", "*")
	} else {
		req.Header.Set("If-Match", `"`+base.String()+`"`)
	}
	return c.inner.RoundTrip(req)
}

// backoff waits before attempt+1: 20 ms doubling per attempt, at most 1 s,
// with jitter so that racing signers spread out.
func (a *Attachment) backoff(attempt int) error {
	d := min(20*time.Millisecond<<(attempt-1), time.Second)
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-a.ctx.Done():
		return a.ctx.Err()
	case <-t.C:
		return nil
	}
}

// dropLayers rebuilds the signature image without the layers drop selects.
func dropLayers(base v1.Image, m *v1.Manifest, drop func(v1.Descriptor) bool, docker bool) (v1.Image, error) {
	layers, err := base.Layers()
	if err != nil {
		return nil, err
	}
	img := emptySignatureImage(docker)
	for i, l := range layers {
		if drop(m.Layers[i]) {
			continue
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: l, Annotations: m.Layers[i].Annotations, MediaType: m.Layers[i].MediaType}); err != nil {
			return nil, err
		}
	}
	return img, nil
}

// emptySignatureImage is the base cosign appends the first signature to.
func emptySignatureImage(docker bool) v1.Image {
	if docker {
		return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.DockerManifestSchema2), types.DockerConfigJSON)
	}
	return mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
}

func sameExceptSignature(a, b map[string]string) bool {
	a, b = maps.Clone(a), maps.Clone(b)
	delete(a, AnnotationSignature)
	delete(b, AnnotationSignature)
	return maps.Equal(a, b)
}

func verifiesWith(pub crypto.PublicKey, payload []byte, ann map[string]string) bool {
	sig, err := base64.StdEncoding.DecodeString(ann[AnnotationSignature])
	return err == nil && len(sig) > 0 && verify.VerifySignature(pub, payload, sig) == nil
}
