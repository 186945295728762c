package oidc

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// KeyNamePrefix names the issuer's signing keys in the key store:
// oidc-signing-1, oidc-signing-2, ... The highest number signs; the others
// are retired and stay published until every token they signed has expired.
const KeyNamePrefix = "oidc-signing-"

// JWKSPath is where the issuer serves its key set (GitLab's path).
const JWKSPath = "/oauth/discovery/keys"

// DiscoveryPath is the OIDC discovery document path.
const DiscoveryPath = "/.well-known/openid-configuration"

// Patterns are compiled on first use, not at package init: every hallmark
// process (a CLI run too) would otherwise pay for them at start-up.
var keyFileRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(KeyNamePrefix) + `([1-9][0-9]{0,8})\.pem$`)
})

// IssuerConfig configures the built-in issuer. Zero values select the
// defaults.
type IssuerConfig struct {
	// URL is the issuer URL (the server's external base URL); it is the
	// iss of every token and the issuer of the discovery document.
	URL string
	// DefaultTTL is the lifetime of a token minted without a TTL (default
	// 10 minutes).
	DefaultTTL time.Duration
	// MaxTTL is the longest lifetime a token may be minted with (default
	// 1 hour). A retired key stays published for MaxTTL plus a margin.
	MaxTTL time.Duration
	// RotationPeriod, if positive, rotates the signing key automatically
	// when the current key is older (checked when minting). Zero: rotate
	// only on request (Rotate, `hallmark token rotate-key`).
	RotationPeriod time.Duration
	// Now returns the current time (default time.Now; for tests).
	Now func() time.Time
}

// retainMargin is added to MaxTTL before a retired key leaves the key set:
// covers verifier leeway and clock skew.
const retainMargin = 5 * time.Minute

// reloadInterval is how often Mint looks for keys rotated by another
// replica sharing the key store.
const reloadInterval = 30 * time.Second

type signingKey struct {
	n       int
	kid     string // RFC 7638 thumbprint, base64url
	priv    *rsa.PrivateKey
	created time.Time // the key store item's creation time (items are never rewritten)
	retired time.Time // zero for the current key, else the successor's creation
}

// Issuer is the built-in OIDC issuer: it mints RS256 CI job ID tokens with
// GitLab's claim set and publishes its discovery document and JWKS. Safe for
// concurrent use.
type Issuer struct {
	log *slog.Logger
	ks  keystore.Store
	cfg IssuerConfig

	mu       sync.RWMutex
	keys     []*signingKey // ascending n; the last one signs
	lastScan time.Time

	rotateMu sync.Mutex
}

// NewIssuer loads the signing keys from ks (creating oidc-signing-1 on
// first start).
func NewIssuer(ctx context.Context, log *slog.Logger, ks keystore.Store, cfg IssuerConfig) (*Issuer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.URL == "" {
		return nil, errors.New("oidc: issuer URL is empty")
	}
	if cfg.DefaultTTL == 0 {
		cfg.DefaultTTL = 10 * time.Minute
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = time.Hour
	}
	if cfg.DefaultTTL < 0 || cfg.MaxTTL < 0 || cfg.RotationPeriod < 0 {
		return nil, errors.New("oidc: token TTLs and rotation period must not be negative")
	}
	if cfg.DefaultTTL > cfg.MaxTTL {
		return nil, fmt.Errorf("oidc: default token TTL %s exceeds the maximum %s", cfg.DefaultTTL, cfg.MaxTTL)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	i := &Issuer{log: log, ks: ks, cfg: cfg}
	if err := i.scan(ctx); err != nil {
		return nil, err
	}
	if len(i.keys) == 0 {
		if err := i.createKey(ctx, 1); err != nil {
			return nil, err
		}
		if err := i.scan(ctx); err != nil {
			return nil, err
		}
		if len(i.keys) == 0 {
			return nil, fmt.Errorf("oidc: no signing key in %s after creating one", ks.Where(keystore.KeyItem(KeyNamePrefix+"1")))
		}
		log.Info("oidc: created signing key", "kid", i.current().kid)
	}
	return i, nil
}

// URL is the issuer URL (iss).
func (i *Issuer) URL() string { return i.cfg.URL }

// scan reads the key store, loading keys not seen before.
func (i *Issuer) scan(ctx context.Context) error {
	items, err := i.ks.List(ctx, KeyNamePrefix)
	if err != nil {
		return fmt.Errorf("oidc: read the signing keys: %w", err)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	known := map[int]bool{}
	for _, k := range i.keys {
		known[k.n] = true
	}
	keys := slices.Clone(i.keys)
	for _, it := range items {
		m := keyFileRE().FindStringSubmatch(it.Name)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if known[n] {
			continue
		}
		k, err := loadSigningKey(i.ks, it, n)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b *signingKey) int { return a.n - b.n })
	for j := range keys {
		keys[j].retired = time.Time{}
		if j+1 < len(keys) {
			keys[j].retired = keys[j+1].created
		}
	}
	i.keys = keys
	i.lastScan = i.cfg.Now()
	return nil
}

func loadSigningKey(ks keystore.Store, it keystore.Item, n int) (*signingKey, error) {
	where := ks.Where(it.Name)
	s, err := keystore.Parse(it.Data)
	if err != nil {
		return nil, fmt.Errorf("oidc: signing key %s: %w", where, err)
	}
	priv, ok := s.(*rsa.PrivateKey)
	if !ok || priv.N.BitLen() < 2048 {
		return nil, fmt.Errorf("oidc: signing key %s must be an RSA key of at least 2048 bits (RS256, as GitLab and cosign expect)", where)
	}
	kid, err := thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &signingKey{n: n, kid: kid, priv: priv, created: it.Created}, nil
}

// createKey generates signing key n unless it exists (another replica may
// have created it first). A key's creation time decides when its
// predecessor leaves the JWKS; it is taken from the issuer's clock.
func (i *Issuer) createKey(ctx context.Context, n int) error {
	name := KeyNamePrefix + strconv.Itoa(n)
	k, err := keystore.Generate(keystore.RSA2048)
	if err != nil {
		return err
	}
	if err := keystore.Put(ctx, i.ks, name, k, i.cfg.Now()); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("oidc: create signing key %s: %w", name, err)
	}
	return nil
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url): the kid.
func thumbprint(pub crypto.PublicKey) (string, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("oidc: key thumbprint: %w", err)
	}
	return b64(tp), nil
}

