package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Paths of the server's trust distribution (internal/server).
const (
	TrustedRootPath   = "/api/v1/trusted_root.json"
	SigningConfigPath = "/api/v1/signing_config.json"
)

// Trust is a server's trust material as a CI job pins it: the trusted root
// (checked against a fingerprint obtained out of band) and the signing
// services its signing config names.
type Trust struct {
	Raw         []byte // trusted_root.json as served
	Fingerprint string // SHA-256 of Raw
	Material    *root.Material
	CAURL       string // certificate authority (Fulcio v1 API)
	LogURL      string // transparency log (Rekor v1 API)
}

// ErrTrust is wrapped by FetchTrust errors.
var ErrTrust = errors.New("cannot trust the server's signing services")

// FetchTrust downloads the trusted root and signing config of the server
// at base, as `hallmark trust init` does: the trusted root must have the
// pinned fingerprint (required: nothing is trusted on first use) and the
// signing config may only name services of that root.
func FetchTrust(ctx context.Context, client *http.Client, base, fingerprint string) (*Trust, error) {
	if fingerprint == "" {
		return nil, fmt.Errorf("%w: no pinned fingerprint for the trusted root of %s", ErrTrust, base)
	}
	base = strings.TrimSuffix(base, "/")
	raw, err := get(ctx, client, base+TrustedRootPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTrust, err)
	}
	if err := root.CheckFingerprint(raw, fingerprint); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTrust, base+TrustedRootPath, err)
	}
	tr, err := root.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTrust, base+TrustedRootPath, err)
	}
	m, err := tr.Material()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTrust, base+TrustedRootPath, err)
	}
	scRaw, err := get(ctx, client, base+SigningConfigPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTrust, err)
	}
	sc, err := root.ParseSigningConfigFor(scRaw, tr)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrTrust, base+SigningConfigPath, err)
	}
	now := time.Now()
	t := &Trust{Raw: raw, Fingerprint: root.Fingerprint(raw), Material: m,
		CAURL: root.SelectService(sc.CAURLs, now), LogURL: root.SelectService(sc.RekorTlogURLs, now)}
	if t.CAURL == "" || t.LogURL == "" {
		return nil, fmt.Errorf("%w: the signing config of %s names no certificate authority or Rekor v1 log valid now", ErrTrust, base)
	}
	return t, nil
}

func get(ctx context.Context, client *http.Client, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, root.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", u, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if len(b) > root.MaxFileSize {
		return nil, fmt.Errorf("GET %s: larger than %d bytes", u, root.MaxFileSize)
	}
	return b, nil
}
