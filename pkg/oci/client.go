package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
)

// Limits on what is read from a registry while verifying.
const (
	// DefaultMaxPayload is cosign's default COSIGN_MAX_ATTACHMENT_SIZE.
	DefaultMaxPayload = 128 << 20
	// maxManifest bounds a signature manifest (1000 keyless layers with
	// certificates and bundles stay well below it).
	maxManifest = 16 << 20
)

// Registry errors. Match them with errors.Is.
var (
	// ErrImageNotFound: the image tag or manifest does not exist (cosign's
	// exit code 11, "image tag not found").
	ErrImageNotFound = errors.New("image tag not found")
	// ErrInvalidSignatureManifest: what the signature tag holds is not a
	// signature manifest cosign could read.
	ErrInvalidSignatureManifest = errors.New("invalid signature manifest")
)

// manifestAccept lists the manifest media types a signature tag or an image
// reference may resolve to.
var manifestAccept = strings.Join([]string{
	MediaTypeOCIManifest, MediaTypeDockerManifest, MediaTypeOCIIndex, MediaTypeDockerList,
}, ", ")

// ClientConfig configures a Client.
type ClientConfig struct {
	// Transport is the base HTTP transport (default http.DefaultTransport).
	Transport http.RoundTripper
	// Keychain finds registry credentials (default: anonymous).
	Keychain authn.Keychain
	// UserAgent is sent with every request.
	UserAgent string
	// MaxPayload bounds one signature layer (default DefaultMaxPayload).
	MaxPayload int64
}

// Client reads images and signature manifests from OCI registries. It
// authenticates once per repository (docker config credentials, bearer
// token or basic auth, as go-containerregistry does) and reuses that
// transport for every later request, so verifying many images costs only
// the requests each image needs. A Client is safe for concurrent use.
type Client struct {
	cfg   ClientConfig
	mu    sync.Mutex
	repos map[string]*repoTransport
}

type repoTransport struct {
	once sync.Once
	rt   http.RoundTripper
	err  error
}

// NewClient returns a registry client.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if cfg.Keychain == nil {
		cfg.Keychain = authn.NewMultiKeychain()
	}
	if cfg.MaxPayload <= 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	return &Client{cfg: cfg, repos: map[string]*repoTransport{}}
}

// transport returns the authenticated transport for repo, pinging the
// registry and fetching a pull token the first time.
func (c *Client) transport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	key := repo.Name()
	c.mu.Lock()
	rt, ok := c.repos[key]
	if !ok {
		rt = &repoTransport{}
		c.repos[key] = rt
	}
	c.mu.Unlock()
	rt.once.Do(func() {
		auth, err := authn.Resolve(ctx, c.cfg.Keychain, repo)
		if err != nil {
			rt.err = fmt.Errorf("finding credentials for %s: %w", repo, err)
			return
		}
		base := c.cfg.Transport
		if c.cfg.UserAgent != "" {
			base = transport.NewUserAgent(base, c.cfg.UserAgent)
		}
		rt.rt, rt.err = transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PullScope)})
		if rt.err != nil {
			rt.err = fmt.Errorf("connecting to registry %s: %w", repo.RegistryStr(), rt.err)
		}
	})
	if rt.err != nil {
		// Do not cache failures (a registry may come up later).
		c.mu.Lock()
		if c.repos[key] == rt {
			delete(c.repos, key)
		}
		c.mu.Unlock()
	}
	return rt.rt, rt.err
}

// response is a fetched manifest or blob.
type response struct {
	status      int
	contentType string
	digest      string // Docker-Content-Digest header
	body        []byte
}

