package oidc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// TrustedIssuer is an external OIDC issuer whose ID tokens the Verifier
// accepts.
type TrustedIssuer struct {
	// URL is the issuer URL, compared byte for byte with the token's iss
	// and with the discovery document's issuer (e.g. https://gitlab.com).
	URL string
	// Type is TypeGitLab, TypeEmail or TypeGeneric.
	Type string
	// SubjectClaim names the claim that is the identity of a TypeGeneric
	// token (default "sub").
	SubjectClaim string
	// CACerts, if not empty, is a PEM bundle of CA certificates trusted
	// for TLS to this issuer (instead of the system roots).
	CACerts []byte
	// HTTPClient, if set, is used for discovery and JWKS requests (CACerts
	// is then ignored).
	HTTPClient *http.Client
}

// IssuerInfo describes one issuer a Verifier trusts.
type IssuerInfo struct {
	URL     string
	Type    string
	BuiltIn bool
}

// VerifierConfig configures a Verifier. Zero values select the defaults.
type VerifierConfig struct {
	Issuers []TrustedIssuer // external issuers
	// Leeway tolerates clock skew on exp, nbf and iat (default 1 minute).
	Leeway time.Duration
	// MaxTokenSize is the longest token accepted, in bytes (default 16 KiB;
	// GitLab tokens are about 1.5 KiB).
	MaxTokenSize int
	// KeySetTTL is how long an external issuer's discovery document and
	// JWKS are cached (default 10 minutes).
	KeySetTTL time.Duration
	// RefreshInterval is the shortest time between two fetches of an
	// external key set triggered by an unknown kid (default 10 seconds).
	RefreshInterval time.Duration
	// FetchTimeout bounds one discovery or JWKS request (default 10 s).
	FetchTimeout time.Duration
	// Now returns the current time (default time.Now; for tests).
	Now func() time.Time
}

