package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// GitLab itself cannot run in these tests. GitLabJWT stands in for its
// container registry token endpoint, /jwt/auth, as Hallmark's
// --auth=token meets it: it authenticates docker's token requests with
// Basic credentials (gitlab-ci-token and a job token, or a user and a
// password or personal access token) and mints RS256 tokens in the format
// GitLab's Auth::ContainerRegistryAuthenticationService and
// JSONWebToken::RSAToken produce - header kid the libtrust key ID of the
// signing key, typ JWT; claims jti, aud (the requested service), sub (the
// user name, absent for anonymous), iss, iat, nbf (iat - 5 s), exp,
// auth_type, access (type, name, actions, meta with project_path,
// project_id and root_namespace_id), user (a nested token with user_info)
// - granting what the test's table says. GitLab's own registry API tokens
// (full access for its UI and cleanup policies) are minted by
// FullAccessToken and PullNestedToken.

// GitLabService is the service (and token audience) GitLab's /jwt/auth
// serves: Auth::ContainerRegistryAuthenticationService::AUDIENCE.
const GitLabService = "container_registry"

// GitLabLogin is a credential the token endpoint accepts and what it may
// be granted.
type GitLabLogin struct {
	User, Password string // Basic credentials (CI jobs: gitlab-ci-token and the job token)
	Subject        string // sub of its tokens: the GitLab user (for a job, the user who runs it)
	AuthType       string // auth_type: build, gitlab_or_ldap, personal_access_token, ...
	// Grants maps a project path to the actions its repositories (the
	// project's path and the paths under it) may be granted: pull, push,
	// delete, or * (GitLab grants * only to those who may administer).
	Grants map[string][]string
	Admin  bool // may be granted registry:catalog:* (GitLab: instance admins)
}

// GitLabJWTConfig configures StartGitLabJWT.
type GitLabJWTConfig struct {
	Issuer string        // iss; default gitlab-issuer
	TTL    time.Duration // token lifetime; default 5 minutes (GitLab's default)
	Logins []GitLabLogin
	// Anonymous maps a project path to what a request without credentials
	// may be granted (public projects: pull).
	Anonymous map[string][]string
}

// GitLabJWT is a running GitLab-style token endpoint.
type GitLabJWT struct {
	URL      string // http://localhost:port
	Realm    string // URL/jwt/auth: Hallmark's --token-realm
	Issuer   string // --token-issuer
	Service  string // --token-service (container_registry)
	CertFile string // PEM certificate of the signing key: --token-cert
	CertPEM  []byte
	CertDER  []byte
	Key      *rsa.PrivateKey
	KeyID    string // libtrust key ID of Key, the tokens' kid

	// Requests counts the token requests answered 200.
	Requests atomic.Int64

	cfg GitLabJWTConfig
	mu  sync.Mutex
	ids map[string]int64 // project path -> project id
}

// StartGitLabJWT starts the token endpoint on a loopback port until the
// test ends, with a fresh 2048-bit RSA key and its self-signed
// certificate in a temp file.
func StartGitLabJWT(tb testing.TB, cfg GitLabJWTConfig) *GitLabJWT {
	tb.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = "gitlab-issuer"
	}
	if cfg.TTL == 0 {
		cfg.TTL = 5 * time.Minute
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gitlab-registry-token"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kid, err := auth.LibtrustKeyID(&key.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	g := &GitLabJWT{Issuer: cfg.Issuer, Service: GitLabService, Key: key, KeyID: kid, cfg: cfg, ids: map[string]int64{},
		CertDER: der, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	g.CertFile = filepath.Join(tb.TempDir(), "gitlab-registry.crt")
	if err := os.WriteFile(g.CertFile, g.CertPEM, 0o600); err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /jwt/auth", g.serveAuth)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	// The realm names the host, not the loopback IP literal: clients built
	// on go-containerregistry (crane, cosign) refuse a realm that is a
	// private IP literal other than the registry's own host.
	g.URL = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	g.Realm = g.URL + "/jwt/auth"
	return g
}

