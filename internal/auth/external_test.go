package auth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// TestLibtrustKeyIDMatchesGitLab: the kid GitLab puts in its registry
// tokens, for the 512-bit key of its own RSAToken spec
// (spec/lib/json_web_token/rsa_token_spec.rb: the header must be
// {"typ":"JWT","alg":"RS256","kid":"OGXY:4TR7:..."}), is the key's
// libtrust key ID as LibtrustKeyID computes it.
func TestLibtrustKeyIDMatchesGitLab(t *testing.T) {
	n, _ := new(big.Int).SetString("c039b172011341f0808078d2236274de0f196ccec8b40ad1bb1d381360a445e40e5641be76a43948003c5fab304e0f074625e35e4369b508e344f950d9a5c317", 16)
	got, err := auth.LibtrustKeyID(&rsa.PublicKey{N: n, E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	if want := "OGXY:4TR7:FAVO:WEM2:XXEW:E4FP:TKL7:7ACK:TZAF:D54P:SUIA:P3B2"; got != want {
		t.Fatalf("LibtrustKeyID = %s, want GitLab's %s", got, want)
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TestParseKeyBundle: --token-cert takes certificates and public keys;
// private keys, weak RSA keys, other blocks and files without a key are
// refused with a message saying what is wrong.
func TestParseKeyBundle(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	rsaPKIX, _ := x509.MarshalPKIXPublicKey(&g.Key.PublicKey)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	weakDER, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	privDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	for _, tc := range []struct {
		name      string
		bundle    []byte
		keys      int
		certs     int
		wantError string
	}{
		{name: "GitLab's certificate", bundle: g.CertPEM, keys: 1, certs: 1},
		{name: "PKIX RSA key", bundle: pemBlock("PUBLIC KEY", rsaPKIX), keys: 1},
		{name: "PKCS#1 RSA key", bundle: pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&g.Key.PublicKey)), keys: 1},
		{name: "ECDSA and Ed25519 keys with text around", bundle: append(append([]byte("# keys\n"), pemBlock("PUBLIC KEY", ecDER)...), append([]byte("comment\n"), pemBlock("PUBLIC KEY", edDER)...)...), keys: 2},
		{name: "certificate and keys", bundle: append(append(g.CertPEM, pemBlock("PUBLIC KEY", ecDER)...), pemBlock("PUBLIC KEY", edDER)...), keys: 3, certs: 1},
		{name: "empty", bundle: nil, wantError: "holds no certificate or public key"},
		{name: "not PEM", bundle: []byte("just text"), wantError: "holds no certificate or public key"},
		{name: "private key", bundle: pemBlock("PRIVATE KEY", privDER), wantError: "is a private key"},
		{name: "RSA private key after a certificate", bundle: append(g.CertPEM, pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(g.Key))...), wantError: "block 2 is a private key"},
		{name: "1024-bit RSA", bundle: pemBlock("PUBLIC KEY", weakDER), wantError: "at least 2048"},
		{name: "other block", bundle: pemBlock("CERTIFICATE REQUEST", []byte{1, 2}), wantError: "unsupported PEM type"},
		{name: "broken certificate", bundle: pemBlock("CERTIFICATE", []byte{0x30, 0x03, 1, 2, 3}), wantError: "certificate"},
		{name: "broken public key", bundle: pemBlock("PUBLIC KEY", []byte{0x30}), wantError: "public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys, certs, err := auth.ParseKeyBundle(tc.bundle)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("error %v, want %q", err, tc.wantError)
				}
				return
			}
			if err != nil || len(keys) != tc.keys || len(certs) != tc.certs {
				t.Fatalf("%d keys, %d certificates, %v; want %d, %d", len(keys), len(certs), err, tc.keys, tc.certs)
			}
		})
	}
}

