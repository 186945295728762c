package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// The external token service tests stand GitLab in with
// testenv.GitLabJWT: GitLab itself cannot run here, so its /jwt/auth is
// played by a test endpoint minting tokens in GitLab's documented format
// (RS256, libtrust kid, iss gitlab-issuer, aud container_registry, access
// entries with meta) for what the test's table grants.

// Credentials of the GitLab stand-in.
const (
	extJobToken = "glcbt-64_Zq8sJxKTr2nV1tYwE3hCmGfA9LdUoPi5" // a CI job token of group/app's pipeline run by alice
	extRootPW   = "root-gitlab-password"
	extRitaPW   = "rita-gitlab-password"
)

// startExternalTokenServer runs a server with --auth=token trusting a
// GitLab stand-in whose logins are: a CI job of group/app (pull, push and
// delete there, pull on shared/base), the instance admin root, and rita,
// a reporter of group/app.
func startExternalTokenServer(t *testing.T) (*authEnv, *testenv.GitLabJWT) {
	t.Helper()
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{Logins: []testenv.GitLabLogin{
		{User: "gitlab-ci-token", Password: extJobToken, Subject: "alice", AuthType: "build",
			Grants: map[string][]string{"group/app": {"pull", "push", "delete"}, "shared/base": {"pull"}}},
		{User: "root", Password: extRootPW, Subject: "root", AuthType: "gitlab_or_ldap", Admin: true,
			Grants: map[string][]string{"group/app": {"pull", "push", "delete", "*"}, "other/proj": {"pull", "push", "delete", "*"}}},
		{User: "rita", Password: extRitaPW, Subject: "rita", AuthType: "gitlab_or_ldap", Grants: map[string][]string{"group/app": {"pull"}}},
	}})
	e := startAuthServer(t, func(c *config.Server) {
		c.Auth, c.TokenRealm, c.TokenService, c.TokenIssuer, c.TokenCert = "token", g.Realm, g.Service, g.Issuer, g.CertFile
	})
	return e, g
}