func (c *VerifierConfig) defaults() {
	if c.Leeway == 0 {
		c.Leeway = time.Minute
	}
	if c.MaxTokenSize == 0 {
		c.MaxTokenSize = 16 << 10
	}
	if c.KeySetTTL == 0 {
		c.KeySetTTL = 10 * time.Minute
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 10 * time.Second
	}
	if c.FetchTimeout == 0 {
		c.FetchTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Verifier verifies ID tokens from the built-in issuer (in process, from
// its key set) and from trusted external issuers (discovery + JWKS, cached).
// It is safe for concurrent use.
type Verifier struct {
	log     *slog.Logger
	cfg     VerifierConfig
	builtin *Issuer
	remotes map[string]*remoteIssuer
	order   []string
}

// NewVerifier returns a Verifier trusting builtin (may be nil) and
// cfg.Issuers. External issuers are contacted lazily, on the first token
// that names them, so an unreachable issuer does not stop the server.
func NewVerifier(log *slog.Logger, builtin *Issuer, cfg VerifierConfig) (*Verifier, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.defaults()
	v := &Verifier{log: log, cfg: cfg, builtin: builtin, remotes: map[string]*remoteIssuer{}}
	for _, ti := range cfg.Issuers {
		if err := validateTrustedIssuer(ti); err != nil {
			return nil, err
		}
		if builtin != nil && ti.URL == builtin.URL() {
			return nil, fmt.Errorf("oidc: trusted issuer %s is this server's built-in issuer; remove it from the external issuer list", ti.URL)
		}
		if _, dup := v.remotes[ti.URL]; dup {
			return nil, fmt.Errorf("oidc: trusted issuer %s is listed twice", ti.URL)
		}
		client := ti.HTTPClient
		if client == nil {
			c, err := issuerHTTPClient(ti)
			if err != nil {
				return nil, err
			}
			client = c
		}
		if ti.Type == TypeGeneric && ti.SubjectClaim == "" {
			ti.SubjectClaim = "sub"
		}
		v.remotes[ti.URL] = &remoteIssuer{cfg: ti, client: client, log: log}
		v.order = append(v.order, ti.URL)
	}
	return v, nil
}

func validateTrustedIssuer(ti TrustedIssuer) error {
	if err := ValidateIssuerURL(ti.URL); err != nil {
		return err
	}
	switch ti.Type {
	case TypeGitLab, TypeEmail:
		if ti.SubjectClaim != "" {
			return fmt.Errorf("oidc: issuer %s: subject-claim is only for type %s", ti.URL, TypeGeneric)
		}
	case TypeGeneric:
	default:
		return fmt.Errorf("oidc: issuer %s: unknown type %q (use %s, %s or %s)", ti.URL, ti.Type, TypeGitLab, TypeEmail, TypeGeneric)
	}
	return nil
}

func issuerHTTPClient(ti TrustedIssuer) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(ti.CACerts) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ti.CACerts) {
			return nil, fmt.Errorf("oidc: issuer %s: CA certificates hold no PEM certificate", ti.URL)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{
		Transport: tr,
		// An issuer's discovery and JWKS must be served where they are
		// published; never follow a redirect to somewhere else.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// Issuers lists the trusted issuers, the built-in one first.
func (v *Verifier) Issuers() []IssuerInfo {
	var out []IssuerInfo
	if v.builtin != nil {
		out = append(out, IssuerInfo{URL: v.builtin.URL(), Type: TypeGitLab, BuiltIn: true})
	}
	for _, u := range v.order {
		out = append(out, IssuerInfo{URL: u, Type: v.remotes[u].cfg.Type})
	}
	return out
}

// Verify checks raw, a compact JWS ID token: issuer trusted (exact iss
// match), signature by one of the issuer's keys with an accepted asymmetric
// algorithm, audience contains audience, exp/nbf/iat valid within the
// leeway, and the claims the issuer type needs. Errors wrap the sentinels
// in errors.go.
func (v *Verifier) Verify(ctx context.Context, raw, audience string) (*Token, error) {
	if audience == "" {
		return nil, fmt.Errorf("%w: no expected audience given to the verifier", ErrAudience)
	}
	raw = strings.TrimSpace(raw)
	u, err := parseUnverified(raw, v.cfg.MaxTokenSize)
	if err != nil {
		return nil, err
	}
	var (
		payload []byte
		kid     string
		typ     string
	)
	switch {
	case v.builtin != nil && u.iss == v.builtin.URL():
		typ = TypeGitLab
		payload, kid, err = v.verifyBuiltin(ctx, raw, u)
	case v.remotes[u.iss] != nil:
		r := v.remotes[u.iss]
		typ = r.cfg.Type
		payload, kid, err = r.verify(ctx, raw, u, v.cfg)
	default:
		return nil, fmt.Errorf("%w: %q is not a trusted issuer (trusted: %s); add it to the server's --oidc-issuer list", ErrUnknownIssuer, u.iss, v.trustedList())
	}
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", u.iss, err)
	}
	tok, err := v.checkClaims(payload, u.iss, typ, audience)
	if err != nil {
		return nil, fmt.Errorf("issuer %s: %w", u.iss, err)
	}
	tok.KeyID = kid
	return tok, nil
}

func (v *Verifier) trustedList() string {
	var s []string
	for _, i := range v.Issuers() {
		s = append(s, i.URL)
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func (v *Verifier) verifyBuiltin(ctx context.Context, raw string, u *unverifiedJWT) ([]byte, string, error) {
	allowed := []jose.SignatureAlgorithm{jose.RS256}
	if err := checkAlg(u.header.Alg, allowed); err != nil {
		return nil, "", err
	}
	keys := v.builtin.verificationKeys()
	if u.header.Kid != "" && !hasKid(keys, u.header.Kid) {
		// Another replica may have rotated the key: look at the key
		// store again (rate-limited) before giving up.
		v.builtin.reload(ctx, time.Second)
		keys = v.builtin.verificationKeys()
		if !hasKid(keys, u.header.Kid) {
			return nil, "", fmt.Errorf("%w: kid %q is not in the issuer's key set (keys: %s)", ErrUnknownKey, u.header.Kid, kidList(keys))
		}
	}
	return verifySignature(raw, u.header, allowed, keys)
}

func kidList(keys []verificationKey) string {
	s := make([]string, len(keys))
	for i, k := range keys {
		s[i] = k.kid
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// checkClaims decodes the verified payload and checks the registered claims
// and the claims the issuer type needs.
func (v *Verifier) checkClaims(payload []byte, iss, typ, audience string) (*Token, error) {
	claims := map[string]any{}
	if err := decodeJSONObject(payload, &claims); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	if got, _ := claims["iss"].(string); got != iss {
		return nil, fmt.Errorf("%w: iss %q does not match the issuer %q", ErrMalformed, got, iss)
	}
	tok := &Token{Issuer: iss, IssuerType: typ, Claims: claims}
	now := v.cfg.Now()
	leeway := v.cfg.Leeway

	exp, ok, err := numericDate(claims, "exp")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: no exp (expiry) claim; tokens without an expiry are not accepted", ErrClaims)
	}
	tok.Expiry = exp
	if !now.Before(exp.Add(leeway)) {
		return nil, fmt.Errorf("%w: expired at %s (now %s); get a fresh token", ErrExpired, exp.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if nbf, ok, err := numericDate(claims, "nbf"); err != nil {
		return nil, err
	} else if ok {
		tok.NotBefore = nbf
		if nbf.After(now.Add(leeway)) {
			return nil, fmt.Errorf("%w: not before %s (now %s); check the clocks of the issuer and this server", ErrNotYetValid, nbf.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	if iat, ok, err := numericDate(claims, "iat"); err != nil {
		return nil, err
	} else if ok {
		tok.IssuedAt = iat
		if iat.After(now.Add(leeway)) {
			return nil, fmt.Errorf("%w: issued in the future at %s (now %s); check the clocks of the issuer and this server", ErrNotYetValid, iat.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}

	auds, err := audiences(claims)
	if err != nil {
		return nil, err
	}
	tok.Audience = auds
	if !slices.Contains(auds, audience) {
		return nil, fmt.Errorf("%w: token audience %q does not include %q; request the token with aud=%s", ErrAudience, auds, audience, audience)
	}

	switch s := claims["sub"].(type) {
	case string:
		tok.Subject = s
	case nil:
	default:
		return nil, fmt.Errorf("%w: sub must be a string, got %T", ErrMalformed, s)
	}
	if jti, ok := claims["jti"].(string); ok {
		tok.ID = jti
	}

	switch typ {
	case TypeEmail:
		email, _ := claims["email"].(string)
		if email == "" {
			return nil, fmt.Errorf("%w: issuer type email needs an email claim (request the email scope)", ErrClaims)
		}
		if !claimTrue(claims["email_verified"]) {
			return nil, fmt.Errorf("%w: email %q is not verified by the identity provider", ErrClaims, email)
		}
		tok.Identity = email
	case TypeGeneric:
		name := v.remotes[iss].cfg.SubjectClaim
		s, ok := tok.StringClaim(name)
		if !ok || s == "" {
			return nil, fmt.Errorf("%w: subject claim %q is missing or not a string", ErrClaims, name)
		}
		tok.Identity = s
	default: // TypeGitLab
		if tok.Subject == "" {
			return nil, fmt.Errorf("%w: no sub claim", ErrClaims)
		}
		// Proof of possession is over email when present and verified
		// (cosign's rule), otherwise over sub. GitLab tokens carry no
		// email claim (user_email is a different claim).
		if email, _ := claims["email"].(string); email != "" && claimTrue(claims["email_verified"]) {
			tok.Identity = email
		} else {
			tok.Identity = tok.Subject
		}
	}
	if tok.Identity == "" {
		return nil, fmt.Errorf("%w: no sub claim", ErrClaims)
	}
	return tok, nil
}

// claimTrue accepts true and "true" (some providers send a string).
func claimTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}