// extService is an auth service in --auth=token mode trusting g, with a
// clock the test moves.
func extService(t *testing.T, g *testenv.GitLabJWT, bundle []byte) (*auth.Service, *clock, *sqlite.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "hallmark.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	k, err := keystore.Generate(keystore.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := auth.NewTokenSigner(k, "https://reg.example/auth", "reg.example")
	if err != nil {
		t.Fatal(err)
	}
	x, err := auth.NewExternalTokens(auth.ExternalConfig{Realm: g.Realm, Service: g.Service, Issuer: g.Issuer, Bundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	svc, err := auth.New(store, signer, nil, nil, auth.Config{Issuer: "https://reg.example/auth", Realm: "https://reg.example/auth/token",
		Service: "reg.example", External: x, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return svc, clk, store
}

// guarded serves svc's /v2/ guard over real HTTP in front of a handler
// that answers 200 and records the principal of what reached it.
func guarded(t *testing.T, svc *auth.Service) (url string, reached *[]auth.Principal) {
	t.Helper()
	var got []auth.Principal
	h := svc.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.PrincipalFrom(r.Context())
		got = append(got, p)
		w.WriteHeader(http.StatusOK)
	}), registry.ParseEndpoint)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, &got
}

// ociError checks an answer carries the OCI error body with code.
func ociError(t *testing.T, body []byte, code oci.ErrorCode) {
	t.Helper()
	var e oci.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != code {
		t.Fatalf("body %s is not an OCI error with code %s (%v)", body, code, err)
	}
}

func repoAccess(name string, actions ...string) map[string]any {
	return map[string]any{"type": "repository", "name": name, "actions": actions,
		"meta": map[string]any{"project_path": name, "project_id": 42, "root_namespace_id": 7}}
}

// TestExternalTokenForgeriesRefused: every forged, tampered, foreign,
// confused-algorithm, expired, not-yet-valid, wrong-audience and
// wrong-issuer token is answered 401 with an invalid_token challenge
// naming GitLab's realm and service and the OCI error body, and never
// reaches the registry; a genuine token with the same claims passes.
func TestExternalTokenForgeriesRefused(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	svc, _, _ := extService(t, g, g.CertPEM)
	u, reached := guarded(t, svc)
	access := []map[string]any{repoAccess("group/app", "*")}
	for _, f := range g.Forgeries(t, access) {
		t.Run(f.Name, func(t *testing.T) {
			resp, body := testenv.Call(t, http.MethodGet, u+"/v2/group/app/manifests/latest", f.Token, nil)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("answered %d, want 401: %s", resp.StatusCode, body)
			}
			ociError(t, body, oci.CodeUnauthorized)
			ch := resp.Header.Get("WWW-Authenticate")
			if !strings.Contains(ch, `realm="`+g.Realm+`"`) || !strings.Contains(ch, `service="container_registry"`) || !strings.Contains(ch, `error="invalid_token"`) {
				t.Fatalf("challenge %q does not send the client back to GitLab's realm with invalid_token", ch)
			}
		})
	}
	if len(*reached) != 0 {
		t.Fatalf("%d forged tokens reached the registry", len(*reached))
	}
	good := g.Sign(t, g.Claims("alice", "build", access))
	if resp, body := testenv.Call(t, http.MethodGet, u+"/v2/group/app/manifests/latest", good, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the genuine token with the same claims: %d %s", resp.StatusCode, body)
	}
	if p := (*reached)[0]; p.Kind != auth.KindExternal || p.Name != "alice" {
		t.Fatalf("principal %+v, want the token's subject as an external principal", p)
	}
}