// do sends method to /v2/<repo>/<kind>/<ref> and reads at most limit bytes
// of the body (limit < 0: no body). A 404 is returned as a response, not an
// error; other non-2xx statuses are errors carrying the registry's message.
func (c *Client) do(ctx context.Context, method string, repo name.Repository, kind, ref, accept string, limit int64) (*response, error) {
	rt, err := c.transport(ctx, repo)
	if err != nil {
		return nil, err
	}
	u := fmt.Sprintf("%s://%s/v2/%s/%s/%s", repo.Registry.Scheme(), repo.RegistryStr(), repo.RepositoryStr(), kind, ref)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	out := &response{status: resp.StatusCode, digest: resp.Header.Get("Docker-Content-Digest")}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil {
		out.contentType = mt
	}
	if resp.StatusCode == http.StatusNotFound {
		return out, nil
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, err
	}
	if limit >= 0 && method != http.MethodHead {
		if resp.ContentLength > limit {
			return nil, fmt.Errorf("%s %s: response is %d bytes; at most %d are read", method, u, resp.ContentLength, limit)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return nil, fmt.Errorf("%s %s: reading response: %w", method, u, err)
		}
		if int64(len(b)) > limit {
			return nil, fmt.Errorf("%s %s: response is larger than the %d bytes read at most", method, u, limit)
		}
		out.body = b
	}
	return out, nil
}

// Resolve returns the manifest digest ref points at. A digest reference is
// returned as is, without asking the registry (as cosign does). A tag that
// does not exist is an error wrapping ErrImageNotFound.
func (c *Client) Resolve(ctx context.Context, ref name.Reference) (v1.Hash, error) {
	if d, ok := ref.(name.Digest); ok {
		return v1.NewHash(d.DigestStr())
	}
	resp, err := c.do(ctx, http.MethodHead, ref.Context(), "manifests", ref.Identifier(), manifestAccept, -1)
	if err != nil || resp.status != http.StatusNotFound && resp.digest == "" {
		// Some registries refuse HEAD or send no Docker-Content-Digest on it.
		resp, err = c.do(ctx, http.MethodGet, ref.Context(), "manifests", ref.Identifier(), manifestAccept, maxManifest)
		if err == nil && resp.status != http.StatusNotFound {
			resp.digest = digest.FromBytes(resp.body).String()
		}
	}
	if err != nil {
		return v1.Hash{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	if resp.status == http.StatusNotFound {
		return v1.Hash{}, fmt.Errorf("%w: %s does not exist in the registry", ErrImageNotFound, ref)
	}
	h, err := v1.NewHash(resp.digest)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("resolving %s: registry sent an invalid Docker-Content-Digest %q", ref, resp.digest)
	}
	return h, nil
}

// Manifest fetches the manifest ref names and parses it. A missing
// manifest is an error wrapping ErrImageNotFound.
func (c *Client) Manifest(ctx context.Context, ref name.Reference) (*Manifest, v1.Hash, error) {
	resp, err := c.do(ctx, http.MethodGet, ref.Context(), "manifests", ref.Identifier(), manifestAccept, maxManifest)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if resp.status == http.StatusNotFound {
		return nil, v1.Hash{}, fmt.Errorf("%w: %s does not exist in the registry", ErrImageNotFound, ref)
	}
	m, err := ParseManifest(resp.contentType, resp.body)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("%s: %w", ref, err)
	}
	h, _ := v1.NewHash(digest.FromBytes(resp.body).String())
	return m, h, nil
}

// SignatureManifest fetches the manifest under a signature (or
// attestation) tag. It returns nil, nil when the tag does not exist.
func (c *Client) SignatureManifest(ctx context.Context, tag name.Tag) (*SignatureManifest, error) {
	resp, err := c.do(ctx, http.MethodGet, tag.Context(), "manifests", tag.TagStr(), manifestAccept, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("reading signatures %s: %w", tag, err)
	}
	if resp.status == http.StatusNotFound {
		return nil, nil
	}
	sm, err := ParseSignatureManifest(resp.contentType, resp.body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tag, err)
	}
	return sm, nil
}