// reload rescans the key store unless it was scanned less than minAge
// ago. Errors are logged: the keys already loaded stay in use.
func (i *Issuer) reload(ctx context.Context, minAge time.Duration) {
	i.mu.RLock()
	fresh := i.cfg.Now().Sub(i.lastScan) < minAge
	i.mu.RUnlock()
	if fresh {
		return
	}
	if err := i.scan(ctx); err != nil {
		i.log.ErrorContext(ctx, "oidc: rescanning signing keys", "err", err)
	}
}

func (i *Issuer) current() *signingKey {
	i.mu.RLock()
	defer i.mu.RUnlock()
	return i.keys[len(i.keys)-1]
}

// KeyID is the kid of the key that signs new tokens.
func (i *Issuer) KeyID() string { return i.current().kid }

// verificationKeys returns the current key and the retired keys that may
// still have valid tokens.
func (i *Issuer) verificationKeys() []verificationKey {
	now := i.cfg.Now()
	i.mu.RLock()
	defer i.mu.RUnlock()
	var out []verificationKey
	for j := len(i.keys) - 1; j >= 0; j-- { // newest first
		k := i.keys[j]
		if !k.retired.IsZero() && now.After(k.retired.Add(i.cfg.MaxTTL+retainMargin)) {
			continue
		}
		out = append(out, verificationKey{kid: k.kid, alg: string(jose.RS256), key: &k.priv.PublicKey})
	}
	return out
}

// Rotate creates a new signing key; new tokens are signed with it, and the
// previous keys stay in the JWKS until the tokens they signed have expired
// (MaxTTL plus a margin after their retirement). It returns the new kid.
// Two replicas rotating at once end up with one new key.
func (i *Issuer) Rotate(ctx context.Context) (string, error) {
	i.rotateMu.Lock()
	defer i.rotateMu.Unlock()
	if err := i.scan(ctx); err != nil {
		return "", err
	}
	return i.rotateLocked(ctx)
}

// maybeRotate rotates the key when automatic rotation is on and the current
// key is older than the period (checked again under the rotation lock, so
// concurrent mints rotate once), else picks up keys rotated elsewhere.
func (i *Issuer) maybeRotate(ctx context.Context, now time.Time) {
	period := i.cfg.RotationPeriod
	if period <= 0 || now.Sub(i.current().created) < period {
		i.reload(ctx, reloadInterval)
		return
	}
	i.rotateMu.Lock()
	defer i.rotateMu.Unlock()
	if err := i.scan(ctx); err != nil {
		i.log.ErrorContext(ctx, "oidc: rescanning signing keys", "err", err)
		return
	}
	if now.Sub(i.current().created) < period {
		return // another caller (or replica) rotated meanwhile
	}
	if _, err := i.rotateLocked(ctx); err != nil {
		i.log.ErrorContext(ctx, "oidc: automatic key rotation failed; signing with the current key", "err", err)
	}
}

func (i *Issuer) rotateLocked(ctx context.Context) (string, error) {
	n := i.current().n + 1
	if err := i.createKey(ctx, n); err != nil {
		return "", err
	}
	if err := i.scan(ctx); err != nil {
		return "", err
	}
	kid := i.current().kid
	i.log.InfoContext(ctx, "oidc: signing key rotated", "kid", kid, "key", n)
	return kid, nil
}

// JWKS returns the public key set (RFC 7517) of the current and still
// published retired keys, each with kid, use "sig" and alg "RS256".
func (i *Issuer) JWKS() []byte {
	var set jose.JSONWebKeySet
	for _, k := range i.verificationKeys() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.key, KeyID: k.kid, Algorithm: k.alg, Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil { // RSA public keys always marshal
		return []byte(`{"keys":[]}`)
	}
	return b
}

// Discovery returns the OpenID Provider metadata (OIDC Discovery 1.0) of
// the issuer. Only ID tokens for CI jobs are issued: there is no
// authorization or token endpoint for interactive clients.
func (i *Issuer) Discovery() []byte {
	doc := map[string]any{
		"issuer":                                i.cfg.URL,
		"jwks_uri":                              i.cfg.URL + JWKSPath,
		"response_types_supported":              []string{"id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid"},
		"claims_supported":                      claimsSupported,
		"claim_types_supported":                 []string{"normal"},
	}
	b, _ := json.Marshal(doc)
	return b
}
