package verify

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
)

// Image-level errors, mapped to cosign's exit codes by the CLI (10 and 12;
// ErrImageNotFound is 11).
var (
	ErrNoSignatures = errors.New("no signatures found")
	ErrNoMatching   = errors.New("no matching signatures")
)

// ImageResult is the outcome of verifying one image.
type ImageResult struct {
	Reference name.Reference
	Digest    v1.Hash
	// SignatureTag is where the signatures were read.
	SignatureTag name.Tag
	// Verified are the signatures that passed, in layer order.
	Verified []*Verified
	// Failed are the errors (*CheckError) of the other signatures.
	Failed []error
	// Legacy and Bundles say what was found and verified in each layout:
	// the layers under SignatureTag, and the sigstore bundle referrers.
	Legacy, Bundles LayoutCount

	// declared are the predicate types the layers (their annotation) and
	// the bundle referrers (theirs) declare, "" for none: Attestations
	// counts only those that may be of the type asked for.
	declaredLegacy, declaredBundles []string
}

// LayoutCount is what one layout held for an image.
type LayoutCount struct {
	Read     bool // the layout was read (Target.Layout selected it)
	Found    int  // signatures (layers, bundles) found, readable or not
	Verified int  // of which passed every check
}

// Layout selects the stored forms of an image's signatures that are read.
type Layout int

const (
	// LayoutAll reads both layouts: cosign's legacy ".sig" (".att") tag
	// and the sigstore bundle referrers.
	LayoutAll Layout = iota
	// LayoutLegacy reads only the legacy tag.
	LayoutLegacy
	// LayoutBundle reads only the sigstore bundle referrers.
	LayoutBundle
)

func (l Layout) legacy() bool  { return l != LayoutBundle }
func (l Layout) bundles() bool { return l != LayoutLegacy }

// Registry reads an image's signatures from where they are stored;
// oci.Client is the one that talks to OCI registries.
type Registry interface {
	// Resolve returns the manifest digest a reference points at; a
	// missing tag is an error wrapping oci.ErrImageNotFound.
	Resolve(ctx context.Context, ref name.Reference) (v1.Hash, error)
	// SignatureManifest reads the manifest under a signature or
	// attestation tag: nil, nil when the tag does not exist.
	SignatureManifest(ctx context.Context, tag name.Tag) (*oci.SignatureManifest, error)
	// SignatureLayers reads the payload of every layer of a signature
	// manifest.
	SignatureLayers(ctx context.Context, repo name.Repository, sm *oci.SignatureManifest) []oci.SignatureLayer
	// BundleReferrers reads the sigstore bundles referring to a digest.
	BundleReferrers(ctx context.Context, repo name.Repository, d v1.Hash) ([]oci.ReferrerBundle, error)
}

// Target says where an image's signatures live.
type Target struct {
	Image name.Reference
	// SignatureRepo overrides where the .sig tag is read (COSIGN_REPOSITORY).
	SignatureRepo *name.Repository
	// TagPrefix is prepended to the signature tag (cosign's
	// --attachment-tag-prefix).
	TagPrefix string
	// Digest, when set, is the already resolved digest of Image.
	Digest *v1.Hash
	// Layout selects the layouts read (default: both).
	Layout Layout
}

// Image verifies the signatures of the image at t with trust and policy
// (whose Subject is the image's digest): the layers of its cosign ".sig"
// manifest and the sigstore bundles attached to it as OCI 1.1 referrers
// (cosign v3 and --new-bundle-format) whose predicate type is cosign's
// signing one. Unlike cosign, which ignores every .sig layer as soon as a
// bundle referrer exists, both are verified (unless t.Layout selects
// one), each signature against the whole policy (-a annotations
// included): .sig results first, then bundles. The result counts what
// each layout held. It succeeds when at least one signature passes every check;
// otherwise the error wraps ErrNoSignatures (nothing attached),
// oci.ErrImageNotFound (the image tag does not exist) or ErrNoMatching,
// and lists, per signature, which check failed and why.
func Image(ctx context.Context, reg Registry, t Target, trust *Trust, policy Policy) (*ImageResult, error) {
	return verifyImage(ctx, reg, t, trust, policy, oci.SignatureSuffix, payload.CosignSignPredicateType)
}

