package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// External token service (--auth=token). The registry is then a pure
// resource server of docker's token protocol, as distribution is with
// auth.token: clients are challenged with the external service's realm,
// fetch a token there (GitLab's /jwt/auth with their CI job token,
// password or personal access token), and every /v2/ request is
// authorized from that token's `access` claim alone. A token is accepted
// when
//
//   - its algorithm is asymmetric (RS, PS, ES 256/384/512 or EdDSA; "none"
//     and the HMAC algorithms are refused before any key is looked at, so
//     the public key can never serve as an HMAC secret);
//   - its signing key is one of --token-cert's: named by its `kid`, which
//     may be the key's RFC 7638 JWK thumbprint (what distribution v3
//     matches) or its libtrust key ID (what GitLab and distribution v2
//     send: SHA-256 of the DER public key, first 240 bits, base32, in
//     groups of four joined by ':'), or given as an x5c chain that
//     verifies to a certificate of the bundle;
//   - the signature verifies, iss is --token-issuer, aud contains
//     --token-service, exp has not passed and nbf and iat are not in the
//     future, each with 60 s of leeway (distribution's; GitLab's clock is
//     another host's);
//   - its access claim is well formed and within bounds.
//
// The access entries are taken as distribution takes them: a type, a name
// and actions, where "*" stands for every action; a name matches only
// itself, so an entry for group/app grants nothing on group/app/sub or
// group/other, and GitLab's "group/app/*" entries (for its own
// repository-listing and rename API, which Hallmark does not have) match
// no repository. GitLab's per-entry meta is read for one thing,
// tag_deny_access_patterns (protected container tags): a tag matching a
// push pattern cannot be pushed, one matching a delete pattern cannot be
// deleted, and while a delete pattern applies a manifest cannot be deleted
// by digest (the guard cannot see which tags point at it). Patterns are
// RE2 and match anywhere in the tag unless anchored; a pattern that does
// not compile denies the action altogether.

// KindExternal is the principal kind of a token from the external token
// service; the principal's name is the token's sub (GitLab: the user
// name, empty for anonymous pulls).
const KindExternal = "external"

// externalLeeway tolerates clock skew between this server and the token
// service (distribution's value).
const externalLeeway = 60 * time.Second

// Bounds on what an external token may hold; a token beyond them is
// refused (bounded work per token, whatever is presented).
const (
	maxExternalTokenLength = 16 << 10
	maxExternalAccess      = 256
	maxExternalActions     = 16
	maxExternalName        = 512
	maxTagPatterns         = 32
	maxTagPatternLength    = 256
)

// externalAlgorithms are the signature algorithms accepted from the token
// service: asymmetric only.
var externalAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// ExternalConfig configures the verifier of an external token service's
// tokens.
type ExternalConfig struct {
	// Realm is the service's token endpoint, put in the Bearer challenge
	// (GitLab: https://gitlab.example.com/jwt/auth).
	Realm string
	// Service is the challenge's service and the aud tokens must carry
	// (GitLab: container_registry).
	Service string
	// Issuer is the iss tokens must carry (GitLab: its registry issuer,
	// gitlab-issuer or omnibus-gitlab-issuer).
	Issuer string
	// Bundle is PEM: the certificates and/or public keys whose private keys
	// sign the tokens (GitLab: the certificate of its registry key).
	Bundle []byte
}

// ExternalTokens verifies the tokens of an external token service.
type ExternalTokens struct {
	cfg   ExternalConfig
	keys  map[string]crypto.PublicKey // by kid: JWK thumbprint and libtrust key ID
	roots *x509.CertPool              // the bundle's certificates, for x5c chains
}

// NewExternalTokens parses the key bundle and returns the verifier.
func NewExternalTokens(cfg ExternalConfig) (*ExternalTokens, error) {
	if cfg.Realm == "" || cfg.Service == "" || cfg.Issuer == "" {
		return nil, errors.New("external token service: realm, service and issuer are required")
	}
	keys, certs, err := ParseKeyBundle(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	x := &ExternalTokens{cfg: cfg, keys: map[string]crypto.PublicKey{}, roots: x509.NewCertPool()}
	for _, c := range certs {
		x.roots.AddCert(c)
	}
	for _, k := range keys {
		tp, err := (&jose.JSONWebKey{Key: k}).Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("token key bundle: %w", err)
		}
		lt, err := LibtrustKeyID(k)
		if err != nil {
			return nil, fmt.Errorf("token key bundle: %w", err)
		}
		x.keys[base64.RawURLEncoding.EncodeToString(tp)] = k
		x.keys[lt] = k
	}
	return x, nil
}

// Realm is the token endpoint clients are sent to.
func (x *ExternalTokens) Realm() string { return x.cfg.Realm }

// Service is the service name of the challenge and the tokens' audience.
func (x *ExternalTokens) Service() string { return x.cfg.Service }

// KeyIDs returns the key IDs a token may name, for the start-up log.
func (x *ExternalTokens) KeyIDs() []string {
	out := make([]string, 0, len(x.keys))
	for k := range x.keys {
		out = append(out, k)
	}
	return out
}

