package abuse

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// Abuse of --auth=token (issue 12): the registry trusts tokens of an
// external token service, played here by testenv.GitLabJWT (GitLab itself
// cannot run in these tests).

const tokenAbuseJob = "glcbt-abuse-job-token-0123456789abcdef"

// startTokenAuth runs a server with --auth=token trusting a GitLab
// stand-in whose CI job may push to team/app.
func startTokenAuth(t *testing.T) (*env, *testenv.GitLabJWT) {
	t.Helper()
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{Logins: []testenv.GitLabLogin{{User: "gitlab-ci-token", Password: tokenAbuseJob,
		Subject: "alice", AuthType: "build", Grants: map[string][]string{"team/app": {"pull", "push"}}}}})
	e := start(t, func(c *config.Server) {
		c.Auth, c.TokenRealm, c.TokenService, c.TokenIssuer, c.TokenCert = "token", g.Realm, g.Service, g.Issuer, g.CertFile
	})
	return e, g
}

// TestTokenAuthJunkFloodStaysCheap: a flood of junk bearer tokens on /v2/
// and the provenance API from one address - garbage, forgeries under the
// trusted kid, tokens of another GitLab, expired ones - is answered 401
// without locking anyone out: a genuine GitLab token and the local admin's
// password work from the same address right after, the audit log gets a
// sample, not a record per token, and the registry never calls the token
// service (nothing to amplify).
func TestTokenAuthJunkFloodStaysCheap(t *testing.T) {
	e, g := startTokenAuth(t)
	access := []map[string]any{{"type": "repository", "name": "team/app", "actions": []string{"pull", "push"}}}
	other := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	junk := []string{"x", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "a.b.c", other.Sign(t, other.Claims("alice", "build", access))}
	for _, f := range g.Forgeries(t, access) {
		junk = append(junk, f.Token)
	}
	c := authClientFrom(t, "127.0.0.6")
	requests := g.Requests.Load()
	for i := range 300 {
		u := e.URL + "/v2/team/app/manifests/latest"
		if i%3 == 2 {
			u = e.URL + "/api/v1/images/team/app/signatures?digest=sha256:" + strings.Repeat("0", 64)
		}
		if status, _ := authReq(t, c, http.MethodGet, u, "Bearer "+junk[i%len(junk)]); status != http.StatusUnauthorized {
			t.Fatalf("junk token %d on %s: %d, want 401", i, u, status)
		}
	}
	if n := g.Requests.Load() - requests; n != 0 {
		t.Fatalf("the flood made the registry ask the token service %d times", n)
	}
	status, tok := g.Token(t, "gitlab-ci-token", tokenAbuseJob, "repository:team/app:pull,push")
	if status != http.StatusOK {
		t.Fatalf("/jwt/auth: %d", status)
	}
	if status, body := authReq(t, c, http.MethodGet, e.URL+"/v2/", "Bearer "+tok); status != http.StatusOK {
		t.Fatalf("a genuine token from the flooding address: %d %s", status, body)
	}
	if status, body := authReq(t, c, http.MethodGet, e.URL+"/api/v1/audit?action="+auth.AuditInvalidToken+"&limit=1000", "Basic "+authBasic("admin", e.AdminPassword)); status != http.StatusOK {
		t.Fatalf("the local admin from the flooding address: %d %s", status, body)
	} else {
		var out struct {
			Events []auth.AuditEventJSON `json:"events"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Events) == 0 || len(out.Events) > 10 {
			t.Fatalf("%d audit records for 300 junk tokens from one address, want a sample (1-10)", len(out.Events))
		}
	}
}

// TestTokenAuthHugeTokensBounded: oversized tokens are refused before any
// signature or chain is checked, or by the bounds on the claims: an
// Authorization header over 16 KiB, a token over 16 KiB, a genuine
// signature over more access entries than accepted, an x5c chain of
// dozens of certificates, and a header beyond the server's header limit.
func TestTokenAuthHugeTokensBounded(t *testing.T) {
	e, g := startTokenAuth(t)
	c := authClientFrom(t, "127.0.0.7")
	manifest := e.URL + "/v2/team/app/manifests/latest"

	many := make([]map[string]any, 260)
	for i := range many {
		many[i] = map[string]any{"type": "r", "name": fmt.Sprint(i), "actions": []string{}}
	}
	many[0] = map[string]any{"type": "repository", "name": "team/app", "actions": []string{"pull"}}
	tooMany := g.Sign(t, g.Claims("alice", "build", many))
	if len(tooMany) > 16<<10 {
		t.Fatalf("test token of %d bytes is over the length bound; the entry bound is not what it tests", len(tooMany))
	}
	for _, tc := range []struct {
		name, authz string
	}{
		{"Authorization header over 16 KiB", "Bearer " + strings.Repeat("a", 16<<10)},
		{"token over 16 KiB", "Bearer eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("e", 16<<10) + ".AAAA"},
		{"260 access entries, genuinely signed", "Bearer " + tooMany},
		{"x5c chain of 12 certificates", "Bearer " + longChainToken(t, g, 12)},
	} {
		status, body := authReq(t, c, http.MethodGet, manifest, tc.authz)
		if status != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401: %s", tc.name, status, body)
		}
	}
	// Beyond net/http's header limit the request is not even read.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, manifest, nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("b", 2<<20))
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 2 MiB Authorization header: %d, want 431", resp.StatusCode)
		}
	}
	// The server still serves genuine tokens.
	_, tok := g.Token(t, "gitlab-ci-token", tokenAbuseJob, "repository:team/app:pull")
	if status, body := authReq(t, c, http.MethodGet, e.URL+"/v2/", "Bearer "+tok); status != http.StatusOK {
		t.Fatalf("after the huge tokens: %d %s", status, body)
	}
}

// longChainToken signs a GitLab-style token with a leaf at the end of a
// chain of n foreign CAs, all in its x5c header.
func longChainToken(t *testing.T, g *testenv.GitLabJWT, n int) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var chain []string
	parent, parentKey := (*x509.Certificate)(nil), key
	for i := range n {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 10)), Subject: pkix.Name{CommonName: fmt.Sprintf("ca %d", i)},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		signer, signerKey := tmpl, k
		if parent != nil {
			signer, signerKey = parent, parentKey
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &k.PublicKey, signerKey)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		chain = append([]string{base64.StdEncoding.EncodeToString(der)}, chain...)
		parent, parentKey = cert, k
	}
	return testenv.SignWith(t, parentKey, jose.ES256, map[jose.HeaderKey]any{"x5c": chain, "kid": g.KeyID},
		g.Claims("alice", "build", []map[string]any{{"type": "repository", "name": "team/app", "actions": []string{"pull"}}}))
}
