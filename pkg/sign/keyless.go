package sign

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// KeylessSigner signs with an ephemeral ECDSA P-256 key certified by a
// Fulcio-compatible CA for the identity in an OIDC token, and records the
// signature in a Rekor-compatible log, as cosign v2 does by default.
type KeylessSigner struct {
	FulcioURL  string
	RekorURL   string // empty: do not upload to a log
	Token      string // raw OIDC ID token
	HTTPClient *http.Client
}

func (k *KeylessSigner) client() *http.Client {
	if k.HTTPClient != nil {
		return k.HTTPClient
	}
	return http.DefaultClient
}

// Sign implements Signer.
func (k *KeylessSigner) Sign(ctx context.Context, payload []byte) (*Signature, error) {
	if k.Token == "" {
		return nil, errors.New("keyless signing needs an OIDC identity token (--identity-token or SIGSTORE_ID_TOKEN)")
	}
	identity, err := TokenIdentity(k.Token)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, chain, err := k.certificate(ctx, key, identity)
	if err != nil {
		return nil, err
	}
	sig, err := SignBytes(key, payload)
	if err != nil {
		return nil, err
	}
	out := &Signature{Payload: payload, Signature: sig, Certificate: leaf, Chain: chain}
	if k.RekorURL != "" {
		if out.Bundle, out.LogIndex, err = k.logEntry(ctx, payload, sig, leaf); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TokenIdentity returns the identity a CA checks proof of possession
// against: the email claim when present (it must be verified), else sub.
// The token is not verified here; the CA does that.
func TokenIdentity(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("identity token is not a JWT (want three dot-separated parts)")
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", fmt.Errorf("identity token payload is not base64url: %w", err)
	}
	var c struct {
		Sub           string `json:"sub"`
		Email         string `json:"email"`
		EmailVerified any    `json:"email_verified"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("identity token payload is not JSON: %w", err)
	}
	if c.Email != "" {
		if v := fmt.Sprint(c.EmailVerified); v != "true" {
			return "", fmt.Errorf("identity token email %q is not verified by the identity provider", c.Email)
		}
		return c.Email, nil
	}
	if c.Sub == "" {
		return "", errors.New("identity token has neither an email nor a sub claim")
	}
	return c.Sub, nil
}

// certificate asks the CA (Fulcio v1 API, as cosign v2 does) for a
// certificate binding key to the token's identity.
func (k *KeylessSigner) certificate(ctx context.Context, key *ecdsa.PrivateKey, identity string) (leaf, chain []byte, err error) {
	pubPEM, err := PublicKeyPEM(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	h := sha256.Sum256([]byte(identity))
	proof, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		return nil, nil, err
	}
	body, _ := json.Marshal(map[string]any{
		"publicKey":          map[string]any{"content": pubPEM},
		"signedEmailAddress": proof,
	})
	url := strings.TrimRight(k.FulcioURL, "/") + "/api/v1/signingCert"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/pem-certificate-chain")
	req.Header.Set("Authorization", "Bearer "+k.Token)
	resp, err := k.client().Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("requesting a certificate from %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, nil, fmt.Errorf("POST %s returned %s: %q", url, resp.Status, strings.TrimSpace(string(raw)))
	}
	block, rest := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, nil, fmt.Errorf("certificate authority at %s returned no PEM certificate", url)
	}
	return pem.EncodeToMemory(block), bytes.TrimLeft(rest, "\n"), nil
}

// RekorBundle is the cosign "dev.sigstore.cosign/bundle" annotation value.
type RekorBundle struct {
	SignedEntryTimestamp []byte       `json:"SignedEntryTimestamp"`
	Payload              RekorPayload `json:"Payload"`
}

// RekorPayload is the logged entry a SET covers.
type RekorPayload struct {
	Body           string `json:"body"`
	IntegratedTime int64  `json:"integratedTime"`
	LogIndex       int64  `json:"logIndex"`
	LogID          string `json:"logID"`
}

// HashedRekord builds the proposed hashedrekord v0.0.1 entry for a
// signature over payload made by the key in certOrKeyPEM.
func HashedRekord(payload, sig, certOrKeyPEM []byte) ([]byte, error) {
	h := sha256.Sum256(payload)
	return json.Marshal(map[string]any{
		"apiVersion": "0.0.1",
		"kind":       "hashedrekord",
		"spec": map[string]any{
			"data":      map[string]any{"hash": map[string]string{"algorithm": "sha256", "value": hex.EncodeToString(h[:])}},
			"signature": map[string]any{"content": sig, "publicKey": map[string]any{"content": certOrKeyPEM}},
		},
	})
}

// logEntry uploads a hashedrekord entry and returns cosign's bundle.
func (k *KeylessSigner) logEntry(ctx context.Context, payload, sig, certPEM []byte) ([]byte, int64, error) {
	entry, err := HashedRekord(payload, sig, certPEM)
	if err != nil {
		return nil, 0, err
	}
	url := strings.TrimRight(k.RekorURL, "/") + "/api/v1/log/entries"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(entry))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := k.client().Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("uploading to the transparency log %s: %w", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, 0, fmt.Errorf("POST %s returned %s: %q", url, resp.Status, strings.TrimSpace(string(raw)))
	}
	var entries map[string]struct {
		Body           string `json:"body"`
		IntegratedTime int64  `json:"integratedTime"`
		LogID          string `json:"logID"`
		LogIndex       int64  `json:"logIndex"`
		Verification   struct {
			SignedEntryTimestamp []byte `json:"signedEntryTimestamp"`
		} `json:"verification"`
	}
	if err := json.Unmarshal(raw, &entries); err != nil || len(entries) != 1 {
		return nil, 0, fmt.Errorf("transparency log %s returned an unexpected response", url)
	}
	for _, e := range entries {
		b, err := json.Marshal(RekorBundle{SignedEntryTimestamp: e.Verification.SignedEntryTimestamp,
			Payload: RekorPayload{Body: e.Body, IntegratedTime: e.IntegratedTime, LogIndex: e.LogIndex, LogID: e.LogID}})
		return b, e.LogIndex, err
	}
	return nil, 0, errors.New("unreachable")
}