// gitlabError answers as GitLab's JwtController does.
func gitlabError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

func (g *GitLabJWT) serveAuth(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("service") != GitLabService {
		http.NotFound(w, r) // SERVICES[params[:service]] is nil
		return
	}
	var login *GitLabLogin
	if user, pw, ok := r.BasicAuth(); ok {
		for i := range g.cfg.Logins {
			if l := &g.cfg.Logins[i]; l.User == user && l.Password == pw {
				login = l
			}
		}
		if login == nil {
			gitlabError(w, http.StatusUnauthorized, "UNAUTHORIZED", "HTTP Basic: Access denied")
			return
		}
	}
	var scopes []string
	for _, v := range q["scope"] {
		scopes = append(scopes, strings.Fields(v)...)
	}
	if login == nil && len(scopes) == 0 {
		gitlabError(w, http.StatusForbidden, "DENIED", "access forbidden")
		return
	}
	access := []map[string]any{}
	for _, sc := range scopes {
		if a := g.grant(login, sc); a != nil {
			access = append(access, a)
		}
	}
	sub, authType := "", "none"
	if login != nil {
		sub, authType = login.Subject, login.AuthType
	}
	claims := g.Claims(sub, authType, access)
	claims["user"] = g.Sign(nil, g.userInfo(login))
	tok := g.Sign(nil, claims)
	g.Requests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"token": tok})
}

// grant is GitLab's process_scope: the requested actions the login may
// have on the scope's resource, with meta, or nil for none.
func (g *GitLabJWT) grant(l *GitLabLogin, scope string) map[string]any {
	parts := strings.SplitN(scope, ":", 3)
	if len(parts) != 3 {
		return nil
	}
	typ, name, actions := parts[0], parts[1], strings.Split(parts[2], ",")
	switch typ {
	case "registry":
		if l != nil && l.Admin && name == "catalog" && slices.Equal(actions, []string{"*"}) {
			return map[string]any{"type": "registry", "name": "catalog", "actions": []string{"*"}}
		}
		return nil
	case "repository":
	default:
		return nil
	}
	grants := g.cfg.Anonymous
	if l != nil {
		grants = l.Grants
	}
	project := ""
	for p := range grants {
		if (name == p || strings.HasPrefix(name, p+"/")) && len(p) > len(project) {
			project = p
		}
	}
	if project == "" {
		return nil
	}
	var granted []string
	for _, a := range actions {
		if slices.Contains(grants[project], a) && !slices.Contains(granted, a) {
			granted = append(granted, a)
		}
	}
	if len(granted) == 0 {
		return nil
	}
	return map[string]any{"type": "repository", "name": name, "actions": granted, "meta": g.meta(project)}
}

// meta is GitLab's access_metadata of a project.
func (g *GitLabJWT) meta(project string) map[string]any {
	g.mu.Lock()
	id, ok := g.ids[project]
	if !ok {
		id = int64(len(g.ids) + 100)
		g.ids[project] = id
	}
	g.mu.Unlock()
	root, _, _ := strings.Cut(project, "/")
	return map[string]any{"project_path": project, "project_id": id, "root_namespace_id": int64(len(root) + 10)}
}

// userInfo is the nested user token's claims (user_info null for
// anonymous requests).
func (g *GitLabJWT) userInfo(l *GitLabLogin) map[string]any {
	c := g.registered(time.Now())
	c["user_info"] = nil
	if l != nil {
		c["user_info"] = map[string]any{"token_type": l.AuthType, "username": l.Subject, "user_id": int64(len(l.Subject) + 1)}
	}
	return c
}