// Attestations verifies the attestations of the image at t: the DSSE
// layers of its ".att" manifest and the sigstore bundle referrers, keeping
// those whose statement has predicateType (any, when empty). When
// attestations verify but none has the predicate type, the error says
// which types were found, as cosign verify-attestation does. The layout
// counts are of the attestations that declare that type (or none).
func Attestations(ctx context.Context, reg Registry, t Target, predicateType string, trust *Trust, policy Policy) (*ImageResult, error) {
	res, err := verifyImage(ctx, reg, t, trust, policy, oci.AttestationSuffix, "")
	if err != nil || predicateType == "" {
		return res, err
	}
	var kept []*Verified
	var found []string
	for _, v := range res.Verified {
		if v.Statement != nil && v.Statement.PredicateType == predicateType {
			kept = append(kept, v)
		} else if v.Statement != nil && !slices.Contains(found, v.Statement.PredicateType) {
			found = append(found, v.Statement.PredicateType)
		}
	}
	res.Verified = kept
	res.Legacy.Found, res.Bundles.Found = mayBe(res.declaredLegacy, predicateType), mayBe(res.declaredBundles, predicateType)
	res.Legacy.Verified, res.Bundles.Verified = 0, 0
	for _, v := range kept {
		if v.Kind == KindBundle {
			res.Bundles.Verified++
		} else {
			res.Legacy.Verified++
		}
	}
	res.Legacy.Found, res.Bundles.Found = max(res.Legacy.Found, res.Legacy.Verified), max(res.Bundles.Found, res.Bundles.Verified)
	if len(kept) == 0 {
		return res, fmt.Errorf("%w for %s: none of the attestations matched the predicate type: %s, found: %s",
			ErrNoMatching, imageName(t.Image, res.Digest), predicateType, strings.Join(found, ","))
	}
	return res, nil
}

// mayBe counts the declared predicate types that are t or unknown.
func mayBe(declared []string, t string) int {
	n := 0
	for _, d := range declared {
		if d == "" || d == t {
			n++
		}
	}
	return n
}

// attached is what is attached to an image: the layers of its signature
// (or attestation) manifest, and its bundle referrers.
type attached struct {
	tag         name.Tag
	manifest    *oci.SignatureManifest // nil when the tag does not exist
	layers      []oci.SignatureLayer
	bundles     []oci.ReferrerBundle
	referrerErr error
}

// readAttached reads the signature manifest and, meanwhile, lists the
// bundle referrers (one round trip of latency for both), keeping the
// bundles of bundlePredicate (any, when empty). Both are read where the
// signatures are stored (the COSIGN_REPOSITORY override, as cosign v3
// reads referrers), each only when t.Layout selects it.
func readAttached(ctx context.Context, reg Registry, t Target, dig v1.Hash, suffix, bundlePredicate string) (*attached, error) {
	repo := t.Image.Context()
	if t.SignatureRepo != nil {
		repo = *t.SignatureRepo
	}
	a := &attached{tag: oci.AttachmentTag(repo, t.TagPrefix, dig, suffix)}
	listed := make(chan struct{})
	if !t.Layout.bundles() {
		close(listed)
	} else {
		go func() {
			defer close(listed)
			a.bundles, a.referrerErr = reg.BundleReferrers(ctx, repo, dig)
		}()
	}
	var err error
	if t.Layout.legacy() {
		a.manifest, err = reg.SignatureManifest(ctx, a.tag)
	}
	<-listed
	if err != nil {
		return a, err
	}
	if a.referrerErr != nil && (a.manifest == nil || len(a.manifest.Layers) == 0) {
		return a, a.referrerErr
	}
	if bundlePredicate != "" {
		a.bundles = slices.DeleteFunc(a.bundles, func(b oci.ReferrerBundle) bool {
			return b.PredicateType != "" && b.PredicateType != bundlePredicate
		})
	}
	if a.manifest != nil {
		a.layers = reg.SignatureLayers(ctx, a.tag.Context(), a.manifest)
	}
	return a, nil
}

