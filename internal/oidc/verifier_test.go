package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func TestVerifyBuiltinToken(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	v := newTestVerifier(t, c, iss)
	tok := mint(t, iss, job())
	got, err := v.Verify(context.Background(), tok, "sigstore")
	if err != nil {
		t.Fatal(err)
	}
	sub := "project_path:group/app:ref_type:branch:ref:main"
	if got.Issuer != testIssuerURL || got.Subject != sub || got.Identity != sub || got.IssuerType != TypeGitLab {
		t.Fatalf("token %+v", got)
	}
	if len(got.Audience) != 1 || got.Audience[0] != "sigstore" || got.KeyID != iss.KeyID() || got.ID == "" {
		t.Fatalf("token %+v", got)
	}
	if got.Expiry.Unix() != c.Now().Add(10*time.Minute).Unix() || got.IssuedAt.Unix() != c.Now().Unix() {
		t.Fatalf("times exp=%v iat=%v", got.Expiry, got.IssuedAt)
	}
	for name, want := range map[string]string{"runner_id": "1", "project_path": "group/app", "ref_protected": "false",
		"ci_config_ref_uri": "hallmark.example.com:8443/group/app//.gitlab-ci.yml@refs/heads/main"} {
		if s, ok := got.StringClaim(name); !ok || s != want {
			t.Errorf("StringClaim(%s) = %q, %v; want %q", name, s, ok, want)
		}
	}
	if _, ok := got.Claims["runner_id"].(json.Number); !ok {
		t.Errorf("runner_id is %T, want json.Number", got.Claims["runner_id"])
	}
	// Within the leeway after exp: still accepted.
	c.Advance(10*time.Minute + 30*time.Second)
	if _, err := v.Verify(context.Background(), tok, "sigstore"); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	v := newTestVerifier(t, c, iss)
	kid := iss.KeyID()
	priv := iss.current().priv
	now := c.Now()
	valid := mint(t, iss, job())
	parts := strings.Split(valid, ".")
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := func(mod func(map[string]any)) map[string]any {
		m := standardClaims(testIssuerURL, now)
		if mod != nil {
			mod(m)
		}
		return m
	}
	tamperedPayload := func() string {
		p := payloadOf(t, valid)
		p["sub"] = "project_path:group/other:ref_type:branch:ref:main"
		b, _ := json.Marshal(p)
		return parts[0] + "." + b64(b) + "." + parts[2]
	}()

	cases := []struct {
		name    string
		tok     string
		aud     string
		want    error
		wantMsg string
	}{
		{"wrong audience", valid, "vault", ErrAudience, `does not include "vault"`},
		{"no expected audience", valid, "", ErrAudience, "no expected audience"},
		{"missing aud", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { delete(m, "aud") })), "sigstore", ErrAudience, "no aud"},
		{"aud wrong type", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { m["aud"] = 7 })), "sigstore", ErrMalformed, "aud must be"},
		{"unknown issuer", signJWT(t, jose.RS256, priv, kid, standardClaims("https://gitlab.evil.example", now)), "sigstore", ErrUnknownIssuer, "not a trusted issuer"},
		{"issuer differs by trailing slash", signJWT(t, jose.RS256, priv, kid, standardClaims(testIssuerURL+"/", now)), "sigstore", ErrUnknownIssuer, ""},
		{"forged signature (other key, same kid)", signJWT(t, jose.RS256, other, kid, claims(nil)), "sigstore", ErrSignature, "does not verify"},
		{"forged signature (other key, no kid)", signJWT(t, jose.RS256, other, "", claims(nil)), "sigstore", ErrSignature, ""},
		{"alg none", rawJWT(map[string]any{"alg": "none", "kid": kid, "typ": "JWT"}, claims(nil), nil), "sigstore", ErrAlgorithm, "unsigned tokens"},
		{"alg None", rawJWT(map[string]any{"alg": "None", "kid": kid}, claims(nil), nil), "sigstore", ErrAlgorithm, ""},
		{"alg missing", rawJWT(map[string]any{"kid": kid}, claims(nil), []byte("x")), "sigstore", ErrAlgorithm, ""},
		{"HS256 keyed with the public key", hs256WithPublicKey(t, &priv.PublicKey, kid, claims(nil)), "sigstore", ErrAlgorithm, "shared-secret MAC"},
		{"ES256 for an RS256 issuer", signJWT(t, jose.ES256, ecKey, kid, claims(nil)), "sigstore", ErrAlgorithm, "ES256"},
		{"PS256 with the issuer key", signJWT(t, jose.PS256, priv, kid, claims(nil)), "sigstore", ErrAlgorithm, "PS256"},
		{"header alg swapped", func() string {
			h, _ := json.Marshal(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT", "x": 1})
			return b64(h) + "." + parts[1] + "." + parts[2]
		}(), "sigstore", ErrSignature, ""},
		{"tampered payload", tamperedPayload, "sigstore", ErrSignature, "forged or tampered"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + b64(make([]byte, 256)), "sigstore", ErrSignature, ""},
		{"unknown kid", signJWT(t, jose.RS256, priv, "no-such-kid", claims(nil)), "sigstore", ErrUnknownKey, `kid "no-such-kid"`},
		{"expired", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { m["exp"] = now.Add(-2 * time.Minute).Unix() })), "sigstore", ErrExpired, "get a fresh token"},
		{"no exp", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { delete(m, "exp") })), "sigstore", ErrClaims, "no exp"},
		{"exp as string", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { m["exp"] = "soon" })), "sigstore", ErrMalformed, "exp"},
		{"not yet valid", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { m["nbf"] = now.Add(5 * time.Minute).Unix() })), "sigstore", ErrNotYetValid, "not before"},
		{"issued in the future", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) {
			delete(m, "nbf")
			m["iat"] = now.Add(5 * time.Minute).Unix()
		})), "sigstore", ErrNotYetValid, "issued in the future"},
		{"no sub", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { delete(m, "sub") })), "sigstore", ErrClaims, "no sub"},
		{"sub not string", signJWT(t, jose.RS256, priv, kid, claims(func(m map[string]any) { m["sub"] = 1 })), "sigstore", ErrMalformed, "sub"},
		{"empty", "", "sigstore", ErrMalformed, "empty"},
		{"garbage", "not a token", "sigstore", ErrMalformed, "3 dot-separated parts"},
		{"two parts", parts[0] + "." + parts[1], "sigstore", ErrMalformed, ""},
		{"four parts", valid + ".x", "sigstore", ErrMalformed, ""},
		{"JWE", "a.b.c.d.e", "sigstore", ErrMalformed, "JWE"},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], "sigstore", ErrMalformed, "base64url"},
		{"header not JSON", b64([]byte("nope")) + "." + parts[1] + "." + parts[2], "sigstore", ErrMalformed, "header"},
		{"payload array", parts[0] + "." + b64([]byte(`["iss"]`)) + "." + parts[2], "sigstore", ErrMalformed, "payload"},
		{"payload trailing data", parts[0] + "." + b64([]byte(`{"iss":"x"} {}`)) + "." + parts[2], "sigstore", ErrMalformed, "trailing"},
		{"no iss", parts[0] + "." + b64([]byte(`{"sub":"x"}`)) + "." + parts[2], "sigstore", ErrMalformed, "iss"},
		{"oversized", parts[0] + "." + strings.Repeat("A", 20000) + "." + parts[2], "sigstore", ErrTooLarge, "limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tc.tok, tc.aud)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q does not say %q", err, tc.wantMsg)
			}
		})
	}

	t.Run("expired after time passes", func(t *testing.T) {
		c2 := &clock{t: now}
		v2 := newTestVerifier(t, c2, iss)
		c2.Advance(10*time.Minute + time.Minute + time.Second)
		if _, err := v2.Verify(context.Background(), valid, "sigstore"); !errors.Is(err, ErrExpired) {
			t.Fatalf("Verify = %v, want ErrExpired", err)
		}
	})
	t.Run("token without kid verifies with the right key", func(t *testing.T) {
		if _, err := v.Verify(context.Background(), signJWT(t, jose.RS256, priv, "", claims(nil)), "sigstore"); err != nil {
			t.Fatal(err)
		}
	})
}

