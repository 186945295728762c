package ca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/oidc"
)

var (
	rsaKeysOnce sync.Once
	rsaKeys     [2]*rsa.PrivateKey
)

// testRSAKeys returns two RSA-2048 keys shared by the tests (generation is
// the slow part): [0] signs tokens, [1] forges them.
func testRSAKeys(t testing.TB) [2]*rsa.PrivateKey {
	rsaKeysOnce.Do(func() {
		for i := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[i] = k
		}
	})
	return rsaKeys
}

// testIssuer is a real OIDC issuer over HTTP: discovery document, JWKS at
// GitLab's path, RS256-signed ID tokens.
type testIssuer struct {
	t   testing.TB
	srv *httptest.Server
	URL string
	key *rsa.PrivateKey
	kid string
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	is := &testIssuer{t: t, key: testRSAKeys(t)[0], kid: "test-key-1"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                is.URL,
			"jwks_uri":                              is.URL + "/oauth/discovery/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /oauth/discovery/keys", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: &is.key.PublicKey, KeyID: is.kid, Algorithm: "RS256", Use: "sig",
		}}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	return is
}

// mint signs claims (iss, aud, iat, nbf, exp filled in unless present).
func (is *testIssuer) mint(claims map[string]any) string {
	return is.mintWith(is.key, is.kid, claims)
}

func (is *testIssuer) mintWith(key *rsa.PrivateKey, kid string, claims map[string]any) string {
	is.t.Helper()
	c := is.fill(claims)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		is.t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := signer.Sign(payload)
	if err != nil {
		is.t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		is.t.Fatal(err)
	}
	return s
}

// mintAlgNone builds an unsigned token (alg none).
func (is *testIssuer) mintAlgNone(claims map[string]any) string {
	hdr, _ := json.Marshal(map[string]string{"alg": "none", "typ": "JWT", "kid": is.kid})
	payload, _ := json.Marshal(is.fill(claims))
	return base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

func (is *testIssuer) fill(claims map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": is.URL, "aud": "sigstore", "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// gitlabClaims is a GitLab CI ID token claim set for project grp/app on
// this issuer's host.
func (is *testIssuer) gitlabClaims() map[string]any {
	host := strings.TrimPrefix(strings.TrimPrefix(is.URL, "http://"), "https://")
	return map[string]any{
		"sub":                   "project_path:grp/app:ref_type:branch:ref:main",
		"namespace_id":          "72",
		"namespace_path":        "grp",
		"project_id":            "20",
		"project_path":          "grp/app",
		"user_id":               "5",
		"user_login":            "alice",
		"user_email":            "alice@example.com",
		"user_access_level":     "developer",
		"pipeline_id":           "574",
		"pipeline_source":       "push",
		"job_id":                "302",
		"ref":                   "main",
		"ref_type":              "branch",
		"ref_path":              "refs/heads/main",
		"ref_protected":         "true",
		"runner_id":             1,
		"runner_environment":    "self-hosted",
		"sha":                   "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"ci_config_ref_uri":     host + "/grp/app//.gitlab-ci.yml@refs/heads/main",
		"ci_config_sha":         "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"project_visibility":    "internal",
		"jti":                   "8d2d7a6e-1c1e-4a6c-9d33-2f2a0f3a9c55",
		"environment_protected": "false",
	}
}

// issuers: one test issuer per type, trusted by a real oidc.Verifier.
type issuers struct {
	gitlab, email, generic *testIssuer
}

func newVerifier(t testing.TB) (*oidc.Verifier, issuers) {
	t.Helper()
	is := issuers{gitlab: newTestIssuer(t), email: newTestIssuer(t), generic: newTestIssuer(t)}
	v, err := oidc.NewVerifier(nil, nil, oidc.VerifierConfig{Issuers: []oidc.TrustedIssuer{
		{URL: is.gitlab.URL, Type: oidc.TypeGitLab},
		{URL: is.email.URL, Type: oidc.TypeEmail},
		{URL: is.generic.URL, Type: oidc.TypeGeneric},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return v, is
}

// fixture is a CA served over HTTP with its trusted issuers.
type fixture struct {
	ca   *ca.CA
	srv  *httptest.Server
	iss  issuers
	keys string // key directory
}

func newFixture(t testing.TB) *fixture { return newFixtureWith(t, ca.Config{}) }

// newFixtureWith is newFixture with the CA configured by cfg.
func newFixtureWith(t testing.TB, cfg ca.Config) *fixture {
	t.Helper()
	v, is := newVerifier(t)
	dir := t.TempDir()
	ks, err := keystore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.New(context.Background(), ks, v, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{ca: c, srv: srv, iss: is, keys: dir}
}

// post sends body to path with an optional bearer token.
func (f *fixture) post(t testing.TB, path, token string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (f *fixture) get(t testing.TB, path string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := f.srv.Client().Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubPEM(t testing.TB, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// proveP256 signs challenge as cosign does (ASN.1 ECDSA over SHA-256).
func proveP256(t testing.TB, k *ecdsa.PrivateKey, challenge string) []byte {
	d := sha256.Sum256([]byte(challenge))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// v1Body is exactly what cosign 2.x sends to /api/v1/signingCert.
func v1Body(pubPEM, proof []byte) []byte {
	b, _ := json.Marshal(map[string]any{
		"publicKey":                 map[string]any{"content": pubPEM},
		"signedEmailAddress":        proof,
		"certificateSigningRequest": nil,
	})
	return b
}

// v2Body is what sigstore-go sends to /api/v2/signingCert.
func v2Body(pubPEM, proof []byte) []byte {
	b, _ := json.Marshal(map[string]any{
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]any{"algorithm": "ECDSA", "content": string(pubPEM)},
			"proofOfPossession": proof,
		},
	})
	return b
}

// parsePEMChain splits a PEM bundle into certificates.
func parsePEMChain(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