// registered is JSONWebToken::Token's default payload without aud, sub
// and iss: jti, iat, nbf (5 s back) and exp.
func (g *GitLabJWT) registered(now time.Time) map[string]any {
	b := make([]byte, 16)
	rand.Read(b)
	jti := hex.EncodeToString(b)
	return map[string]any{"jti": jti[:8] + "-" + jti[8:12] + "-" + jti[12:16] + "-" + jti[16:20] + "-" + jti[20:],
		"iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(), "exp": now.Add(g.cfg.TTL).Unix()}
}

// Claims returns the claims of a registry token as GitLab sends them to
// docker: the registered claims, aud container_registry, sub (omitted when
// empty), iss, auth_type and access. Tests change them to forge tokens.
func (g *GitLabJWT) Claims(sub, authType string, access []map[string]any) map[string]any {
	c := g.registered(time.Now())
	c["aud"], c["iss"], c["auth_type"], c["access"] = GitLabService, g.Issuer, authType, access
	if sub != "" {
		c["sub"] = sub
	}
	return c
}

// FullAccessToken is what GitLab sends the registry for its own UI and
// cleanup policies (ContainerRegistryAuthenticationService.full_access_token):
// no sub, "*" on each repository, with the project's meta.
func (g *GitLabJWT) FullAccessToken(tb testing.TB, names ...string) string {
	var access []map[string]any
	for _, n := range names {
		access = append(access, map[string]any{"type": "repository", "name": n, "actions": []string{"*"}, "meta": g.meta(n)})
	}
	c := g.registered(time.Now())
	c["aud"], c["iss"], c["access"] = GitLabService, g.Issuer, access
	return g.Sign(tb, c)
}

// PullNestedToken is pull_nested_repositories_access_token: pull on name
// and on "name/*" (for GitLab's own repository-listing API).
func (g *GitLabJWT) PullNestedToken(tb testing.TB, name string) string {
	access := []map[string]any{
		{"type": "repository", "name": name, "actions": []string{"pull"}, "meta": g.meta(name)},
		{"type": "repository", "name": name + "/*", "actions": []string{"pull"}, "meta": g.meta(name)},
	}
	c := g.registered(time.Now())
	c["aud"], c["iss"], c["access"] = GitLabService, g.Issuer, access
	return g.Sign(tb, c)
}

// Sign signs claims as GitLab does: RS256 with the endpoint's key, kid the
// libtrust key ID, typ JWT. tb may be nil (then a failure panics: it
// cannot happen with this key).
func (g *GitLabJWT) Sign(tb testing.TB, claims map[string]any) string {
	tok, err := signJWT(g.Key, jose.RS256, map[jose.HeaderKey]any{"kid": g.KeyID}, claims)
	if err != nil && tb == nil {
		panic("testenv: signing a GitLab-style token: " + err.Error())
	}
	if err != nil {
		tb.Fatalf("testenv: signing a GitLab-style token: %v", err)
	}
	return tok
}

// SignWith signs claims with any key and algorithm under the header
// fields hdr (typ JWT besides), to forge and vary tokens.
func SignWith(tb testing.TB, key any, alg jose.SignatureAlgorithm, hdr map[jose.HeaderKey]any, claims map[string]any) string {
	tb.Helper()
	tok, err := signJWT(key, alg, hdr, claims)
	if err != nil {
		tb.Fatalf("testenv: signing a token: %v", err)
	}
	return tok
}

func signJWT(key any, alg jose.SignatureAlgorithm, hdr map[jose.HeaderKey]any, claims map[string]any) (string, error) {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	for k, v := range hdr {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// Token asks the endpoint for a token as docker does: GET realm with
// service and scopes and, when user is not empty, Basic credentials. It
// returns the status and, on 200, the token.
func (g *GitLabJWT) Token(tb testing.TB, user, password string, scopes ...string) (int, string) {
	tb.Helper()
	q := url.Values{"service": {GitLabService}, "scope": scopes}
	req, err := http.NewRequest(http.MethodGet, g.Realm+"?"+q.Encode(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
			tb.Fatalf("testenv: /jwt/auth answered 200 without a token: %v", err)
		}
	}
	return resp.StatusCode, body.Token
}

// Forgery is a token the registry must refuse, and what is wrong with it.
type Forgery struct{ Name, Token string }

// Forgeries returns tokens that claim access (GitLab's access entries, as
// Claims takes them) but must be refused: forged or tampered signatures,
// keys the registry does not trust, algorithm confusion, and claims
// outside their validity (expired and not yet valid by more than the
// registry's 60 s of leeway, another audience or issuer).
func (g *GitLabJWT) Forgeries(tb testing.TB, access []map[string]any) []Forgery {
	tb.Helper()
	base := func() map[string]any { return g.Claims("mallory", "build", access) }
	with := func(k string, v any) map[string]any { c := base(); c[k] = v; return c }
	without := func(k string) map[string]any { c := base(); delete(c, k); return c }
	now := time.Now()

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	foreignCA, foreignLeaf, leafKey := foreignChain(tb)
	sign := func(key any, alg jose.SignatureAlgorithm, hdr map[jose.HeaderKey]any, claims map[string]any) string {
		return SignWith(tb, key, alg, hdr, claims)
	}
	b64 := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	kid := map[jose.HeaderKey]any{"kid": g.KeyID}
	spki, _ := x509.MarshalPKIXPublicKey(&g.Key.PublicKey)
	good := g.Sign(tb, base())
	parts := strings.Split(good, ".")
	escalated := base()
	escalated["access"] = []map[string]any{{"type": "repository", "name": "victim/app", "actions": []string{"*"}}}
	return []Forgery{
		{"signed by another key under the trusted kid", sign(otherKey, jose.RS256, kid, base())},
		{"signed by a key the registry does not know", sign(otherKey, jose.RS256, map[jose.HeaderKey]any{"kid": "ABCD:EFGH:IJKL:MNOP:QRST:UVWX:YZ23:4567:ABCD:EFGH:IJKL:MNOP"}, base())},
		{"no kid and no x5c", sign(g.Key, jose.RS256, nil, base())},
		{"payload swapped under a valid signature", parts[0] + "." + b64(escalated) + "." + parts[2]},
		{"signature zeroed", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))},
		{"alg none", b64(map[string]any{"alg": "none", "typ": "JWT", "kid": g.KeyID}) + "." + b64(base()) + "."},
		{"alg none with the valid signature", b64(map[string]any{"alg": "none", "typ": "JWT", "kid": g.KeyID}) + "." + parts[1] + "." + parts[2]},
		{"HS256 keyed with the PEM certificate", sign(g.CertPEM, jose.HS256, kid, base())},
		{"HS256 keyed with the DER public key", sign(spki, jose.HS256, kid, base())},
		{"x5c of a foreign CA", sign(leafKey, jose.ES256, map[jose.HeaderKey]any{"x5c": []string{
			base64.StdEncoding.EncodeToString(foreignLeaf.Raw), base64.StdEncoding.EncodeToString(foreignCA.Raw)}}, base())},
		{"x5c of a foreign CA under the trusted kid", sign(leafKey, jose.ES256, map[jose.HeaderKey]any{"kid": g.KeyID, "x5c": []string{
			base64.StdEncoding.EncodeToString(foreignLeaf.Raw), base64.StdEncoding.EncodeToString(foreignCA.Raw)}}, base())},
		{"expired 2 minutes ago", g.Sign(tb, with("exp", now.Add(-2*time.Minute).Unix()))},
		{"not valid for another 2 minutes", g.Sign(tb, with("nbf", now.Add(2*time.Minute).Unix()))},
		{"issued 2 minutes in the future", g.Sign(tb, with("iat", now.Add(2*time.Minute).Unix()))},
		{"no exp", g.Sign(tb, without("exp"))},
		{"audience of another service", g.Sign(tb, with("aud", "other_registry"))},
		{"no audience", g.Sign(tb, without("aud"))},
		{"issuer of another token service", g.Sign(tb, with("iss", "evil-issuer"))},
		{"no issuer", g.Sign(tb, without("iss"))},
	}
}

// foreignChain is a CA the registry does not trust and an ECDSA leaf it
// issued.
func foreignChain(tb testing.TB) (ca, leaf *x509.Certificate, leafKey *ecdsa.PrivateKey) {
	tb.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "foreign CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(8), Subject: pkix.Name{CommonName: "foreign token signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(leafDER)
	return ca, leaf, leafKey
}
