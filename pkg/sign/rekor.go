package sign

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

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

// HashedRekord builds the proposed hashedrekord v0.0.1 entry for a
// signature over payload made by the key in certOrKeyPEM (a PEM
// certificate or public key), in the field order cosign sends.
func HashedRekord(payload, sig, certOrKeyPEM []byte) ([]byte, error) {
	h := sha256.Sum256(payload)
	type hash struct {
		Algorithm string `json:"algorithm"`
		Value     string `json:"value"`
	}
	var e struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Data struct {
				Hash hash `json:"hash"`
			} `json:"data"`
			Signature struct {
				Content   []byte `json:"content"`
				PublicKey struct {
					Content []byte `json:"content"`
				} `json:"publicKey"`
			} `json:"signature"`
		} `json:"spec"`
		Kind string `json:"kind"`
	}
	e.APIVersion, e.Kind = "0.0.1", "hashedrekord"
	e.Spec.Data.Hash = hash{"sha256", hex.EncodeToString(h[:])}
	e.Spec.Signature.Content = sig
	e.Spec.Signature.PublicKey.Content = certOrKeyPEM
	return json.Marshal(e)
}

// DSSEEntry builds the proposed dsse v0.0.1 entry for a signed envelope,
// verified by the key or certificate in certOrKeyPEM.
func DSSEEntry(envelope, certOrKeyPEM []byte) ([]byte, error) {
	var e struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			ProposedContent struct {
				Envelope  string   `json:"envelope"`
				Verifiers [][]byte `json:"verifiers"`
			} `json:"proposedContent"`
		} `json:"spec"`
		Kind string `json:"kind"`
	}
	e.APIVersion, e.Kind = "0.0.1", "dsse"
	e.Spec.ProposedContent.Envelope = string(envelope)
	e.Spec.ProposedContent.Verifiers = [][]byte{certOrKeyPEM}
	return json.Marshal(e)
}

// Upload submits a proposed entry and returns the log's entry, verified:
// it logs the signature sig over content with SHA-256 contentSHA256 by the
// key or certificate whose DER is keyDER, its SET verifies and its
// inclusion proof verifies against a checkpoint signed by the log key.
func (t *TransparencyLog) Upload(ctx context.Context, proposed, contentSHA256, sig, keyDER []byte) (*verify.LogEntry, error) {
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
	e, err := ParseLogEntryResponse(raw)
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

// ParseLogEntryResponse parses a Rekor v1 entry response, {"<uuid>":
// {body, integratedTime, logID, logIndex, verification}}, with exactly one
// entry.
func ParseLogEntryResponse(raw []byte) (*verify.LogEntry, error) {
	var entries map[string]struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogID          string `json:"logID"`
		LogIndex       *int64 `json:"logIndex"`
		Verification   *struct {
			SignedEntryTimestamp string `json:"signedEntryTimestamp"`
			InclusionProof       *struct {
				Checkpoint string   `json:"checkpoint"`
				Hashes     []string `json:"hashes"`
				LogIndex   int64    `json:"logIndex"`
				RootHash   string   `json:"rootHash"`
				TreeSize   int64    `json:"treeSize"`
			} `json:"inclusionProof"`
		} `json:"verification"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("the response is not a log entry: %v", err)
	}
	if len(entries) != 1 {
		return nil, fmt.Errorf("the response holds %d entries, want 1", len(entries))
	}
	for _, w := range entries {
		if w.LogIndex == nil || w.Body == "" || w.Verification == nil {
			return nil, errors.New("the entry lacks its body, log index or verification")
		}
		body, err := base64.StdEncoding.DecodeString(w.Body)
		if err != nil {
			return nil, errors.New("the entry body is not base64")
		}
		set, err := base64.StdEncoding.DecodeString(w.Verification.SignedEntryTimestamp)
		if err != nil {
			return nil, errors.New("the signed entry timestamp is not base64")
		}
		e := &verify.LogEntry{Body: body, IntegratedTime: w.IntegratedTime, LogIndex: *w.LogIndex, LogID: w.LogID, SET: set}
		if p := w.Verification.InclusionProof; p != nil {
			ip := &verify.InclusionProof{LogIndex: p.LogIndex, TreeSize: p.TreeSize, Checkpoint: p.Checkpoint}
			if ip.RootHash, err = hex.DecodeString(p.RootHash); err != nil {
				return nil, errors.New("the inclusion proof's root hash is not hex")
			}
			for _, h := range p.Hashes {
				b, err := hex.DecodeString(h)
				if err != nil {
					return nil, errors.New("an inclusion proof hash is not hex")
				}
				ip.Hashes = append(ip.Hashes, b)
			}
			e.Proof = ip
		}
		return e, nil
	}
	return nil, errors.New("unreachable")
}