// TestExternalTokenKeyMatching: a token's key is found by its kid as the
// libtrust key ID (GitLab) or the RFC 7638 thumbprint (distribution v3),
// or by an x5c chain to a certificate of the bundle; ECDSA and Ed25519
// keys work as RSA does.
func TestExternalTokenKeyMatching(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "token CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKIXPublicKey(edPub)
	bundle := append(append(g.CertPEM, pemBlock("CERTIFICATE", caDER)...), pemBlock("PUBLIC KEY", edDER)...)
	svc, _, _ := extService(t, g, bundle)
	u, _ := guarded(t, svc)

	claims := g.Claims("alice", "build", []map[string]any{repoAccess("group/app", "pull")})
	sign := func(key any, alg jose.SignatureAlgorithm, hdr map[jose.HeaderKey]any) string {
		return testenv.SignWith(t, key, alg, hdr, claims)
	}
	thumb := func(k crypto.PublicKey) string {
		tp, _ := (&jose.JSONWebKey{Key: k}).Thumbprint(crypto.SHA256)
		return base64.RawURLEncoding.EncodeToString(tp)
	}
	for _, tc := range []struct{ name, tok string }{
		{"libtrust kid (GitLab)", g.Sign(t, claims)},
		{"RFC 7638 thumbprint kid (distribution v3)", sign(g.Key, jose.RS256, map[jose.HeaderKey]any{"kid": thumb(&g.Key.PublicKey)})},
		{"PS256 under the libtrust kid", sign(g.Key, jose.PS256, map[jose.HeaderKey]any{"kid": g.KeyID})},
		{"x5c: the bundle's own certificate", sign(g.Key, jose.RS256, map[jose.HeaderKey]any{"x5c": []string{base64.StdEncoding.EncodeToString(g.CertDER)}})},
		{"x5c: a leaf issued by a CA of the bundle", sign(leafKey, jose.ES384, map[jose.HeaderKey]any{"x5c": []string{base64.StdEncoding.EncodeToString(leafDER)}})},
		{"Ed25519 public key by thumbprint", sign(edKey, jose.EdDSA, map[jose.HeaderKey]any{"kid": thumb(edPub)})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if resp, body := testenv.Call(t, http.MethodGet, u+"/v2/group/app/manifests/latest", tc.tok, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("answered %d: %s", resp.StatusCode, body)
			}
		})
	}
	// The leaf's key is trusted only through its chain: by kid it is unknown.
	if resp, _ := testenv.Call(t, http.MethodGet, u+"/v2/group/app/manifests/latest", sign(leafKey, jose.ES384, map[jose.HeaderKey]any{"kid": thumb(&leafKey.PublicKey)}), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a CA-issued key named by kid without its chain: %d, want 401", resp.StatusCode)
	}
}

