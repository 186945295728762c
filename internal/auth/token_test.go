package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func newTestSigner(t testing.TB, service string) (*TokenSigner, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewTokenSigner(k, "https://registry.example/auth", service)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func b64json(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// resign signs claims with key under the given header fields (for forgeries).
func resign(t testing.TB, key any, alg jose.SignatureAlgorithm, kid string, claims any) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestTokenForgeries(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, key := newTestSigner(t, "registry.example")
	p := Principal{Kind: KindJob, Name: "ci-job:group/app:1", Project: "group/app", CredID: 3}
	access := []Access{{TypeRepository, "group/app", []string{"pull", "push"}}}
	good, err := s.sign(useAccess, p, access, now, now.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.VerifyAccess(good, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("valid token rejected: %v", err)
	}
	if c.Principal().Project != "group/app" || c.Principal().CredID != 3 || len(c.Access) != 1 || !c.Access[0].Allows(TypeRepository, "group/app", "push") {
		t.Fatalf("claims round trip: %+v", c)
	}
	parts := strings.Split(good, ".")
	var payload map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	json.Unmarshal(raw, &payload)

	escalated := map[string]any{}
	for k, v := range payload {
		escalated[k] = v
	}
	escalated["access"] = []Access{{TypeRepository, "other/project", []string{"pull", "push", "delete"}}}

	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	otherService, _ := newTestSigner(t, "other.example")
	otherTok, _ := otherService.sign(useAccess, p, access, now, now.Add(5*time.Minute))
	refresh, _ := s.sign(useRefresh, p, nil, now, now.Add(time.Hour))
	noExp := map[string]any{}
	for k, v := range payload {
		if k != "exp" {
			noExp[k] = v
		}
	}
	wrongIss := map[string]any{}
	for k, v := range payload {
		wrongIss[k] = v
	}
	wrongIss["iss"] = "https://evil.example/auth"

	tests := []struct {
		name string
		tok  string
		at   time.Time
		want error
	}{
		{"tampered payload", parts[0] + "." + b64json(t, escalated) + "." + parts[2], now, ErrTokenInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), now, ErrTokenInvalid},
		{"alg none", b64json(t, map[string]string{"alg": "none", "typ": "JWT", "kid": s.kid}) + "." + b64json(t, escalated) + ".", now, ErrTokenInvalid},
		{"alg none with signature", b64json(t, map[string]string{"alg": "none", "typ": "JWT", "kid": s.kid}) + "." + parts[1] + "." + parts[2], now, ErrTokenInvalid},
		{"HS256 keyed with the public key", resign(t, pubDER, jose.HS256, s.kid, escalated), now, ErrTokenInvalid},
		{"other key, same kid", resign(t, otherKey, jose.ES256, s.kid, escalated), now, ErrTokenInvalid},
		{"wrong audience", otherTok, now, ErrTokenInvalid},
		{"wrong issuer", resign(t, key, jose.ES256, s.kid, wrongIss), now, ErrTokenInvalid},
		{"no expiry", resign(t, key, jose.ES256, s.kid, noExp), now, ErrTokenInvalid},
		{"expired", good, now.Add(6 * time.Minute), ErrTokenExpired},
		{"not yet valid", good, now.Add(-time.Minute), ErrTokenInvalid},
		{"refresh token used as access token", refresh, now, ErrTokenInvalid},
		{"garbage", "not-a-jwt", now, ErrTokenInvalid},
		{"oversized", strings.Repeat("a", maxTokenLength+1), now, ErrTokenInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.VerifyAccess(tt.tok, tt.at)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyAccess = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := s.VerifyRefresh(good, now); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("access token accepted as refresh token: %v", err)
	}
	if _, err := s.VerifyRefresh(refresh, now); err != nil {
		t.Fatalf("refresh token rejected: %v", err)
	}
}

func TestNewTokenSignerRejectsOtherKeys(t *testing.T) {
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewTokenSigner(k384, "iss", "svc"); err == nil {
		t.Fatal("P-384 key accepted for ES256")
	}
}

func FuzzVerifyAccessToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	s, _ := newTestSigner(f, "registry.example")
	good, _ := s.sign(useAccess, Principal{Kind: KindUser, Name: "alice"}, []Access{{TypeRepository, "a", []string{"pull"}}}, now, now.Add(time.Minute))
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.eyJhY2Nlc3MiOltdfQ.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := s.VerifyAccess(raw, now)
		if err == nil && raw != good {
			// Any other accepted input must at least be a genuine signature
			// over the same claims (JWS allows no other encoding here).
			if c.Subject != "alice" {
				t.Fatalf("forged token accepted: %q -> %+v", raw, c)
			}
		}
	})
}