// ParseKeyBundle parses a PEM bundle of certificates ("CERTIFICATE") and
// public keys ("PUBLIC KEY", "RSA PUBLIC KEY"). It returns every public
// key (each certificate's too) and the certificates. Private keys and
// other blocks are refused, as is an RSA key under 2048 bits.
func ParseKeyBundle(bundle []byte) (keys []crypto.PublicKey, certs []*x509.Certificate, err error) {
	rest := bundle
	for n := 1; ; n++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var k crypto.PublicKey
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("token key bundle, block %d: certificate: %w", n, err)
			}
			certs = append(certs, c)
			k = c.PublicKey
		case "PUBLIC KEY":
			if k, err = x509.ParsePKIXPublicKey(b.Bytes); err != nil {
				return nil, nil, fmt.Errorf("token key bundle, block %d: public key: %w", n, err)
			}
		case "RSA PUBLIC KEY":
			if k, err = x509.ParsePKCS1PublicKey(b.Bytes); err != nil {
				return nil, nil, fmt.Errorf("token key bundle, block %d: RSA public key: %w", n, err)
			}
		default:
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, nil, fmt.Errorf("token key bundle, block %d is a private key: give the certificate or public key of the token service's signing key, never its private key", n)
			}
			return nil, nil, fmt.Errorf("token key bundle, block %d: unsupported PEM type %q (want CERTIFICATE or PUBLIC KEY)", n, b.Type)
		}
		if err := checkTokenKey(k); err != nil {
			return nil, nil, fmt.Errorf("token key bundle, block %d: %w", n, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("token key bundle holds no certificate or public key (want PEM CERTIFICATE or PUBLIC KEY blocks)")
	}
	return keys, certs, nil
}

func checkTokenKey(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits; at least 2048 are required", k.N.BitLen())
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported key type %T (want RSA, ECDSA or Ed25519)", k)
	}
	return nil
}

// LibtrustKeyID returns the key ID docker's libtrust gives pub, which
// GitLab puts in the kid of its registry tokens: the SHA-256 of the DER
// (PKIX) public key, its first 240 bits in base32, in groups of four
// characters joined by ':'.
func LibtrustKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("libtrust key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	enc := base32.StdEncoding.EncodeToString(sum[:30])
	var b strings.Builder
	for i := 0; i < len(enc); i += 4 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(enc[i : i+4])
	}
	return b.String(), nil
}

// externalClaims is the claim set of an external token as far as the
// registry reads it (GitLab's JSONWebToken::RSAToken with the container
// registry's claims; auth_type and the nested user token are not needed).
type externalClaims struct {
	jwt.Claims
	Access []externalAccess `json:"access"`
}

// externalAccess is one access entry: distribution's ResourceActions plus
// GitLab's meta.
type externalAccess struct {
	Type    string        `json:"type"`
	Class   string        `json:"class,omitempty"`
	Name    string        `json:"name"`
	Actions []string      `json:"actions"`
	Meta    *externalMeta `json:"meta,omitempty"`
}

// externalMeta is GitLab's meta of an access entry; project_path,
// project_id and root_namespace_id are informational here.
type externalMeta struct {
	TagDenyAccessPatterns map[string][]string `json:"tag_deny_access_patterns,omitempty"`
}

// tagRule is the protected-tag rule of one repository and action: the
// patterns a tag must not match (deny: no pattern compiled, so every tag
// is denied).
type tagRule struct {
	patterns []*regexp.Regexp
	denyAll  bool
}

func (r tagRule) denies(tag string) bool {
	if r.denyAll {
		return true
	}
	for _, p := range r.patterns {
		if p.MatchString(tag) {
			return true
		}
	}
	return false
}

// tagRuleKey names a repository and action (push or delete).
type tagRuleKey struct{ repo, action string }

// Verify verifies a token of the external service (see the rules above)
// and returns its claims as an access token's: the access entries, and
// the principal (KindExternal, named by sub). Errors: ErrTokenExpired,
// ErrTokenInvalid.
func (x *ExternalTokens) Verify(raw string, now time.Time) (*Claims, error) {
	invalid := func(format string, a ...any) (*Claims, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrTokenInvalid}, a...)...)
	}
	if len(raw) > maxExternalTokenLength {
		return invalid("longer than %d bytes", maxExternalTokenLength)
	}
	tok, err := jwt.ParseSigned(raw, externalAlgorithms)
	if err != nil {
		return invalid("not a JWS signed with RS, PS, ES 256/384/512 or EdDSA: %v", err)
	}
	if len(tok.Headers) != 1 {
		return invalid("want exactly one signature")
	}
	key, err := x.signingKey(tok.Headers[0], now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	var c externalClaims
	if err := tok.Claims(key, &c); err != nil {
		return invalid("signature or claims: %v", err)
	}
	if c.Expiry == nil {
		return invalid("exp is required")
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: x.cfg.Issuer, AnyAudience: jwt.Audience{x.cfg.Service}, Time: now}, externalLeeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, ErrTokenExpired
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return invalid("issuer %s is not the token service's (%s)", quoteShort(c.Issuer), x.cfg.Issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return invalid("audience %v does not name this registry's service %q", quoteList(c.Audience), x.cfg.Service)
	case err != nil:
		return invalid("%v", err)
	}
	out := &Claims{Claims: c.Claims, Access: []Access{}, Use: useAccess, Kind: KindExternal, User: c.Subject}
	if err := out.addExternalAccess(c.Access); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	return out, nil
}