// blob fetches a signature layer blob of at most size bytes. Its digest is
// not checked here: VerifyLayer does that and names it as a check.
func (c *Client) blob(ctx context.Context, repo name.Repository, d string, size int64) ([]byte, error) {
	if size > c.cfg.MaxPayload {
		return nil, fmt.Errorf("signature layer %s is %d bytes; at most %d are read (COSIGN_MAX_ATTACHMENT_SIZE)", d, size, c.cfg.MaxPayload)
	}
	resp, err := c.do(ctx, http.MethodGet, repo, "blobs", d, "", c.cfg.MaxPayload)
	if err != nil {
		return nil, fmt.Errorf("fetching signature payload %s: %w", d, err)
	}
	if resp.status == http.StatusNotFound {
		return nil, fmt.Errorf("fetching signature payload %s: blob not found in %s", d, repo)
	}
	return resp.body, nil
}

// SignatureManifest is a parsed cosign signature manifest: the layer
// descriptors, one per signature.
type SignatureManifest struct {
	MediaType string
	Layers    []Descriptor
}

// ParseSignatureManifest parses the manifest stored under a cosign
// signature tag (contentType may be empty). It accepts OCI and Docker
// image manifests with at most MaxSignatureLayers layers and any config, as
// cosign does; an index, a malformed manifest or too many layers is an
// error wrapping ErrInvalidSignatureManifest that says what is wrong.
func ParseSignatureManifest(contentType string, body []byte) (*SignatureManifest, error) {
	m, err := ParseManifest(contentType, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidSignatureManifest, err)
	}
	if IsIndex(m.MediaType) {
		return nil, fmt.Errorf("%w: the signature tag holds an image index (%s), not an image manifest with signature layers", ErrInvalidSignatureManifest, m.MediaType)
	}
	if len(m.Layers) > MaxSignatureLayers {
		return nil, fmt.Errorf("%w: %d signature layers; cosign reads at most %d", ErrInvalidSignatureManifest, len(m.Layers), MaxSignatureLayers)
	}
	return &SignatureManifest{MediaType: m.MediaType, Layers: m.Layers}, nil
}

// maxBundleReferrers bounds the sigstore bundle referrers read per image,
// and maxReferrerReads the referrer manifests fetched to find them (those
// listed with the empty media type may hold none).
const (
	maxBundleReferrers = 100
	maxReferrerReads   = 2 * maxBundleReferrers
)

// maxBundleBlob bounds one sigstore bundle.
const maxBundleBlob = 4 << 20

// ReferrerBundle is a sigstore bundle attached to an image as an OCI 1.1
// referrer, or why it could not be read.
type ReferrerBundle struct {
	Manifest      string // digest of the referrer manifest
	PredicateType string // from the manifest annotation, if any
	Raw           []byte
	Err           error
}

// referrers lists the manifests referring to d in repo: the referrers API
// when the registry answers it with an image index, else the referrers tag
// schema's fallback tag "<alg>-<hex>" (as go-containerregistry does).
func (c *Client) referrers(ctx context.Context, repo name.Repository, d v1.Hash) ([]Descriptor, error) {
	resp, err := c.do(ctx, http.MethodGet, repo, "referrers", d.String(), MediaTypeOCIIndex, maxManifest)
	if err == nil && resp.status == http.StatusOK && resp.contentType == MediaTypeOCIIndex {
		m, err := ParseManifest(resp.contentType, resp.body)
		if err != nil {
			return nil, fmt.Errorf("referrers of %s: %w", d, err)
		}
		return m.Manifests, nil
	}
	// No referrers API (404, 400, or an error status): the fallback tag.
	resp, err = c.do(ctx, http.MethodGet, repo, "manifests", d.Algorithm+"-"+d.Hex, manifestAccept, maxManifest)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s (fallback tag): %w", d, err)
	}
	if resp.status == http.StatusNotFound {
		return nil, nil
	}
	m, err := ParseManifest(resp.contentType, resp.body)
	if err != nil || !IsIndex(m.MediaType) {
		return nil, nil // the tag is something else; no referrers
	}
	return m.Manifests, nil
}

