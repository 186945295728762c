package server_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

func adminToken(t *testing.T, dataDir string) string {
	t.Helper()
	p := filepath.Join(dataDir, "admin-token")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin-token mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

func postJSON(t *testing.T, url, bearer string, body string) (*http.Response, []byte) {
	t.Helper()
	return call(t, http.MethodPost, url, bearer, []byte(body), "Content-Type", "application/json")
}

// mintIDToken mints an ID token of the built-in issuer of the server at
// base, authorised by the admin token in its data dir, for the mint
// request body (JSON: aud, project, ref, ...).
func mintIDToken(t *testing.T, base, dataDir, body string) string {
	t.Helper()
	resp, b := postJSON(t, base+oidc.MintPath, adminToken(t, dataDir), body)
	var mr oidc.MintResponse
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &mr) != nil || mr.Token == "" {
		t.Fatalf("mint: %s %s", resp.Status, b)
	}
	return mr.Token
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %s %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// remoteVerifier trusts the server's issuer the way an external party
// does: discovery document and JWKS over HTTP.
func remoteVerifier(t *testing.T, issuerURL string) *oidc.Verifier {
	t.Helper()
	v, err := oidc.NewVerifier(nil, nil, oidc.VerifierConfig{Issuers: []oidc.TrustedIssuer{{URL: issuerURL, Type: oidc.TypeGitLab}}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOIDCIssuerEndpoints(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	var doc map[string]any
	getJSON(t, srv.URL+"/.well-known/openid-configuration", &doc)
	if doc["issuer"] != srv.URL || doc["jwks_uri"] != srv.URL+"/oauth/discovery/keys" {
		t.Fatalf("discovery %v", doc)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	getJSON(t, srv.URL+"/oauth/discovery/keys", &jwks)
	if len(jwks.Keys) != 1 || jwks.Keys[0]["kty"] != "RSA" || jwks.Keys[0]["alg"] != "RS256" || jwks.Keys[0]["d"] != nil {
		t.Fatalf("JWKS %v", jwks)
	}

	mintURL := srv.URL + "/api/v1/oidc/token"
	body := `{"aud":"sigstore","project":"group/app","ref":"main","sha":"714a629c0b401fdce83e847fc9589983fc6f46bc","pipeline_id":"9","job_id":"10","user":"alice","ttl":"5m"}`

	resp, b := postJSON(t, mintURL, "", body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no credentials: %s %s", resp.Status, b)
	}
	resp, b = postJSON(t, mintURL, "hmadm_wrong-token-wrong-token", body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "does not match") {
		t.Fatalf("wrong admin token: %s %s", resp.Status, b)
	}

	admin := adminToken(t, srv.DataDir)
	resp, b = postJSON(t, mintURL, admin, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mint: %s %s", resp.Status, b)
	}
	var minted oidc.MintResponse
	if err := json.Unmarshal(b, &minted); err != nil {
		t.Fatal(err)
	}
	tok, err := remoteVerifier(t, srv.URL).Verify(context.Background(), minted.Token, "sigstore")
	if err != nil {
		t.Fatalf("verifying the minted token via discovery + JWKS: %v", err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for k, want := range map[string]string{
		"ci_config_ref_uri": host + "/group/app//.gitlab-ci.yml@refs/heads/main",
		"user_login":        "alice", "pipeline_id": "9", "job_id": "10",
	} {
		if got, _ := tok.StringClaim(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if d := tok.Expiry.Sub(tok.IssuedAt); d.Minutes() != 5 || !minted.ExpiresAt.Equal(tok.Expiry) {
		t.Errorf("ttl %v, expires_at %v vs exp %v", d, minted.ExpiresAt, tok.Expiry)
	}

	for name, bad := range map[string]string{
		"unknown field": `{"aud":"sigstore","project":"group/app","ref":"main","colour":"red"}`,
		"bad claims":    `{"aud":"sigstore","project":"app","ref":"main"}`,
		"bad ttl":       `{"aud":"sigstore","project":"group/app","ref":"main","ttl":"forever"}`,
		"ttl above max": `{"aud":"sigstore","project":"group/app","ref":"main","ttl":"48h"}`,
		"not JSON":      `aud=sigstore`,
		"aud object":    `{"aud":{"x":1},"project":"group/app","ref":"main"}`,
	} {
		resp, b := postJSON(t, mintURL, admin, bad)
		var e struct{ Error string }
		json.Unmarshal(b, &e)
		if resp.StatusCode != http.StatusBadRequest || e.Error == "" {
			t.Errorf("%s: %s %s, want 400 with an error message", name, resp.Status, b)
		}
	}

	// Rotation: both keys published, both tokens verify.
	resp, b = postJSON(t, srv.URL+"/api/v1/oidc/rotate-key", "wrong-wrong-wrong-wrong", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("rotate with a wrong token: %s %s", resp.Status, b)
	}
	resp, b = postJSON(t, srv.URL+"/api/v1/oidc/rotate-key", admin, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rotate: %s %s", resp.Status, b)
	}
	getJSON(t, srv.URL+"/oauth/discovery/keys", &jwks)
	if len(jwks.Keys) != 2 {
		t.Fatalf("JWKS after rotation has %d keys", len(jwks.Keys))
	}
	_, b = postJSON(t, mintURL, admin, body)
	var second oidc.MintResponse
	json.Unmarshal(b, &second)
	if second.KeyID == minted.KeyID {
		t.Fatal("token after rotation signed with the old key")
	}
	v := remoteVerifier(t, srv.URL)
	for _, tk := range []string{minted.Token, second.Token} {
		if _, err := v.Verify(context.Background(), tk, "sigstore"); err != nil {
			t.Fatalf("after rotation: %v", err)
		}
	}
}

func TestOIDCDisabled(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.OIDCBuiltin = false })
	resp, err := http.Get(srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("discovery with the issuer off: %s", resp.Status)
	}
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestOIDCKeysSurviveRestart(t *testing.T) {
	dataDir := t.TempDir()
	addr := freePort(t)
	mod := func(c *config.Server) { c.DataDir, c.Addr = dataDir, addr }
	var token, admin string
	t.Run("first run", func(t *testing.T) {
		srv := testenv.StartServer(t, mod)
		admin = adminToken(t, srv.DataDir)
		resp, b := postJSON(t, srv.URL+"/api/v1/oidc/token", admin, `{"aud":["sigstore"],"project":"group/app","ref":"main"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("mint: %s %s", resp.Status, b)
		}
		var m oidc.MintResponse
		json.Unmarshal(b, &m)
		token = m.Token
	})
	t.Run("second run", func(t *testing.T) {
		srv := testenv.StartServer(t, mod)
		if got := adminToken(t, srv.DataDir); got != admin {
			t.Fatal("admin token changed across a restart")
		}
		if _, err := remoteVerifier(t, srv.URL).Verify(context.Background(), token, "sigstore"); err != nil {
			t.Fatalf("token minted before the restart: %v", err)
		}
	})
}

func TestOIDCExternalIssuerConfig(t *testing.T) {
	// A server trusting another (running) issuer starts without contacting
	// it; a plain-http issuer on a remote host is refused at start.
	gitlab := testenv.StartServer(t, nil)
	testenv.StartServer(t, func(c *config.Server) {
		c.OIDCIssuers = []config.OIDCIssuer{{URL: gitlab.URL, Type: "gitlab-pipeline"}}
	})
	cfg := config.Defaults()
	cfg.Addr, cfg.DataDir = "127.0.0.1:0", t.TempDir()
	cfg.OIDCIssuers = []config.OIDCIssuer{{URL: "http://gitlab.example.com", Type: "gitlab-pipeline"}}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		srv.Close()
		t.Fatal("plain-http remote issuer accepted")
	}
	if !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("error %q does not explain the problem", err)
	}
}

// TestOIDCTokenAcceptedByGoOIDC checks the built-in issuer with an
// independent implementation: coreos/go-oidc, the library Fulcio verifies
// ID tokens with (discovery, JWKS, RS256, iss/aud/exp checks).
func TestOIDCTokenAcceptedByGoOIDC(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	admin := adminToken(t, srv.DataDir)
	resp, b := postJSON(t, srv.URL+"/api/v1/oidc/token", admin, `{"aud":"sigstore","project":"group/app","ref":"main"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mint: %s %s", resp.Status, b)
	}
	var m oidc.MintResponse
	json.Unmarshal(b, &m)

	ctx := context.Background()
	provider, err := gooidc.NewProvider(ctx, srv.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	idt, err := provider.Verifier(&gooidc.Config{ClientID: "sigstore"}).Verify(ctx, m.Token)
	if err != nil {
		t.Fatalf("go-oidc rejects the token: %v", err)
	}
	if idt.Issuer != srv.URL || idt.Subject != "project_path:group/app:ref_type:branch:ref:main" {
		t.Fatalf("go-oidc token: iss %s sub %s", idt.Issuer, idt.Subject)
	}
	var claims struct {
		CIConfigRefURI string `json:"ci_config_ref_uri"`
		RunnerID       int64  `json:"runner_id"`
	}
	if err := idt.Claims(&claims); err != nil || claims.CIConfigRefURI == "" || claims.RunnerID != 1 {
		t.Fatalf("claims %+v, %v", claims, err)
	}
	// And it refuses a token for another audience, as Fulcio would.
	if _, err := provider.Verifier(&gooidc.Config{ClientID: "vault"}).Verify(ctx, m.Token); err == nil {
		t.Fatal("go-oidc accepted the token for another audience")
	}
}