// signingKey finds the key a token's header names: an x5c chain that
// verifies to a certificate of the bundle, else the kid.
func (x *ExternalTokens) signingKey(h jose.Header, now time.Time) (crypto.PublicKey, error) {
	chains, err := h.Certificates(x509.VerifyOptions{Roots: x.roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	switch {
	case err == nil:
		return chains[0][0].PublicKey, nil
	case !errors.Is(err, jose.ErrMissingX5cHeader):
		return nil, fmt.Errorf("its x5c chain does not verify to a certificate of the token key bundle: %v", err)
	case h.KeyID == "":
		return nil, errors.New("its header names no key: want a kid (key thumbprint or libtrust key ID) or an x5c chain")
	}
	k, ok := x.keys[h.KeyID]
	if !ok {
		return nil, fmt.Errorf("signed by key %s, which is not in the token key bundle", quoteShort(h.KeyID))
	}
	return k, nil
}

// addExternalAccess checks the access entries and adds them (and their
// protected-tag rules) to c.
func (c *Claims) addExternalAccess(entries []externalAccess) error {
	if len(entries) > maxExternalAccess {
		return fmt.Errorf("access claim has %d entries; at most %d are accepted", len(entries), maxExternalAccess)
	}
	for i, e := range entries {
		if e.Type == "" || e.Name == "" || len(e.Name) > maxExternalName {
			return fmt.Errorf("access entry %d: type and name must be set, the name at most %d bytes", i, maxExternalName)
		}
		if len(e.Actions) > maxExternalActions {
			return fmt.Errorf("access entry %d has %d actions; at most %d are accepted", i, len(e.Actions), maxExternalActions)
		}
		c.Access = append(c.Access, Access{Type: e.Type, Name: e.Name, Actions: e.Actions})
		if e.Meta == nil || e.Type != TypeRepository {
			continue
		}
		for action, pats := range e.Meta.TagDenyAccessPatterns {
			if len(pats) == 0 {
				continue
			}
			if len(pats) > maxTagPatterns {
				return fmt.Errorf("access entry %d has %d tag patterns for %s; at most %d are accepted", i, len(pats), action, maxTagPatterns)
			}
			if c.tagRules == nil {
				c.tagRules = map[tagRuleKey]tagRule{}
			}
			k := tagRuleKey{e.Name, action}
			r := c.tagRules[k]
			for _, p := range pats {
				re, err := regexp.Compile(p)
				if err != nil || len(p) > maxTagPatternLength {
					r.denyAll = true // what the token service meant cannot be known: deny
					continue
				}
				r.patterns = append(r.patterns, re)
			}
			c.tagRules[k] = r
		}
	}
	return nil
}

// tagDenied says why the token's protected-tag rules refuse action (push
// or delete) on reference (a tag, or a digest for a delete) of repo; ""
// when they do not.
func (c *Claims) tagDenied(repo, action, reference string, isDigest bool) string {
	r, ok := c.tagRules[tagRuleKey{repo, action}]
	if !ok {
		return ""
	}
	if isDigest {
		if action == ActionDelete {
			return "the token service protects tags of " + repo + " from deletion by this token; delete by tag, not by digest"
		}
		return ""
	}
	if r.denies(reference) {
		return "tag " + reference + " of " + repo + " is protected: the token service denies " + action + " on it"
	}
	return ""
}

// quoteShort quotes an attacker-chosen string for an error message,
// truncated.
func quoteShort(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return fmt.Sprintf("%q", s)
}

func quoteList(l []string) string {
	if len(l) > 4 {
		l = append(l[:4:4], "...")
	}
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = quoteShort(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// protectedTag applies an external token's protected-tag rules to a
// manifest request: a PUT pushes its tag reference and its tag query
// parameters (OCI 1.1), a DELETE deletes its reference. It says why the
// request is refused, "" when it is not.
func protectedTag(c *Claims, r *http.Request, ep Endpoint) string {
	ref := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	isDigest := oci.IsDigestReference(ref)
	switch r.Method {
	case http.MethodPut:
		if !isDigest {
			if why := c.tagDenied(ep.Repository, ActionPush, ref, false); why != "" {
				return why
			}
		}
		for _, t := range r.URL.Query()["tag"] {
			if why := c.tagDenied(ep.Repository, ActionPush, t, false); why != "" {
				return why
			}
		}
	case http.MethodDelete:
		return c.tagDenied(ep.Repository, ActionDelete, ref, isDigest)
	}
	return ""
}
