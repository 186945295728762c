package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Token errors. ErrTokenExpired is the ordinary end of a token's life
// (clients fetch a new one); ErrTokenInvalid covers forged, tampered,
// foreign and malformed tokens.
var (
	ErrTokenExpired = errors.New("token expired")
	ErrTokenInvalid = errors.New("token invalid")
)

// Token uses, so an access token cannot be replayed as a refresh token or
// the other way round.
const (
	useAccess  = "access"
	useRefresh = "refresh"
)

// maxTokenLength bounds what is parsed of a presented token.
const maxTokenLength = 8 << 10

// clockLeeway tolerates clock skew between replicas sharing the key.
const clockLeeway = 10 * time.Second

// Claims are the claims of Hallmark's registry tokens: the registered JWT
// claims, docker's `access` claim, and the principal the token speaks for.
type Claims struct {
	jwt.Claims
	Access []Access `json:"access"`
	Use    string   `json:"token_use"`
	// Principal details (sub is the principal's name).
	Kind    string `json:"hm_kind,omitempty"`
	User    string `json:"hm_user,omitempty"`
	Project string `json:"hm_project,omitempty"`
	JobID   string `json:"hm_job,omitempty"`
	CredID  int64  `json:"hm_cred,omitempty"`
	// OIDCIssuer is set on refresh tokens of OIDC logins.
	OIDCIssuer string `json:"hm_oidc_iss,omitempty"`
	// tagRules are an external token's protected-tag rules (external.go).
	tagRules map[tagRuleKey]tagRule
}

// Principal rebuilds the principal a token was issued to (for audit and
// for refresh).
func (c *Claims) Principal() Principal {
	return Principal{Kind: c.Kind, Name: c.Subject, User: c.User, Project: c.Project, JobID: c.JobID,
		CredID: c.CredID, OIDCIssuer: c.OIDCIssuer}
}

// TokenSigner issues and verifies the registry's access and refresh
// tokens: compact JWS, ES256, with the key's RFC 7638 thumbprint as kid.
type TokenSigner struct {
	pub     *ecdsa.PublicKey
	kid     string
	signer  jose.Signer
	issuer  string
	service string
}

// NewTokenSigner returns a signer for tokens with iss=issuer and
// aud=service. key must be an ECDSA P-256 private key.
func NewTokenSigner(key crypto.Signer, issuer, service string) (*TokenSigner, error) {
	priv, ok := key.(*ecdsa.PrivateKey)
	if !ok || priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("registry token key must be ECDSA P-256 (ES256), got %T", key)
	}
	if issuer == "" || service == "" {
		return nil, errors.New("registry token issuer and service must be set")
	}
	tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("registry token key thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: priv, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("registry token signer: %w", err)
	}
	return &TokenSigner{pub: &priv.PublicKey, kid: kid, signer: s, issuer: issuer, service: service}, nil
}

// Service is the token audience (the registry's service name).
func (s *TokenSigner) Service() string { return s.service }

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sign issues a token of the given use for p, valid from now until exp.
func (s *TokenSigner) sign(use string, p Principal, access []Access, now, exp time.Time) (string, error) {
	if access == nil && use == useAccess {
		access = []Access{}
	}
	c := Claims{
		Claims: jwt.Claims{
			Issuer:    s.issuer,
			Subject:   p.Name,
			Audience:  jwt.Audience{s.service},
			Expiry:    jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        randomID(),
		},
		Access: access, Use: use,
		Kind: p.Kind, User: p.User, Project: p.Project, JobID: p.JobID, CredID: p.CredID,
	}
	if use == useRefresh {
		c.OIDCIssuer = p.OIDCIssuer
	}
	tok, err := jwt.Signed(s.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("sign registry token: %w", err)
	}
	return tok, nil
}

// verify parses raw, checks the algorithm (ES256 only: "none", HMAC and
// everything else are refused before any key is used), kid, signature,
// iss, aud, exp, nbf, iat and the token use.
func (s *TokenSigner) verify(raw, use string, now time.Time) (*Claims, error) {
	if len(raw) > maxTokenLength {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, maxTokenLength)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].KeyID != s.kid {
		return nil, fmt.Errorf("%w: not signed by this registry's key", ErrTokenInvalid)
	}
	var c Claims
	if err := tok.Claims(s.pub, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if c.Expiry == nil || c.IssuedAt == nil {
		return nil, fmt.Errorf("%w: exp and iat are required", ErrTokenInvalid)
	}
	err = c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: s.issuer, AnyAudience: jwt.Audience{s.service}, Time: now}, clockLeeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, ErrTokenExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if c.Use != use {
		return nil, fmt.Errorf("%w: a %q token was presented where a %q token is needed", ErrTokenInvalid, c.Use, use)
	}
	return &c, nil
}

// VerifyAccess verifies a registry access token.
func (s *TokenSigner) VerifyAccess(raw string, now time.Time) (*Claims, error) {
	return s.verify(raw, useAccess, now)
}

// VerifyRefresh verifies a refresh token.
func (s *TokenSigner) VerifyRefresh(raw string, now time.Time) (*Claims, error) {
	return s.verify(raw, useRefresh, now)
}
