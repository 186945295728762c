package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// maxDocSize bounds a discovery document or JWKS response.
const maxDocSize = 1 << 20

// ValidateIssuerURL checks that u can be a trusted issuer URL: https (or
// http to a loopback host, for tests and single-machine setups), a host, no
// query or fragment.
func ValidateIssuerURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("oidc: issuer URL %q: %w", u, err)
	}
	if p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
		return fmt.Errorf("oidc: issuer URL %q: want https://host[:port][/path] without query, fragment or user info", u)
	}
	switch p.Scheme {
	case "https":
	case "http":
		if !isLoopback(p.Hostname()) {
			return fmt.Errorf("oidc: issuer URL %q: plain http is only allowed for a loopback host; use https", u)
		}
	default:
		return fmt.Errorf("oidc: issuer URL %q: scheme must be https", u)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// remoteIssuer caches one external issuer's discovery document and JWKS.
type remoteIssuer struct {
	cfg    TrustedIssuer
	client *http.Client
	log    *slog.Logger

	mu          sync.Mutex
	keys        []verificationKey
	algs        []jose.SignatureAlgorithm
	fetched     time.Time // last successful fetch
	lastAttempt time.Time // last fetch, successful or not
	lastErr     error     // outcome of the last fetch when it failed
}

// verify checks the signature of raw with the issuer's cached key set,
// fetching it when stale and refetching once (rate-limited) on an unknown
// kid.
func (r *remoteIssuer) verify(ctx context.Context, raw string, u *unverifiedJWT, cfg VerifierConfig) ([]byte, string, error) {
	// Refuse none/HS* before any network traffic.
	if err := checkAlg(u.header.Alg, asymmetricAlgs); err != nil {
		return nil, "", err
	}
	keys, algs, err := r.keySet(ctx, cfg, false)
	if err != nil {
		return nil, "", err
	}
	if u.header.Kid != "" && !hasKid(keys, u.header.Kid) {
		// The issuer may have rotated its key: refresh once.
		if k, a, err := r.keySet(ctx, cfg, true); err == nil {
			keys, algs = k, a
		} else {
			r.log.WarnContext(ctx, "oidc: refreshing issuer keys for an unknown kid failed", "issuer", r.cfg.URL, "err", err)
		}
		if !hasKid(keys, u.header.Kid) {
			return nil, "", fmt.Errorf("%w: kid %q is not in the issuer's JWKS (keys: %s)", ErrUnknownKey, u.header.Kid, kidList(keys))
		}
	}
	if err := checkAlg(u.header.Alg, algs); err != nil {
		return nil, "", err
	}
	return verifySignature(raw, u.header, algs, keys)
}

// keySet returns the cached keys, fetching them when there are none, when
// they are older than the TTL, or (force) when the last fetch is older than
// the refresh interval. A failed fetch keeps serving the previous keys;
// with none, its error is returned until the refresh interval has passed.
func (r *remoteIssuer) keySet(ctx context.Context, cfg VerifierConfig, force bool) ([]verificationKey, []jose.SignatureAlgorithm, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := cfg.Now()
	need := r.keys == nil || now.Sub(r.fetched) >= cfg.KeySetTTL || force
	if need && !r.lastAttempt.IsZero() && now.Sub(r.lastAttempt) < cfg.RefreshInterval {
		// Fetched (or failed) moments ago: do not hammer the issuer. Any
		// token naming it triggers a fetch, so without keys this also
		// bounds what a flood of forged tokens can make us send.
		switch {
		case r.keys != nil:
			need = false
		case r.lastErr != nil:
			return nil, nil, r.lastErr
		}
	}
	if need {
		prevAttempt := r.lastAttempt
		r.lastAttempt = now
		fctx, cancel := context.WithTimeout(ctx, cfg.FetchTimeout)
		keys, algs, err := r.fetch(fctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			// The caller went away: that says nothing about the issuer,
			// and must not hold the next callers back.
			r.lastAttempt = prevAttempt
			return nil, nil, fmt.Errorf("%w: %v", ErrIssuerUnavailable, ctx.Err())
		}
		if err != nil {
			r.lastErr = err
			if r.keys == nil {
				return nil, nil, err
			}
			r.log.WarnContext(ctx, "oidc: issuer key refresh failed; using the cached keys", "issuer", r.cfg.URL, "age", now.Sub(r.fetched).String(), "err", err)
		} else {
			r.keys, r.algs, r.fetched, r.lastErr = keys, algs, now, nil
		}
	}
	return r.keys, r.algs, nil
}

type discoveryDoc struct {
	Issuer  string   `json:"issuer"`
	JWKSURI string   `json:"jwks_uri"`
	Algs    []string `json:"id_token_signing_alg_values_supported"`
}

// fetch reads the discovery document and the JWKS it points at.
func (r *remoteIssuer) fetch(ctx context.Context) ([]verificationKey, []jose.SignatureAlgorithm, error) {
	wellKnown := strings.TrimSuffix(r.cfg.URL, "/") + "/.well-known/openid-configuration"
	var doc discoveryDoc
	if err := r.getJSON(ctx, wellKnown, &doc); err != nil {
		return nil, nil, err
	}
	if doc.Issuer != r.cfg.URL {
		return nil, nil, fmt.Errorf("%w: discovery document %s names issuer %q, want exactly %q", ErrIssuerUnavailable, wellKnown, doc.Issuer, r.cfg.URL)
	}
	if doc.JWKSURI == "" {
		return nil, nil, fmt.Errorf("%w: discovery document %s has no jwks_uri", ErrIssuerUnavailable, wellKnown)
	}
	ju, err := url.Parse(doc.JWKSURI)
	iu, _ := url.Parse(r.cfg.URL)
	if err != nil || (ju.Scheme != "https" && !(ju.Scheme == "http" && iu.Scheme == "http" && isLoopback(ju.Hostname()))) {
		return nil, nil, fmt.Errorf("%w: jwks_uri %q must be an https URL", ErrIssuerUnavailable, doc.JWKSURI)
	}
	algs := []jose.SignatureAlgorithm{jose.RS256} // OIDC Discovery default
	if len(doc.Algs) > 0 {
		algs = algs[:0]
		for _, a := range doc.Algs {
			for _, ok := range asymmetricAlgs {
				if a == string(ok) {
					algs = append(algs, ok)
				}
			}
		}
		if len(algs) == 0 {
			return nil, nil, fmt.Errorf("%w: issuer advertises no asymmetric signing algorithm (%s)", ErrIssuerUnavailable, strings.Join(doc.Algs, ", "))
		}
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := r.getJSON(ctx, doc.JWKSURI, &set); err != nil {
		return nil, nil, err
	}
	keys := parseJWKS(set.Keys, r.log, r.cfg.URL)
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("%w: JWKS %s holds no usable public signing key", ErrIssuerUnavailable, doc.JWKSURI)
	}
	return keys, algs, nil
}

// parseJWKS keeps the public signature keys of a JWKS, skipping (and
// logging) keys it cannot use rather than failing the whole set.
func parseJWKS(raw []json.RawMessage, log *slog.Logger, issuer string) []verificationKey {
	var keys []verificationKey
	for _, m := range raw {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(m); err != nil {
			log.Debug("oidc: skipping unusable JWKS entry", "issuer", issuer, "err", err)
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pub := k.Public()
		switch pub.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue // symmetric keys are never verification keys
		}
		keys = append(keys, verificationKey{kid: k.KeyID, alg: k.Algorithm, key: pub.Key})
	}
	return keys
}

func (r *remoteIssuer) getJSON(ctx context.Context, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrIssuerUnavailable, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: GET %s: HTTP %d", ErrIssuerUnavailable, u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocSize+1))
	if err != nil {
		return fmt.Errorf("%w: GET %s: %v", ErrIssuerUnavailable, u, err)
	}
	if len(body) > maxDocSize {
		return fmt.Errorf("%w: GET %s: response larger than %d bytes", ErrIssuerUnavailable, u, maxDocSize)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: GET %s: not valid JSON: %v", ErrIssuerUnavailable, u, err)
	}
	return nil
}
