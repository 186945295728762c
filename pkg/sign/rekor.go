package sign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// TransparencyLog uploads entries to a Rekor v1 compatible log and checks
// what it returns against the log's trusted key before anything is
// attached: the entry must log the signature that was sent, its signed
// entry timestamp must verify, and its inclusion proof must verify against
// a checkpoint the log signed.
type TransparencyLog struct {
	URL string
	// Keys are the trusted log keys (hex log ID -> key and the window of
	// integrated times it is trusted for), e.g. the tlogs of the trusted
	// root.
	Keys       map[string]root.LogKey
	HTTPClient *http.Client
}

// ErrLogUpload is wrapped by errors talking to the log.
var ErrLogUpload = errors.New("transparency log upload failed")

// maxLogResponse bounds what is read of a log response.
const maxLogResponse = 4 << 20

func (t *TransparencyLog) client() *http.Client {
	if t.HTTPClient != nil {
		return t.HTTPClient
	}
	return http.DefaultClient
}

// Upload submits a proposed entry and returns the log's entry, verified:
// it logs the signature sig over content with SHA-256 contentSHA256 by the
// key or certificate whose DER is keyDER, its SET verifies and its
// inclusion proof verifies against a checkpoint signed by the log key.
func (t *TransparencyLog) Upload(ctx context.Context, proposed, contentSHA256, sig, keyDER []byte) (*rekor.LogEntry, error) {
	url := strings.TrimRight(t.URL, "/") + "/api/v1/log/entries"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(proposed))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := t.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrLogUpload, url, err)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLogResponse))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the response of %s: %w", ErrLogUpload, url, err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusConflict:
		// Already logged (the same signature): fetch the existing entry.
		loc := resp.Header.Get("Location")
		if loc == "" {
			return nil, fmt.Errorf("%w: POST %s returned 409 without a Location", ErrLogUpload, url)
		}
		if raw, err = t.get(ctx, loc); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: POST %s returned %s: %q", ErrLogUpload, url, resp.Status, strings.TrimSpace(string(raw)))
	}
	e, err := rekor.ParseEntryResponse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLogUpload, url, err)
	}
	if err := verify.VerifyLoggedSignature(e, t.Keys, contentSHA256, sig, keyDER, true); err != nil {
		return nil, fmt.Errorf("the transparency log at %s returned an entry that does not verify with the trusted root: %w", t.URL, err)
	}
	return e, nil
}

func (t *TransparencyLog) get(ctx context.Context, loc string) ([]byte, error) {
	if strings.HasPrefix(loc, "/") {
		loc = strings.TrimRight(t.URL, "/") + loc
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := t.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: %w", ErrLogUpload, loc, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxLogResponse))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: GET %s returned %s", ErrLogUpload, loc, resp.Status)
	}
	return raw, nil
}
