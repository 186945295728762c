package sign

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// BlobWriter uploads small blobs to a repository.
type BlobWriter interface {
	WriteBlob(ctx context.Context, repo name.Repository, digest v1.Hash, data []byte) error
}

// MonolithicBlobs uploads blobs in two requests each, the OCI monolithic
// upload every registry supports (POST an upload session, PUT the bytes
// with the digest), instead of go-containerregistry's four (HEAD, POST,
// PATCH, PUT): signature payloads and configs are small and new. It
// authenticates once per repository (push scope) with Keychain, as
// go-containerregistry does.
type MonolithicBlobs struct {
	Keychain  authn.Keychain
	Transport http.RoundTripper
	UserAgent string

	mu    sync.Mutex
	repos map[string]*pushTransport
}

type pushTransport struct {
	once sync.Once
	rt   http.RoundTripper
	err  error
}

// RepoTransport returns the authenticated (push and pull) transport for repo,
// created once: go-containerregistry uses it as is (no second ping).
func (m *MonolithicBlobs) RepoTransport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	return m.transport(ctx, repo)
}

func (m *MonolithicBlobs) transport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	m.mu.Lock()
	if m.repos == nil {
		m.repos = map[string]*pushTransport{}
	}
	pt, ok := m.repos[repo.Name()]
	if !ok {
		pt = &pushTransport{}
		m.repos[repo.Name()] = pt
	}
	m.mu.Unlock()
	pt.once.Do(func() {
		kc := m.Keychain
		if kc == nil {
			kc = authn.DefaultKeychain
		}
		auth, err := authn.Resolve(ctx, kc, repo)
		if err != nil {
			pt.err = err
			return
		}
		base := m.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		if m.UserAgent != "" {
			base = transport.NewUserAgent(base, m.UserAgent)
		}
		pt.rt, pt.err = transport.NewWithContext(ctx, repo.Registry, auth, base, []string{repo.Scope(transport.PushScope)})
	})
	return pt.rt, pt.err
}

// WriteBlob implements BlobWriter.
func (m *MonolithicBlobs) WriteBlob(ctx context.Context, repo name.Repository, digest v1.Hash, data []byte) error {
	rt, err := m.transport(ctx, repo)
	if err != nil {
		return fmt.Errorf("connecting to registry %s: %w", repo.RegistryStr(), err)
	}
	client := &http.Client{Transport: rt}
	base := url.URL{Scheme: repo.Registry.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/uploads/", repo.RepositoryStr())}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusAccepted); err != nil {
		return err
	}
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return fmt.Errorf("registry %s started an upload without a valid Location", repo.RegistryStr())
	}
	q := loc.Query()
	q.Set("digest", digest.String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.ContentLength = int64(len(data))
	resp, err = client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusCreated)
}

// CheckManifest makes sure the manifest digest exists in repo (a HEAD on
// the same authenticated connection the uploads use); a missing one is an
// error wrapping oci.ErrImageNotFound.
func (m *MonolithicBlobs) CheckManifest(ctx context.Context, repo name.Repository, digest v1.Hash) error {
	rt, err := m.transport(ctx, repo)
	if err != nil {
		return fmt.Errorf("connecting to registry %s: %w", repo.RegistryStr(), err)
	}
	u := url.URL{Scheme: repo.Registry.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/manifests/%s", repo.RepositoryStr(), digest)}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", strings.Join([]string{string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
		string(types.OCIImageIndex), string(types.DockerManifestList)}, ", "))
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %s@%s", oci.ErrImageNotFound, repo, digest)
	}
	return transport.CheckError(resp, http.StatusOK)
}