// extIssuer is a GitLab-like OIDC issuer for tests: discovery document and
// JWKS over real HTTP, tokens signed with its own keys.
type extIssuer struct {
	srv *httptest.Server
	URL string

	mu        sync.Mutex
	keys      []jose.JSONWebKey // public keys published in the JWKS
	docIssuer string            // issuer in the discovery document ("" = URL)
	algs      []string

	discoveryHits, jwksHits atomic.Int32
	down                    atomic.Bool
}

func newExtIssuer(t *testing.T, useTLS bool) *extIssuer {
	e := &extIssuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		e.discoveryHits.Add(1)
		e.mu.Lock()
		doc := map[string]any{"issuer": e.URL, "jwks_uri": e.URL + "/oauth/discovery/keys",
			"response_types_supported": []string{"id_token"}, "subject_types_supported": []string{"public"}}
		if e.docIssuer != "" {
			doc["issuer"] = e.docIssuer
		}
		if e.algs != nil {
			doc["id_token_signing_alg_values_supported"] = e.algs
		}
		e.mu.Unlock()
		json.NewEncoder(w).Encode(doc)
	})
	mux.HandleFunc("GET /oauth/discovery/keys", func(w http.ResponseWriter, r *http.Request) {
		if e.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		e.jwksHits.Add(1)
		e.mu.Lock()
		set := jose.JSONWebKeySet{Keys: e.keys}
		e.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	if useTLS {
		e.srv = httptest.NewTLSServer(mux)
	} else {
		e.srv = httptest.NewServer(mux)
	}
	t.Cleanup(e.srv.Close)
	e.URL = e.srv.URL
	return e
}

// publish adds pub to the JWKS under kid.
func (e *extIssuer) publish(kid string, pub any, alg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys = append(e.keys, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig", Algorithm: alg})
}

func gitlabPayload(iss string, now time.Time) map[string]any {
	m := standardClaims(iss, now)
	for k, v := range map[string]any{"project_path": "grp/proj", "namespace_path": "grp", "project_id": "20", "namespace_id": "72",
		"ref": "main", "ref_type": "branch", "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc", "pipeline_id": "574",
		"pipeline_source": "push", "job_id": "302", "runner_id": 12270835, "runner_environment": "gitlab-hosted",
		"ci_config_ref_uri": "gitlab.example.com/grp/proj//.gitlab-ci.yml@refs/heads/main"} {
		m[k] = v
	}
	m["sub"] = "project_path:grp/proj:ref_type:branch:ref:main"
	return m
}

func TestExternalGitLabIssuer(t *testing.T) {
	c := newClock()
	ext := newExtIssuer(t, false)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	ext.publish("k1", &k1.PublicKey, "RS256")
	builtin := newTestIssuer(t, c, "")
	v := newTestVerifier(t, c, builtin, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
	ctx := context.Background()

	tok := signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now()))
	got, err := v.Verify(ctx, tok, "sigstore")
	if err != nil {
		t.Fatal(err)
	}
	if got.IssuerType != TypeGitLab || got.Identity != "project_path:grp/proj:ref_type:branch:ref:main" || got.KeyID != "k1" {
		t.Fatalf("token %+v", got)
	}
	if s, _ := got.StringClaim("runner_id"); s != "12270835" {
		t.Fatalf("runner_id %q", s)
	}
	// Built-in tokens still verify alongside.
	if _, err := v.Verify(ctx, mint(t, builtin, job()), "sigstore"); err != nil {
		t.Fatal(err)
	}
	// Cached: a second token does not refetch.
	if _, err := v.Verify(ctx, tok, "sigstore"); err != nil || ext.jwksHits.Load() != 1 {
		t.Fatalf("second verify: %v, %d JWKS fetches", err, ext.jwksHits.Load())
	}

	// Algorithm confusion against the external issuer's RSA key.
	hs := hs256WithPublicKey(t, &k1.PublicKey, "k1", gitlabPayload(ext.URL, c.Now()))
	if _, err := v.Verify(ctx, hs, "sigstore"); !errors.Is(err, ErrAlgorithm) {
		t.Fatalf("HS256 confusion: %v", err)
	}
	// A key of the built-in issuer cannot sign for the external one.
	forged := signJWT(t, jose.RS256, builtin.current().priv, "k1", gitlabPayload(ext.URL, c.Now()))
	if _, err := v.Verify(ctx, forged, "sigstore"); !errors.Is(err, ErrSignature) {
		t.Fatalf("forged: %v", err)
	}

	// The issuer rotates: a token with a new kid makes the verifier
	// refetch the JWKS once.
	c.Advance(time.Minute)
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	ext.publish("k2", &k2.PublicKey, "RS256")
	if _, err := v.Verify(ctx, signJWT(t, jose.RS256, k2, "k2", gitlabPayload(ext.URL, c.Now())), "sigstore"); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := ext.jwksHits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after rotation, want 2", n)
	}
	// Unknown kids do not make the verifier hammer the issuer.
	unknown := signJWT(t, jose.RS256, k2, "k3", gitlabPayload(ext.URL, c.Now()))
	for range 3 {
		if _, err := v.Verify(ctx, unknown, "sigstore"); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := ext.jwksHits.Load(); n != 2 {
		t.Fatalf("%d JWKS fetches after unknown kids within the refresh interval, want 2", n)
	}
	c.Advance(11 * time.Second)
	v.Verify(ctx, signJWT(t, jose.RS256, k2, "k3", gitlabPayload(ext.URL, c.Now())), "sigstore")
	if n := ext.jwksHits.Load(); n != 3 {
		t.Fatalf("%d JWKS fetches after the refresh interval, want 3", n)
	}

	// TTL expiry refetches; when the issuer is down the cached keys serve.
	c.Advance(11 * time.Minute)
	ext.down.Store(true)
	if _, err := v.Verify(ctx, signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now())), "sigstore"); err != nil {
		t.Fatalf("issuer down with cached keys: %v", err)
	}
}

