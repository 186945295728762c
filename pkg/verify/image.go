package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Image-level errors, mapped to cosign's exit codes by the CLI.
var (
	ErrNoSignatures = errors.New("no signatures found")
	ErrNoMatching   = errors.New("no matching signatures")
)

// maxLayers and maxPayload bound what is read from a signature manifest.
const (
	maxLayers  = 1000
	maxPayload = 128 << 20
)

// ImageResult is the outcome of verifying one image.
type ImageResult struct {
	Reference name.Reference
	Digest    v1.Hash
	Verified  []*Verified
}

// Target says where an image's signatures live.
type Target struct {
	Image name.Reference
	// SignatureRepo overrides where the .sig tag is read (COSIGN_REPOSITORY).
	SignatureRepo *name.Repository
}

// Image verifies the cosign signatures of the image at t against opts. It
// succeeds when at least one signature passes every check; otherwise the
// error wraps ErrNoSignatures or ErrNoMatching and lists why each
// signature failed.
func Image(ctx context.Context, t Target, opts Options, ropts ...remote.Option) (*ImageResult, error) {
	ropts = append([]remote.Option{remote.WithContext(ctx)}, ropts...)
	dig, err := Resolve(t.Image, ropts...)
	if err != nil {
		return nil, err
	}
	repo := t.Image.Context()
	if t.SignatureRepo != nil {
		repo = *t.SignatureRepo
	}
	tag := repo.Tag(fmt.Sprintf("%s-%s.sig", dig.Algorithm, dig.Hex))
	layers, err := fetchSignatureLayers(tag, ropts...)
	if err != nil {
		return nil, err
	}
	res := &ImageResult{Reference: t.Image, Digest: dig}
	var errs []string
	for _, l := range layers {
		v, err := VerifyLayer(l, dig.String(), opts)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		res.Verified = append(res.Verified, v)
	}
	if len(res.Verified) == 0 {
		return res, fmt.Errorf("%w for %s:\n  %s", ErrNoMatching, t.Image, strings.Join(errs, "\n  "))
	}
	return res, nil
}

// Resolve returns the manifest digest ref points at.
func Resolve(ref name.Reference, ropts ...remote.Option) (v1.Hash, error) {
	if d, ok := ref.(name.Digest); ok {
		return v1.NewHash(d.DigestStr())
	}
	desc, err := remote.Head(ref, ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return v1.Hash{}, fmt.Errorf("image %s not found: %w", ref, err)
		}
		return v1.Hash{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return desc.Digest, nil
}

// fetchSignatureLayers reads every signature layer under the .sig tag.
func fetchSignatureLayers(tag name.Tag, ropts ...remote.Option) ([]Layer, error) {
	img, err := remote.Image(tag, ropts...)
	if err != nil {
		if oci.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrNoSignatures, tag)
		}
		return nil, fmt.Errorf("reading signatures %s: %w", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("signature manifest %s: %w", tag, err)
	}
	if len(m.Layers) == 0 {
		return nil, fmt.Errorf("%w: %s has no layers", ErrNoSignatures, tag)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("signature manifest %s has %d layers; at most %d are read", tag, len(m.Layers), maxLayers)
	}
	out := make([]Layer, len(m.Layers))
	errs := make([]error, len(m.Layers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, d := range m.Layers {
		out[i] = Layer{Digest: d.Digest.String(), Annotations: d.Annotations}
		if d.Size > maxPayload {
			errs[i] = fmt.Errorf("signature layer %s is %d bytes; the limit is %d", d.Digest, d.Size, maxPayload)
			continue
		}
		wg.Add(1)
		go func(i int, d v1.Descriptor) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].Payload, errs[i] = readLayer(img, d)
		}(i, d)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readLayer(img v1.Image, d v1.Descriptor) ([]byte, error) {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed() // verifies the digest while reading
	if err != nil {
		return nil, fmt.Errorf("fetching signature payload %s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("fetching signature payload %s: %w", d.Digest, err)
	}
	return b, nil
}