func verifyImage(ctx context.Context, reg Registry, t Target, trust *Trust, policy Policy, suffix, bundlePredicate string) (*ImageResult, error) {
	var dig v1.Hash
	if t.Digest != nil {
		dig = *t.Digest
	} else {
		var err error
		if dig, err = reg.Resolve(ctx, t.Image); err != nil {
			return nil, err
		}
	}
	a, err := readAttached(ctx, reg, t, dig, suffix, bundlePredicate)
	res := &ImageResult{Reference: t.Image, Digest: dig, SignatureTag: a.tag,
		Legacy:  LayoutCount{Read: t.Layout.legacy(), Found: len(a.layers)},
		Bundles: LayoutCount{Read: t.Layout.bundles(), Found: len(a.bundles)}}
	if err != nil {
		return res, err
	}
	for _, l := range a.layers {
		res.declaredLegacy = append(res.declaredLegacy, l.Annotations[oci.AnnotationPredicateType])
	}
	for _, b := range a.bundles {
		res.declaredBundles = append(res.declaredBundles, b.PredicateType)
	}
	what := "signature"
	if suffix == oci.AttestationSuffix {
		what = "attestation"
	}
	if len(a.layers) == 0 && len(a.bundles) == 0 {
		return res, fmt.Errorf("%w for %s: %s", ErrNoSignatures, imageName(t.Image, dig), nothingAttached(t.Layout, a, what))
	}
	policy.Subject = dig.String()
	total := len(a.layers) + len(a.bundles)
	if a.referrerErr != nil {
		res.Failed = append(res.Failed, &CheckError{Check: CheckFormat, Reason: "listing sigstore bundle referrers: " + a.referrerErr.Error()})
	}
	verifyLayers(ctx, res, a.layers, total, suffix, trust, policy)
	res.Legacy.Verified = len(res.Verified)
	verifyBundles(ctx, res, a.bundles, len(a.layers), total, t.Image.Name(), trust, policy, bundlePredicate)
	res.Bundles.Verified = len(res.Verified) - res.Legacy.Verified
	if len(res.Verified) == 0 {
		lines := make([]string, len(res.Failed))
		for i, err := range res.Failed {
			lines[i] = err.Error()
		}
		return res, fmt.Errorf("%w for %s: %d %s(s) checked (%s):\n  %s", ErrNoMatching, imageName(t.Image, dig), total, what,
			layoutsRead(t.Layout, len(a.layers), len(a.bundles), a.tag), strings.Join(lines, "\n  "))
	}
	return res, nil
}

// layoutsRead says where the signatures checked came from.
func layoutsRead(l Layout, layers, bundles int, tag name.Tag) string {
	legacy := fmt.Sprintf("%d in the legacy tag %s", layers, tag.TagStr())
	referrers := fmt.Sprintf("%d sigstore bundle referrer(s)", bundles)
	switch l {
	case LayoutLegacy:
		return legacy + "; bundle referrers not read"
	case LayoutBundle:
		return referrers + "; the legacy tag not read"
	}
	return legacy + ", " + referrers
}