func TestExternalIssuerFailures(t *testing.T) {
	c := newClock()
	ctx := context.Background()
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)

	t.Run("discovery names another issuer", func(t *testing.T) {
		ext := newExtIssuer(t, false)
		ext.publish("k1", &k1.PublicKey, "RS256")
		ext.docIssuer = "https://gitlab.evil.example"
		v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
		_, err := v.Verify(ctx, signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now())), "sigstore")
		if !errors.Is(err, ErrIssuerUnavailable) || !strings.Contains(err.Error(), "want exactly") {
			t.Fatalf("Verify = %v", err)
		}
	})
	t.Run("issuer down and nothing cached", func(t *testing.T) {
		ext := newExtIssuer(t, false)
		ext.down.Store(true)
		v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
		_, err := v.Verify(ctx, signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now())), "sigstore")
		if !errors.Is(err, ErrIssuerUnavailable) || !strings.Contains(err.Error(), "HTTP 503") {
			t.Fatalf("Verify = %v", err)
		}
	})
	t.Run("JWKS without usable keys", func(t *testing.T) {
		ext := newExtIssuer(t, false)
		ext.publish("sym", []byte("0123456789abcdef0123456789abcdef"), "HS256")
		v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
		_, err := v.Verify(ctx, signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now())), "sigstore")
		if !errors.Is(err, ErrIssuerUnavailable) || !strings.Contains(err.Error(), "no usable") {
			t.Fatalf("Verify = %v", err)
		}
	})
	t.Run("HS256 with a symmetric JWKS key is still refused", func(t *testing.T) {
		ext := newExtIssuer(t, false)
		secret := []byte("0123456789abcdef0123456789abcdef")
		ext.publish("k1", &k1.PublicKey, "RS256")
		ext.publish("sym", secret, "HS256")
		v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
		_, err := v.Verify(ctx, signJWT(t, jose.HS256, secret, "sym", gitlabPayload(ext.URL, c.Now())), "sigstore")
		if !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("Verify = %v", err)
		}
	})
	t.Run("ES256 only when advertised", func(t *testing.T) {
		ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ext := newExtIssuer(t, false)
		ext.publish("e1", &ec.PublicKey, "ES256")
		v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
		tok := signJWT(t, jose.ES256, ec, "e1", gitlabPayload(ext.URL, c.Now()))
		if _, err := v.Verify(ctx, tok, "sigstore"); !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("ES256 from an RS256 issuer: %v", err)
		}
		ext2 := newExtIssuer(t, false)
		ext2.publish("e1", &ec.PublicKey, "ES256")
		ext2.algs = []string{"ES256", "HS256", "none"}
		v2 := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext2.URL, Type: TypeGitLab})
		if _, err := v2.Verify(ctx, signJWT(t, jose.ES256, ec, "e1", gitlabPayload(ext2.URL, c.Now())), "sigstore"); err != nil {
			t.Fatalf("advertised ES256: %v", err)
		}
		if _, err := v2.Verify(ctx, rawJWT(map[string]any{"alg": "none", "kid": "e1"}, gitlabPayload(ext2.URL, c.Now()), nil), "sigstore"); !errors.Is(err, ErrAlgorithm) {
			t.Fatalf("none advertised by the issuer is still refused: %v", err)
		}
	})
}