// BundleReferrers fetches the sigstore bundles attached to d in repo (at
// most 100, each at most 4 MiB, their manifests and blobs checked against
// their digests). A referrer listed with the OCI empty media type as its
// artifact type is read too, and kept if it holds a bundle: registries
// that list the config media type instead of the manifest's artifactType
// (go-containerregistry's) list cosign's bundles so.
func (c *Client) BundleReferrers(ctx context.Context, repo name.Repository, d v1.Hash) ([]ReferrerBundle, error) {
	descs, err := c.referrers(ctx, repo, d)
	if err != nil {
		return nil, err
	}
	var out []ReferrerBundle
	reads := 0
	for _, desc := range descs {
		maybe := !IsBundleType(desc.ArtifactType)
		if maybe && desc.ArtifactType != MediaTypeOCIEmptyJSON {
			continue
		}
		if len(out) == maxBundleReferrers || reads == maxReferrerReads {
			break
		}
		reads++
		rb := ReferrerBundle{Manifest: desc.Digest.String(), PredicateType: desc.Annotations[AnnotationBundlePredicateType]}
		rb.Raw, rb.Err = c.bundleBlob(ctx, repo, desc.Digest.String())
		if maybe && errors.Is(rb.Err, errNoBundle) {
			continue // another artifact with an empty config
		}
		out = append(out, rb)
	}
	return out, nil
}

// errNoBundle: a referrer manifest holds no sigstore bundle layer.
var errNoBundle = errors.New("no sigstore bundle layer")

// bundleBlob reads the bundle layer of a referrer manifest.
func (c *Client) bundleBlob(ctx context.Context, repo name.Repository, manifest string) ([]byte, error) {
	resp, err := c.do(ctx, http.MethodGet, repo, "manifests", manifest, MediaTypeOCIManifest, maxManifest)
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNotFound {
		return nil, fmt.Errorf("referrer manifest %s is listed but not in the registry", manifest)
	}
	if digest.FromBytes(resp.body).String() != manifest {
		return nil, fmt.Errorf("referrer manifest does not match its digest %s", manifest)
	}
	m, err := ParseManifest(resp.contentType, resp.body)
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		if !IsBundleType(l.MediaType) {
			continue
		}
		if l.Size > maxBundleBlob {
			return nil, fmt.Errorf("bundle %s is %d bytes; at most %d are read", l.Digest, l.Size, maxBundleBlob)
		}
		b, err := c.blob(ctx, repo, l.Digest.String(), l.Size)
		if err != nil {
			return nil, err
		}
		if ok, _ := DigestMatches(l.Digest.String(), b); !ok {
			return nil, fmt.Errorf("bundle blob does not match its digest %s", l.Digest)
		}
		return b, nil
	}
	return nil, fmt.Errorf("referrer manifest %s has %w", manifest, errNoBundle)
}

// SignatureLayer is one layer of a signature manifest with its payload
// blob, or why the blob could not be read. The payload is not checked
// against the layer digest here: verification names that check.
type SignatureLayer struct {
	Descriptor
	Payload []byte
	Err     error
}

// SignatureLayers reads the payload of every layer of sm, stored in repo,
// a few at a time.
func (c *Client) SignatureLayers(ctx context.Context, repo name.Repository, sm *SignatureManifest) []SignatureLayer {
	out := make([]SignatureLayer, len(sm.Layers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, d := range sm.Layers {
		out[i].Descriptor = d
		if len(sm.Layers) == 1 {
			out[i].Payload, out[i].Err = c.blob(ctx, repo, d.Digest.String(), d.Size)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].Payload, out[i].Err = c.blob(ctx, repo, d.Digest.String(), d.Size)
		}()
	}
	wg.Wait()
	return out
}