// TestExternalTokenAccessClaims: the registry authorizes purely from the
// token's access entries: an entry for one repository opens no other
// (neither a sibling, a parent, a child nor GitLab's "name/*" listing
// entry), pull does not push, push does not delete, "*" does all three,
// and the catalog needs registry:catalog:*. Refusals are 401
// insufficient_scope challenges with the OCI error body.
func TestExternalTokenAccessClaims(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	svc, _, _ := extService(t, g, g.CertPEM)
	u, _ := guarded(t, svc)
	tok := func(entries ...map[string]any) string { return g.Sign(t, g.Claims("alice", "build", entries)) }
	pull := tok(repoAccess("group/app", "pull"))
	pushPull := tok(repoAccess("group/app", "pull", "push"))
	all := tok(repoAccess("group/app", "*"))
	nested := g.PullNestedToken(t, "group/app")
	catalog := tok(map[string]any{"type": "registry", "name": "catalog", "actions": []string{"*"}})
	checkGuard(t, u, []guardCase{
		{"pull: GET manifest", http.MethodGet, "/v2/group/app/manifests/v1", pull, 200},
		{"pull: HEAD blob", http.MethodHead, "/v2/group/app/blobs/sha256:" + strings.Repeat("a", 64), pull, 200},
		{"pull: tags", http.MethodGet, "/v2/group/app/tags/list", pull, 200},
		{"pull: push refused", http.MethodPost, "/v2/group/app/blobs/uploads/", pull, 401},
		{"pull: manifest PUT refused", http.MethodPut, "/v2/group/app/manifests/v1", pull, 401},
		{"pull: other repository refused", http.MethodGet, "/v2/group/other/manifests/v1", pull, 401},
		{"pull: child repository refused", http.MethodGet, "/v2/group/app/sub/manifests/v1", pull, 401},
		{"pull: parent repository refused", http.MethodGet, "/v2/group/manifests/v1", pull, 401},
		{"pull: catalog refused", http.MethodGet, "/v2/_catalog", pull, 401},
		{"push: upload", http.MethodPost, "/v2/group/app/blobs/uploads/", pushPull, 200},
		{"push: manifest PUT", http.MethodPut, "/v2/group/app/manifests/v1", pushPull, 200},
		{"push: delete refused", http.MethodDelete, "/v2/group/app/manifests/v1", pushPull, 401},
		{"push: other repository refused", http.MethodPut, "/v2/other/app/manifests/v1", pushPull, 401},
		{"*: delete tag", http.MethodDelete, "/v2/group/app/manifests/v1", all, 200},
		{"*: delete blob", http.MethodDelete, "/v2/group/app/blobs/sha256:" + strings.Repeat("b", 64), all, 200},
		{"*: push", http.MethodPut, "/v2/group/app/manifests/v2", all, 200},
		{"*: other repository refused", http.MethodDelete, "/v2/group/apps/manifests/v1", all, 401},
		{"*: catalog refused", http.MethodGet, "/v2/_catalog", all, 401},
		{"nested listing token: the project's repository", http.MethodGet, "/v2/group/app/tags/list", nested, 200},
		{"nested listing token: name/* opens no repository", http.MethodGet, "/v2/group/app/sub/tags/list", nested, 401},
		{"catalog", http.MethodGet, "/v2/_catalog", catalog, 200},
		{"catalog: no repository", http.MethodGet, "/v2/group/app/tags/list", catalog, 401},
		{"any valid token: base endpoint", http.MethodGet, "/v2/", catalog, 200},
	}, func(t *testing.T, tc guardCase, resp *http.Response, body []byte) {
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, g.Realm) {
			t.Fatalf("challenge %q", ch)
		}
		if tc.method != http.MethodHead {
			ociError(t, body, oci.CodeUnauthorized)
		}
	})
}

// guardCase is a request through the guard and the status it must get.
type guardCase struct {
	name, method, path, tok string
	want                    int
}

// checkGuard sends each case to u as a subtest and checks its status;
// refused (4xx) answers are also given to refusal.
func checkGuard(t *testing.T, u string, cases []guardCase, refusal func(*testing.T, guardCase, *http.Response, []byte)) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := testenv.Call(t, tc.method, u+tc.path, tc.tok, nil)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s answered %d, want %d: %s", tc.method, tc.path, resp.StatusCode, tc.want, body)
			}
			if tc.want >= 400 {
				refusal(t, tc, resp, body)
			}
		})
	}
}

// TestExternalTokenProtectedTags: GitLab's protected container tags reach
// the registry as meta.tag_deny_access_patterns of an access entry; a
// push to a matching tag (in the path or a tag parameter) and a delete of
// a matching tag are refused 403 DENIED, a delete by digest is refused
// while delete patterns apply, and a pattern that does not compile denies
// its action for every tag.
func TestExternalTokenProtectedTags(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	svc, _, _ := extService(t, g, g.CertPEM)
	u, _ := guarded(t, svc)
	entry := repoAccess("group/app", "pull", "push", "delete")
	entry["meta"].(map[string]any)["tag_deny_access_patterns"] = map[string][]string{"push": {`^v\d+`, "release"}, "delete": {`^v\d+`}}
	tok := g.Sign(t, g.Claims("dev", "gitlab_or_ldap", []map[string]any{entry}))
	broken := repoAccess("group/app", "pull", "push")
	broken["meta"].(map[string]any)["tag_deny_access_patterns"] = map[string][]string{"push": {"(unclosed"}}
	brokenTok := g.Sign(t, g.Claims("dev", "gitlab_or_ldap", []map[string]any{broken}))
	digest := "sha256:" + hex.EncodeToString(make([]byte, 32))
	checkGuard(t, u, []guardCase{
		{"push unprotected tag", http.MethodPut, "/v2/group/app/manifests/latest", tok, 200},
		{"push protected tag", http.MethodPut, "/v2/group/app/manifests/v1.2", tok, 403},
		{"push tag matching anywhere", http.MethodPut, "/v2/group/app/manifests/pre-release-3", tok, 403},
		{"push by digest", http.MethodPut, "/v2/group/app/manifests/" + digest, tok, 200},
		{"push by digest with a protected tag parameter", http.MethodPut, "/v2/group/app/manifests/" + digest + "?tag=latest&tag=v2", tok, 403},
		{"delete unprotected tag", http.MethodDelete, "/v2/group/app/manifests/latest", tok, 200},
		{"delete protected tag", http.MethodDelete, "/v2/group/app/manifests/v3", tok, 403},
		{"delete by digest", http.MethodDelete, "/v2/group/app/manifests/" + digest, tok, 403},
		{"pull protected tag", http.MethodGet, "/v2/group/app/manifests/v1", tok, 200},
		{"broken pattern: push any tag", http.MethodPut, "/v2/group/app/manifests/latest", brokenTok, 403},
		{"broken pattern: pull", http.MethodGet, "/v2/group/app/manifests/latest", brokenTok, 200},
	}, func(t *testing.T, _ guardCase, _ *http.Response, body []byte) { ociError(t, body, oci.CodeDenied) })
}