func TestExternalIssuerTLS(t *testing.T) {
	c := newClock()
	ext := newExtIssuer(t, true)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	ext.publish("k1", &k1.PublicKey, "RS256")
	tok := signJWT(t, jose.RS256, k1, "k1", gitlabPayload(ext.URL, c.Now()))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ext.srv.Certificate().Raw})

	v := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab, CACerts: ca})
	if _, err := v.Verify(context.Background(), tok, "sigstore"); err != nil {
		t.Fatalf("with the issuer's CA: %v", err)
	}
	v2 := newTestVerifier(t, c, nil, TrustedIssuer{URL: ext.URL, Type: TypeGitLab})
	if _, err := v2.Verify(context.Background(), tok, "sigstore"); !errors.Is(err, ErrIssuerUnavailable) {
		t.Fatalf("without the issuer's CA: %v", err)
	}
}

func TestEmailAndGenericIssuers(t *testing.T) {
	c := newClock()
	ext := newExtIssuer(t, false)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	ext.publish("k1", &k1.PublicKey, "RS256")
	ext2 := newExtIssuer(t, false)
	ext2.publish("k1", &k1.PublicKey, "RS256")
	v := newTestVerifier(t, c, nil,
		TrustedIssuer{URL: ext.URL, Type: TypeEmail},
		TrustedIssuer{URL: ext2.URL, Type: TypeGeneric, SubjectClaim: "preferred_username"})
	ctx := context.Background()
	email := func(mod func(map[string]any)) string {
		m := standardClaims(ext.URL, c.Now())
		m["sub"] = "1234567"
		m["email"] = "dev@example.com"
		m["email_verified"] = true
		if mod != nil {
			mod(m)
		}
		return signJWT(t, jose.RS256, k1, "k1", m)
	}
	got, err := v.Verify(ctx, email(nil), "sigstore")
	if err != nil || got.Identity != "dev@example.com" || got.IssuerType != TypeEmail {
		t.Fatalf("email token: %+v, %v", got, err)
	}
	if got, err := v.Verify(ctx, email(func(m map[string]any) { m["email_verified"] = "true" }), "sigstore"); err != nil || got.Identity != "dev@example.com" {
		t.Fatalf("email_verified as string: %v", err)
	}
	if _, err := v.Verify(ctx, email(func(m map[string]any) { m["email_verified"] = false }), "sigstore"); !errors.Is(err, ErrClaims) || !strings.Contains(err.Error(), "not verified") {
		t.Fatalf("unverified email: %v", err)
	}
	if _, err := v.Verify(ctx, email(func(m map[string]any) { delete(m, "email") }), "sigstore"); !errors.Is(err, ErrClaims) {
		t.Fatalf("no email: %v", err)
	}

	gen := standardClaims(ext2.URL, c.Now())
	gen["preferred_username"] = "builder"
	got, err = v.Verify(ctx, signJWT(t, jose.RS256, k1, "k1", gen), "sigstore")
	if err != nil || got.Identity != "builder" || got.IssuerType != TypeGeneric {
		t.Fatalf("generic token: %+v, %v", got, err)
	}
	delete(gen, "preferred_username")
	if _, err := v.Verify(ctx, signJWT(t, jose.RS256, k1, "k1", gen), "sigstore"); !errors.Is(err, ErrClaims) {
		t.Fatalf("generic without subject claim: %v", err)
	}
	if infos := v.Issuers(); len(infos) != 2 || infos[0].URL != ext.URL || infos[1].Type != TypeGeneric {
		t.Fatalf("Issuers() = %+v", infos)
	}
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	cases := map[string][]TrustedIssuer{
		"plain http to a remote host": {{URL: "http://gitlab.example.com", Type: TypeGitLab}},
		"query":                       {{URL: "https://gitlab.example.com?x=1", Type: TypeGitLab}},
		"no host":                     {{URL: "https://", Type: TypeGitLab}},
		"unknown type":                {{URL: "https://gitlab.example.com", Type: "github"}},
		"subject claim on gitlab":     {{URL: "https://gitlab.example.com", Type: TypeGitLab, SubjectClaim: "x"}},
		"duplicate":                   {{URL: "https://gitlab.com", Type: TypeGitLab}, {URL: "https://gitlab.com", Type: TypeEmail}},
		"built-in listed":             {{URL: testIssuerURL, Type: TypeGitLab}},
		"bad CA":                      {{URL: "https://gitlab.example.com", Type: TypeGitLab, CACerts: []byte("junk")}},
	}
	for name, issuers := range cases {
		if _, err := NewVerifier(nil, iss, VerifierConfig{Issuers: issuers}); err == nil {
			t.Errorf("%s: NewVerifier accepted %+v", name, issuers)
		}
	}
}
