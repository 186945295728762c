package verify

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
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
}

// SignatureTag returns the tag cosign stores the signatures of digest d
// under in repo: "[prefix]<alg>-<hex>.sig".
func SignatureTag(repo name.Repository, prefix string, d v1.Hash) name.Tag {
	return repo.Tag(fmt.Sprintf("%s%s-%s.sig", prefix, d.Algorithm, d.Hex))
}

// Image verifies the cosign signatures of the image at t against opts. It
// succeeds when at least one signature passes every check; otherwise the
// error wraps ErrNoSignatures (the signature tag is absent or empty),
// ErrImageNotFound (the image tag does not exist) or ErrNoMatching, and
// lists, per signature, which check failed and why.
func (c *Client) Image(ctx context.Context, t Target, opts Options) (*ImageResult, error) {
	var dig v1.Hash
	if t.Digest != nil {
		dig = *t.Digest
	} else {
		var err error
		if dig, err = c.Resolve(ctx, t.Image); err != nil {
			return nil, err
		}
	}
	repo := t.Image.Context()
	if t.SignatureRepo != nil {
		repo = *t.SignatureRepo
	}
	tag := SignatureTag(repo, t.TagPrefix, dig)
	res := &ImageResult{Reference: t.Image, Digest: dig, SignatureTag: tag}
	sm, err := c.signatureManifest(ctx, tag)
	if err != nil {
		return res, err
	}
	if sm == nil {
		return res, fmt.Errorf("%w for %s: the signature tag %s does not exist (sign the image first; if signatures are stored in another repository, set COSIGN_REPOSITORY as when signing)",
			ErrNoSignatures, imageName(t.Image, dig), tag)
	}
	if len(sm.Layers) == 0 {
		return res, fmt.Errorf("%w for %s: the signature manifest %s has no layers", ErrNoSignatures, imageName(t.Image, dig), tag)
	}
	layers := c.fetchLayers(ctx, tag.Context(), sm)
	total := len(layers)
	failed := make([]error, total)
	for i, l := range layers {
		if l.err != nil {
			failed[i] = &CheckError{Check: CheckFormat, Signature: l.Digest, Index: i + 1, Total: total, Reason: l.err.Error()}
			continue
		}
		v, err := VerifyLayer(l.Layer, dig.String(), opts)
		if err != nil {
			var ce *CheckError
			if errors.As(err, &ce) {
				ce.Index, ce.Total = i+1, total
				if ce.Check == CheckSignature && opts.PublicKey != nil {
					if j := swappedWith(layers, i, opts.PublicKey); j >= 0 {
						ce.Reason = fmt.Sprintf("the signature annotation is a signature over the payload of layer %d (%s), not over this layer's payload: signatures were swapped between layers", j+1, layers[j].Digest)
					}
				}
			}
			failed[i] = err
			continue
		}
		res.Verified = append(res.Verified, v)
	}
	for _, err := range failed {
		if err != nil {
			res.Failed = append(res.Failed, err)
		}
	}
	if len(res.Verified) == 0 {
		lines := make([]string, len(res.Failed))
		for i, err := range res.Failed {
			lines[i] = err.Error()
		}
		return res, fmt.Errorf("%w for %s: %d signature(s) checked:\n  %s", ErrNoMatching, imageName(t.Image, dig), total, strings.Join(lines, "\n  "))
	}
	return res, nil
}

func imageName(ref name.Reference, d v1.Hash) string {
	if _, ok := ref.(name.Digest); ok {
		return ref.Name()
	}
	return ref.Name() + " (" + d.String() + ")"
}

// fetchedLayer is a signature layer or why it could not be read.
type fetchedLayer struct {
	Layer
	err error
}

// fetchLayers reads every signature layer's payload, a few at a time.
func (c *Client) fetchLayers(ctx context.Context, repo name.Repository, sm *SignatureManifest) []fetchedLayer {
	out := make([]fetchedLayer, len(sm.Layers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, d := range sm.Layers {
		out[i].Layer = Layer{Digest: d.Digest.String(), MediaType: d.MediaType, Annotations: d.Annotations}
		if len(sm.Layers) == 1 {
			out[i].Payload, out[i].err = c.blob(ctx, repo, d.Digest.String(), d.Size)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].Payload, out[i].err = c.blob(ctx, repo, d.Digest.String(), d.Size)
		}()
	}
	wg.Wait()
	return out
}

// swappedWith returns the index of another layer whose payload layer i's
// signature verifies over, or -1.
func swappedWith(layers []fetchedLayer, i int, pub any) int {
	sig, err := base64.StdEncoding.DecodeString(layers[i].Annotations[AnnotationSignature])
	if err != nil || len(sig) == 0 {
		return -1
	}
	for j, l := range layers {
		if j != i && l.err == nil && VerifySignature(pub, l.Payload, sig) == nil {
			return j
		}
	}
	return -1
}