// TestExternalTokenReplayAfterExpiry: a token the guard has verified and
// remembers is refused once its exp plus the 60 s leeway has passed, and
// from then on.
func TestExternalTokenReplayAfterExpiry(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{TTL: time.Minute, Logins: []testenv.GitLabLogin{
		{User: "gitlab-ci-token", Password: "glcbt-job-1", Subject: "alice", AuthType: "build", Grants: map[string][]string{"group/app": {"pull", "push"}}}}})
	svc, clk, _ := extService(t, g, g.CertPEM)
	u, _ := guarded(t, svc)
	status, tok := g.Token(t, "gitlab-ci-token", "glcbt-job-1", "repository:group/app:pull,push")
	if status != http.StatusOK {
		t.Fatalf("/jwt/auth: %d", status)
	}
	get := func() int {
		resp, _ := testenv.Call(t, http.MethodGet, u+"/v2/group/app/manifests/v1", tok, nil)
		return resp.StatusCode
	}
	if s := get(); s != 200 {
		t.Fatalf("fresh token: %d", s)
	}
	clk.Add(time.Minute + 55*time.Second)
	if s := get(); s != 200 {
		t.Fatalf("within exp + leeway: %d", s)
	}
	clk.Add(10 * time.Second)
	for range 2 {
		if s := get(); s != http.StatusUnauthorized {
			t.Fatalf("replayed after exp + leeway: %d, want 401", s)
		}
	}
}

// TestExternalModeRefusesOwnTokens: with an external token service, /v2/
// accepts only its tokens; an access token this server signed itself (its
// own token endpoint is not the realm) is refused.
func TestExternalModeRefusesOwnTokens(t *testing.T) {
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{})
	svc, _, store := extService(t, g, g.CertPEM)
	ctx := context.Background()
	adm := &auth.Admin{Store: store}
	if _, err := adm.AddUser(ctx, "root", "root-password-1", true); err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, "root", "root-password-1", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	own, err := svc.IssueToken(ctx, p, scopes("repository:group/app:pull,push"), false, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.VerifyAccess(ctx, own.Token); !errors.Is(err, auth.ErrTokenInvalid) {
		t.Fatalf("the server's own access token in external mode: %v, want ErrTokenInvalid", err)
	}
}