// TestExternalTokenServiceWithCrane is issue 12's acceptance with a real
// client: crane logs in with a job-token-like password, is sent by
// Hallmark's challenge to the GitLab-style /jwt/auth, and with the tokens
// minted there pushes, pulls, copies, deletes a tag and lists the catalog
// exactly as far as the access claims go; GitLab's own full-access token
// (its UI and cleanup policies) lists and deletes tags; the audit log
// names the GitLab user for pushes and deletes; the local admin keeps
// Basic access to the provenance and audit APIs.
func TestExternalTokenServiceWithCrane(t *testing.T) {
	e, g := startExternalTokenServer(t)
	reg := e.Host
	crane := testenv.Peer(t, "crane")

	// The challenge sends clients to GitLab; the local token endpoint is off.
	resp, body := call(t, http.MethodGet, e.URL+"/v2/", "", nil)
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized ||
		ch != `Bearer realm="`+g.Realm+`",service="container_registry"` {
		t.Fatalf("GET /v2/: %d %q %s", resp.StatusCode, ch, body)
	}
	if resp, _ := call(t, http.MethodGet, e.URL+"/auth/token?service="+e.Host, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the local token endpoint answers %d in token mode, want 404", resp.StatusCode)
	}

	job := newClientEnv(t)
	job.must(t, "", crane, "auth", "login", reg, "-u", "gitlab-ci-token", "-p", extJobToken)
	layer := layerTar(t, job.home, "external token service")
	before := g.Requests.Load()
	job.must(t, "", crane, "append", "--insecure", "-f", layer, "-t", reg+"/group/app:v1")
	if g.Requests.Load() == before {
		t.Fatal("crane pushed without asking the GitLab endpoint for a token")
	}
	digest := strings.TrimSpace(job.must(t, "", crane, "digest", "--insecure", reg+"/group/app:v1"))
	job.must(t, "", crane, "copy", "--insecure", reg+"/group/app:v1", reg+"/group/app/sub:v1")
	job.must(t, "", crane, "tag", "--insecure", reg+"/group/app:v1", "v2")
	job.must(t, "", crane, "delete", "--insecure", reg+"/group/app:v2")
	if tags := job.must(t, "", crane, "ls", "--insecure", reg+"/group/app"); strings.Contains(tags, "v2") || !strings.Contains(tags, "v1") {
		t.Fatalf("tags after deleting v2: %q", tags)
	}
	job.mustFail(t, crane, "copy", "--insecure", reg+"/group/app:v1", reg+"/other/proj:v1")
	job.mustFail(t, crane, "catalog", "--insecure", reg)

	rita := newClientEnv(t)
	rita.must(t, "", crane, "auth", "login", reg, "-u", "rita", "-p", extRitaPW)
	if d := strings.TrimSpace(rita.must(t, "", crane, "digest", "--insecure", reg+"/group/app:v1")); d != digest {
		t.Fatalf("reporter pulls %s, want %s", d, digest)
	}
	rita.mustFail(t, crane, "tag", "--insecure", reg+"/group/app:v1", "rita")
	rita.mustFail(t, crane, "delete", "--insecure", reg+"/group/app:v1")

	root := newClientEnv(t)
	root.must(t, "", crane, "auth", "login", reg, "-u", "root", "-p", extRootPW)
	if cat := root.must(t, "", crane, "catalog", "--insecure", reg); !strings.Contains(cat, "group/app\n") || !strings.Contains(cat, "group/app/sub") {
		t.Fatalf("catalog as the GitLab admin: %q", cat)
	}

	wrong := newClientEnv(t)
	wrong.must(t, "", crane, "auth", "login", reg, "-u", "gitlab-ci-token", "-p", "glcbt-wrong")
	if out := wrong.mustFail(t, crane, "digest", "--insecure", reg+"/group/app:v1"); !strings.Contains(out, "401") && !strings.Contains(strings.ToUpper(out), "UNAUTHORIZED") {
		t.Fatalf("wrong job token: %s", out)
	}

	// GitLab's own registry client (UI, cleanup policies): full access
	// tokens without a subject.
	full := g.FullAccessToken(t, "group/app/sub")
	if resp, body := call(t, http.MethodGet, e.URL+"/v2/group/app/sub/tags/list", full, nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"v1"`) {
		t.Fatalf("GitLab UI tag list: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, http.MethodDelete, e.URL+"/v2/group/app/sub/manifests/v1", full, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("GitLab cleanup policy tag delete: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, http.MethodDelete, e.URL+"/v2/group/app/manifests/v1", full, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("full access token for group/app/sub deleting in group/app: %d %s", resp.StatusCode, body)
	}

	// The audit log (local admin, Basic) names the GitLab user.
	var audit struct {
		Events []auth.AuditEventJSON `json:"events"`
	}
	getJSONBasic(t, e.URL+"/api/v1/audit?limit=1000", "admin", e.AdminPassword, &audit)
	has := func(action, actor, repo, ref string) bool {
		return slices.ContainsFunc(audit.Events, func(ev auth.AuditEventJSON) bool {
			return ev.Action == action && ev.Actor == actor && ev.ActorKind == auth.KindExternal && ev.Repository == repo && strings.Contains(ev.Reference, ref)
		})
	}
	for _, w := range []struct{ action, actor, repo, ref string }{
		{auth.AuditPush, "alice", "group/app", "v1"}, {auth.AuditPush, "alice", "group/app/sub", "v1"},
		{auth.AuditDelete, "alice", "group/app", "v2"}, {auth.AuditDelete, "", "group/app/sub", "v1"},
	} {
		if !has(w.action, w.actor, w.repo, w.ref) {
			t.Errorf("no audit event %s by external %q on %s %s: %+v", w.action, w.actor, w.repo, w.ref, audit.Events)
		}
	}

	// The provenance API: the local admin's Basic credentials still work;
	// a GitLab token is a pull check from its access claim.
	var sigs json.RawMessage
	getJSONBasic(t, e.URL+"/api/v1/images/group/app/signatures?digest="+url.QueryEscape(digest), "admin", e.AdminPassword, &sigs)
	_, ritaTok := g.Token(t, "rita", extRitaPW, "repository:group/app:pull")
	if resp, body := call(t, http.MethodGet, e.URL+"/api/v1/images/group/app/signatures?digest="+url.QueryEscape(digest), ritaTok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("provenance API with the reporter's GitLab token: %d %s", resp.StatusCode, body)
	}
	if resp, body := call(t, http.MethodGet, e.URL+"/api/v1/images/other/proj/signatures?digest="+url.QueryEscape(digest), ritaTok, nil); resp.StatusCode == http.StatusOK {
		t.Fatalf("provenance API: a token for group/app reads other/proj: %s", body)
	}
}

// TestExternalTokenServiceRefusesForgeries: through the whole server
// (the guard as server.go wires it, the registry behind it), every forged
// or out-of-bounds token is answered 401 with the OCI error body, and a
// genuine token for one repository reaches no other.
func TestExternalTokenServiceRefusesForgeries(t *testing.T) {
	e, g := startExternalTokenServer(t)
	if _, err := pushRandom(t, e.Host+"/group/app:v1", "gitlab-ci-token", extJobToken); err != nil {
		t.Fatal(err)
	}
	if _, err := pushRandom(t, e.Host+"/other/proj:v1", "root", extRootPW); err != nil {
		t.Fatal(err)
	}
	access := []map[string]any{{"type": "repository", "name": "other/proj", "actions": []string{"*"}}}
	for _, f := range g.Forgeries(t, access) {
		resp, body := call(t, http.MethodGet, e.URL+"/v2/other/proj/manifests/v1", f.Token, nil)
		var er oci.ErrorResponse
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &er) != nil || len(er.Errors) == 0 || er.Errors[0].Code != oci.CodeUnauthorized {
			t.Errorf("%s: %d %s, want 401 UNAUTHORIZED", f.Name, resp.StatusCode, body)
		}
	}
	status, jobTok := g.Token(t, "gitlab-ci-token", extJobToken, "repository:group/app:pull,push,delete", "repository:other/proj:pull,push,delete")
	if status != http.StatusOK {
		t.Fatalf("/jwt/auth: %d", status)
	}
	if resp, _ := call(t, http.MethodGet, e.URL+"/v2/group/app/manifests/v1", jobTok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("control: the job's token on its own project: %d", resp.StatusCode)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if resp, _ := call(t, m, e.URL+"/v2/other/proj/manifests/v1", jobTok, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s on other/proj with the job's token (GitLab granted nothing there): %d", m, resp.StatusCode)
		}
	}
}

func getJSONBasic(t *testing.T, u, user, pw string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.SetBasicAuth(user, pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// TestExternalTokenServiceBadCert: a --token-cert that is missing, holds
// a private key or no key at all stops the start with a message naming
// the flag, before anything listens.
func TestExternalTokenServiceBadCert(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	files := map[string][]byte{
		"private.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"empty.pem":   []byte("not a certificate\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ file, want string }{
		{"missing.pem", "no such file"},
		{"private.pem", "private key"},
		{"empty.pem", "no certificate or public key"},
	} {
		c := config.Defaults()
		c.Addr, c.DataDir = "127.0.0.1:0", t.TempDir()
		c.Auth, c.TokenRealm, c.TokenService, c.TokenIssuer = "token", "https://gitlab.example.com/jwt/auth", "container_registry", "gitlab-issuer"
		c.TokenCert = filepath.Join(dir, tc.file)
		srv, err := server.New(context.Background(), c, slog.New(slog.DiscardHandler))
		if err == nil {
			srv.Close()
			t.Fatalf("token-cert %s accepted", tc.file)
		}
		if !strings.Contains(err.Error(), "token-cert") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("token-cert %s: %v, want it named with %q", tc.file, err, tc.want)
		}
	}
}