// nothingAttached says what was looked for and not found.
func nothingAttached(l Layout, a *attached, what string) string {
	hint := "sign the image first; if signatures are stored in another repository, set COSIGN_REPOSITORY as when signing"
	switch {
	case l == LayoutBundle:
		return fmt.Sprintf("no sigstore bundle refers to the image (only bundle referrers were read; the legacy %s tag was not: %s)", what, hint)
	case a.manifest != nil:
		return fmt.Sprintf("the %s manifest %s has no layers", what, a.tag)
	case l == LayoutLegacy:
		return fmt.Sprintf("the %s tag %s does not exist (only the legacy layout was read; sigstore bundle referrers were not: %s)", what, a.tag, hint)
	}
	return fmt.Sprintf("the %s tag %s does not exist and no sigstore bundle refers to the image (%s)", what, a.tag, hint)
}

// placed numbers a failure among the image's signatures.
func placed(err error, index, total int) error {
	var ce *CheckError
	if errors.As(err, &ce) {
		ce.Index, ce.Total = index, total
	}
	return err
}

// verifyLayers verifies the layers of a signature (or attestation)
// manifest into res.
func verifyLayers(ctx context.Context, res *ImageResult, layers []oci.SignatureLayer, total int, suffix string, trust *Trust, policy Policy) {
	for i, l := range layers {
		if l.Err != nil {
			res.Failed = append(res.Failed, &CheckError{Check: CheckFormat, Signature: l.Digest.String(), Index: i + 1, Total: total, Reason: l.Err.Error()})
			continue
		}
		stored := Layer{Digest: l.Digest.String(), MediaType: l.MediaType, Payload: l.Payload, Annotations: l.Annotations}
		s := LayerSignature(stored)
		if suffix == oci.AttestationSuffix {
			s = LayerAttestation(stored)
		}
		v, err := Verify(ctx, s, trust, policy)
		if err != nil {
			var ce *CheckError
			if errors.As(err, &ce) && suffix == oci.SignatureSuffix && ce.Check == CheckSignature {
				if j := swappedWith(layers, i, trust.Keys); j >= 0 {
					ce.Reason = fmt.Sprintf("the signature annotation is a signature over the payload of layer %d (%s), not over this layer's payload: signatures were swapped between layers", j+1, layers[j].Digest)
				}
			}
			res.Failed = append(res.Failed, placed(err, i+1, total))
			continue
		}
		res.Verified = append(res.Verified, v)
	}
}

// verifyBundles verifies the bundle referrers into res; refName is the
// reference cosign prints as their docker-reference.
func verifyBundles(ctx context.Context, res *ImageResult, bundles []oci.ReferrerBundle, before, total int, refName string, trust *Trust, policy Policy, predicateType string) {
	if predicateType != "" {
		policy.PredicateType = predicateType
	}
	for i, b := range bundles {
		idx := before + i + 1
		if b.Err != nil {
			res.Failed = append(res.Failed, &CheckError{Check: CheckFormat, Signature: "bundle " + b.Manifest, Index: idx, Total: total, Reason: b.Err.Error()})
			continue
		}
		v, err := Verify(ctx, BundleSignature(b.Raw, "bundle "+b.Manifest), trust, policy)
		if err != nil {
			res.Failed = append(res.Failed, placed(err, idx, total))
			continue
		}
		v.Claims.Critical.Identity.DockerReference = refName
		res.Verified = append(res.Verified, v)
	}
}

func imageName(ref name.Reference, d v1.Hash) string {
	if _, ok := ref.(name.Digest); ok {
		return ref.Name()
	}
	return ref.Name() + " (" + d.String() + ")"
}

// swappedWith returns the index of another layer whose payload layer i's
// signature verifies over with one of keys, or -1.
func swappedWith(layers []oci.SignatureLayer, i int, keys []Key) int {
	sig, err := base64.StdEncoding.DecodeString(layers[i].Annotations[oci.AnnotationSignature])
	if err != nil || len(sig) == 0 {
		return -1
	}
	for j, l := range layers {
		if j == i || l.Err != nil {
			continue
		}
		h := sha256.Sum256(l.Payload)
		for _, k := range keys {
			if verifySignature(k.PublicKey, l.Payload, h, sig) == nil {
				return j
			}
		}
	}
	return -1
}