// FuzzExternalToken: external tokens are parsed from untrusted input. Any
// claim set, signed with the trusted key, is either refused or yields
// claims within the bounds (issuer, audience and expiry checked, access
// entries named and typed); any other string is refused; nothing panics.
// The seeds are the claim shapes GitLab sends: docker's push and pull
// tokens with meta, its full-access and nested-listing tokens, the
// catalog, protected-tag patterns, anonymous tokens, and broken shapes.
func FuzzExternalToken(f *testing.F) {
	g := testenv.StartGitLabJWT(f, testenv.GitLabJWTConfig{})
	x, err := auth.NewExternalTokens(auth.ExternalConfig{Realm: g.Realm, Service: g.Service, Issuer: g.Issuer, Bundle: g.CertPEM})
	if err != nil {
		f.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: g.Key, KeyID: g.KeyID}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	claims := func(extra string) []byte {
		return []byte(`{"jti":"6f0e4c1a-1c2b-4d6e-8f00-0a1b2c3d4e5f","aud":"container_registry","iss":"gitlab-issuer","sub":"alice","iat":` +
			jsonInt(now.Unix()) + `,"nbf":` + jsonInt(now.Unix()-5) + `,"exp":` + jsonInt(now.Unix()+300) + extra + `}`)
	}
	good := g.Sign(f, g.Claims("alice", "build", []map[string]any{repoAccess("group/app", "pull", "push")}))
	f.Add(claims(`,"auth_type":"build","access":[{"type":"repository","name":"group/app","actions":["pull","push"],"meta":{"project_path":"group/app","project_id":12,"root_namespace_id":3}}],"user":"eyJhbGciOiJSUzI1NiJ9.e30.sig"`), good)
	f.Add(claims(`,"access":[{"type":"repository","name":"group/app","actions":["*"],"meta":{"project_path":"group/app","project_id":12,"root_namespace_id":3}}]`), "a.b.c")
	f.Add(claims(`,"access":[{"type":"repository","name":"group/app","actions":["pull"]},{"type":"repository","name":"group/app/*","actions":["pull"]}]`), "")
	f.Add(claims(`,"access":[{"type":"registry","name":"catalog","actions":["*"]}]`), "eyJhbGciOiJub25lIn0.eyJhY2Nlc3MiOltdfQ.")
	f.Add(claims(`,"access":[{"type":"repository","name":"g/a","actions":["push","delete"],"meta":{"tag_deny_access_patterns":{"push":["^v.*"],"delete":["(x"]}}}]`), "")
	f.Add(claims(`,"auth_type":"none","access":[],"user":null`), "")
	f.Add(claims(`,"access":{"type":"repository"}`), "")
	f.Add(claims(`,"access":[{"type":"repository","name":"a","actions":"pull"}]`), "")
	f.Add(claims(`,"access":[{"type":"","name":"","actions":[]}]`), "")
	f.Add(claims(`,"access":[{"type":"repository","name":"a","actions":["pull"],"meta":{"tag_deny_access_patterns":{"push":"v1"}}}]`), "")
	f.Add([]byte(`{"aud":["container_registry","x"],"iss":"gitlab-issuer","exp":1e30,"access":null}`), "")
	f.Add([]byte(`{"iss":"gitlab-issuer","aud":"container_registry","exp":"soon"}`), "")
	f.Add([]byte(`not json`), "")
	f.Fuzz(func(t *testing.T, payload []byte, raw string) {
		jws, err := signer.Sign(payload)
		if err != nil {
			return
		}
		tok, err := jws.CompactSerialize()
		if err != nil {
			return
		}
		if c, err := x.Verify(tok, now); err == nil {
			if c.Issuer != g.Issuer || !c.Audience.Contains(g.Service) || c.Expiry == nil || c.Kind != auth.KindExternal || len(c.Access) > 256 {
				t.Fatalf("accepted claims out of bounds: %+v", c)
			}
			for _, a := range c.Access {
				if a.Type == "" || a.Name == "" || len(a.Actions) > 16 {
					t.Fatalf("accepted access entry %+v", a)
				}
			}
		} else if !errors.Is(err, auth.ErrTokenInvalid) && !errors.Is(err, auth.ErrTokenExpired) {
			t.Fatalf("error %v is neither invalid nor expired", err)
		}
		if _, err := x.Verify(raw, now); err == nil && raw != good {
			t.Fatalf("a string that is no token GitLab's key signed was accepted: %q", raw)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
