package oidc

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testIssuerURL = "https://hallmark.example.com:8443"

// newTestIssuer is a real issuer with its keys in a temp dir.
func newTestIssuer(t testing.TB, c *clock, dir string) *Issuer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	ks, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(context.Background(), nil, ks, IssuerConfig{URL: testIssuerURL, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func newTestVerifier(t testing.TB, c *clock, builtin *Issuer, ext ...TrustedIssuer) *Verifier {
	t.Helper()
	v, err := NewVerifier(nil, builtin, VerifierConfig{Issuers: ext, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func job() JobClaims {
	return JobClaims{Audience: []string{"sigstore"}, ProjectPath: "group/app", Ref: "main",
		SHA: "714a629c0b401fdce83e847fc9589983fc6f46bc", PipelineID: "574", JobID: "302"}
}

func mint(t testing.TB, iss *Issuer, j JobClaims) string {
	t.Helper()
	tok, err := iss.Mint(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// payloadOf decodes a token's payload without verifying it.
func payloadOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := decodeJSONObject(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// signJWT signs claims with key (any go-jose signing key) and header kid.
func signJWT(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawJWT assembles header.payload.signature from raw parts.
func rawJWT(header, payload map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(payload)
	return b64(h) + "." + b64(p) + "." + b64(sig)
}

// hs256WithPublicKey is the algorithm-confusion attack: an HMAC over the
// token keyed with the issuer's public key (PEM, as attackers use).
func hs256WithPublicKey(t testing.TB, pub crypto.PublicKey, kid string, claims map[string]any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "kid": kid, "typ": "JWT"})
	p, _ := json.Marshal(claims)
	signing := b64(h) + "." + b64(p)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signing))
	return signing + "." + b64(mac.Sum(nil))
}

// standardClaims are valid registered claims for issuer iss at now.
func standardClaims(iss string, now time.Time) map[string]any {
	return map[string]any{
		"iss": iss, "sub": "project_path:group/app:ref_type:branch:ref:main", "aud": "sigstore",
		"iat": now.Unix(), "nbf": now.Unix() - 5, "exp": now.Add(10 * time.Minute).Unix(),
	}
}
