package server_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// pushRandom pushes a small random image with basic credentials (empty
// user: anonymous) through go-containerregistry's token flow.
func pushRandom(t *testing.T, ref, user, pw string) (string, error) {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	var a authn.Authenticator = authn.Anonymous
	if user != "" {
		a = &authn.Basic{Username: user, Password: pw}
	}
	if err := remote.Write(r, img, remote.WithAuth(a)); err != nil {
		return "", err
	}
	d, _ := img.Digest()
	return d.String(), nil
}

func pullRef(ref, user, pw string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	var a authn.Authenticator = authn.Anonymous
	if user != "" {
		a = &authn.Basic{Username: user, Password: pw}
	}
	img, err := remote.Image(r, remote.WithAuth(a))
	if err != nil {
		return err
	}
	_, err = img.RawManifest()
	return err
}

func b64seg(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestAuthSecurity is issue 5's security acceptance list against a real
// server with auth on, real SQLite and go-containerregistry as the client.
func TestAuthSecurity(t *testing.T) {
	ctx := context.Background()
	e := startAuthServer(t, nil)
	adm := e.admin(t)
	var secrets []string // everything that must never reach a log line
	secrets = append(secrets, e.AdminPassword)
	for _, p := range [][2]string{{"group/app", auth.VisibilityPrivate}, {"other/proj", auth.VisibilityPrivate}, {"pub", auth.VisibilityPublic}} {
		if _, err := adm.AddProject(ctx, p[0], p[1], ""); err != nil {
			t.Fatal(err)
		}
	}
	const alicePW, bobPW = "alice-secret-pw", "bob-secret-pw"
	secrets = append(secrets, alicePW, bobPW)
	for _, u := range [][2]string{{"alice", alicePW}, {"bob", bobPW}} {
		if _, err := adm.AddUser(ctx, u[0], u[1], false); err != nil {
			t.Fatal(err)
		}
	}
	if err := adm.Store.SetMember(ctx, "group/app", "alice", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	jobA, _, err := adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "101"})
	if err != nil {
		t.Fatal(err)
	}
	pat, _, err := adm.CreatePAT(ctx, "alice", "ci", []string{"pull"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, jobA, pat)
	reg := e.Host

	// Content in both projects, pushed by the admin and by the job.
	bDigest, err := pushRandom(t, reg+"/other/proj:v1", "admin", e.AdminPassword)
	if err != nil {
		t.Fatalf("admin push to other/proj: %v", err)
	}
	aDigest, err := pushRandom(t, reg+"/group/app:v1", auth.JobTokenUser, jobA)
	if err != nil {
		t.Fatalf("job token push to its own project: %v", err)
	}
	if _, err := pushRandom(t, reg+"/pub:v1", "admin", e.AdminPassword); err != nil {
		t.Fatal(err)
	}

	t.Run("challenge", func(t *testing.T) {
		resp, _ := call(t, http.MethodPost, e.URL+"/v2/group/app/blobs/uploads/", "", nil)
		want := fmt.Sprintf(`Bearer realm="%s/auth/token",service="%s",scope="repository:group/app:pull,push"`, e.URL, e.Host)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
			t.Fatalf("anonymous POST: %s, WWW-Authenticate %q; want 401 with %q", resp.Status, resp.Header.Get("WWW-Authenticate"), want)
		}
		resp, _ = call(t, http.MethodGet, e.URL+"/v2/", "", nil)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Fatalf("GET /v2/ without a token: %s", resp.Status)
		}
		// Basic credentials are not accepted on /v2/ (clients follow the challenge).
		req, _ := http.NewRequest(http.MethodGet, e.URL+"/v2/group/app/tags/list", nil)
		req.SetBasicAuth("alice", alicePW)
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != http.StatusUnauthorized {
			t.Fatalf("Basic on /v2/: %s, want 401", r2.Status)
		}
	})

	t.Run("anonymous push refused", func(t *testing.T) {
		tr := e.token(t, "", "", false, "repository:pub:pull,push", "repository:group/app:push")
		if tr.status != http.StatusOK {
			t.Fatalf("anonymous token: %d", tr.status)
		}
		got := grantedAccess(t, tr.Token)
		if len(got) != 1 || got[0].Name != "pub" || strings.Join(got[0].Actions, ",") != "pull" {
			t.Fatalf("anonymous grant = %+v, want pull on pub only", got)
		}
		resp, _ := call(t, http.MethodPost, e.URL+"/v2/pub/blobs/uploads/", tr.Token, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("anonymous upload: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
		}
		if _, err := pushRandom(t, reg+"/pub:anon", "", ""); err == nil {
			t.Fatal("anonymous push to a public project succeeded")
		}
		if err := pullRef(reg+"/pub:v1", "", ""); err != nil {
			t.Fatalf("anonymous pull of a public project: %v", err)
		}
	})

	t.Run("private pull refused", func(t *testing.T) {
		tr := e.token(t, "", "", false, "repository:group/app:pull")
		if g := grantedAccess(t, tr.Token); len(g) != 0 {
			t.Fatalf("anonymous granted %+v on a private project", g)
		}
		resp, _ := call(t, http.MethodGet, e.URL+"/v2/group/app/manifests/v1", tr.Token, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous manifest GET: %s", resp.Status)
		}
		if err := pullRef(reg+"/group/app:v1", "", ""); err == nil {
			t.Fatal("anonymous pull of a private project succeeded")
		}
		if err := pullRef(reg+"/group/app:v1", "bob", bobPW); err == nil {
			t.Fatal("non-member pull of a private project succeeded")
		}
		if err := pullRef(reg+"/group/app:v1", "alice", alicePW); err != nil {
			t.Fatalf("member pull: %v", err)
		}
		if err := pullRef(reg+"/group/app:v1", "alice", pat); err != nil {
			t.Fatalf("pull with a pull-scoped PAT: %v", err)
		}
		if _, err := pushRandom(t, reg+"/group/app:pat", "alice", pat); err == nil {
			t.Fatal("push with a pull-only PAT succeeded")
		}
	})

	t.Run("job token of A cannot push, delete or sign in B", func(t *testing.T) {
		tr := e.token(t, auth.JobTokenUser, jobA, false, "repository:other/proj:pull,push,delete", "repository:group/app:pull,push")
		if tr.status != http.StatusOK {
			t.Fatalf("job token: %d", tr.status)
		}
		for _, g := range grantedAccess(t, tr.Token) {
			if g.Name == "other/proj" {
				t.Fatalf("job of group/app granted %v on other/proj", g.Actions)
			}
		}
		secrets = append(secrets, tr.Token)
		img := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`
		sigTag := strings.Replace(bDigest, ":", "-", 1) + ".sig"
		for _, c := range []struct{ method, path string }{
			{http.MethodPut, "/v2/other/proj/manifests/v2"},
			{http.MethodPut, "/v2/other/proj/manifests/" + sigTag},
			{http.MethodPost, "/v2/other/proj/blobs/uploads/"},
			{http.MethodDelete, "/v2/other/proj/manifests/" + bDigest},
			{http.MethodDelete, "/v2/other/proj/manifests/v1"},
			{http.MethodGet, "/v2/other/proj/manifests/v1"},
		} {
			resp, _ := call(t, c.method, e.URL+c.path, tr.Token, []byte(img), "Content-Type", "application/vnd.oci.image.manifest.v1+json")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with job A's token: %s, want 401", c.method, c.path, resp.Status)
			}
		}
		if _, err := pushRandom(t, reg+"/other/proj:"+sigTag, auth.JobTokenUser, jobA); err == nil {
			t.Fatal("job token of group/app pushed a signature tag into other/proj")
		}
		// A mount from B does not leak B's blob into A: the mount is dropped
		// and a normal upload session starts.
		resp, _ := call(t, http.MethodPost, e.URL+"/v2/group/app/blobs/uploads/?mount="+url.QueryEscape(bDigest)+"&from=other/proj", tr.Token, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("cross-project mount by job A: %s, want 202 (mount refused, upload started)", resp.Status)
		}
		// Positive control: the job signs in its own project (audited as sign).
		if _, err := pushRandom(t, reg+"/group/app:"+strings.Replace(aDigest, ":", "-", 1)+".sig", auth.JobTokenUser, jobA); err != nil {
			t.Fatalf("job signing in its own project: %v", err)
		}
		if err := pullRef(reg+"/other/proj:v1", "admin", e.AdminPassword); err != nil {
			t.Fatalf("B's image damaged: %v", err)
		}
	})

	t.Run("scope escalation reduced", func(t *testing.T) {
		tr := e.token(t, "alice", alicePW, false, "repository:group/app:pull,push,delete", "repository:other/proj:pull,push", "registry:catalog:*")
		g := grantedAccess(t, tr.Token)
		if len(g) != 1 || g[0].Name != "group/app" || strings.Join(g[0].Actions, ",") != "pull,push" {
			t.Fatalf("alice (developer) granted %+v; want pull,push on group/app only", g)
		}
		secrets = append(secrets, tr.Token)
		resp, _ := call(t, http.MethodDelete, e.URL+"/v2/group/app/manifests/"+aDigest, tr.Token, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("delete with a reduced token: %s", resp.Status)
		}
		resp, _ = call(t, http.MethodGet, e.URL+"/v2/_catalog", tr.Token, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("catalog for a non-admin: %s", resp.Status)
		}
		// The same through the OAuth2 password grant.
		or := e.oauthToken(t, url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW},
			"service": {e.Host}, "client_id": {"test"}, "scope": {"repository:group/app:pull,push,delete repository:other/proj:push"}, "access_type": {"offline"}})
		if or.status != http.StatusOK || or.Refresh == "" {
			t.Fatalf("oauth password grant: %d refresh=%v", or.status, or.Refresh != "")
		}
		if g := grantedAccess(t, or.Token); len(g) != 1 || strings.Join(g[0].Actions, ",") != "pull,push" {
			t.Fatalf("oauth grant = %+v", g)
		}
		secrets = append(secrets, or.Token, or.Refresh)
		rr := e.oauthToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {or.Refresh}, "service": {e.Host},
			"client_id": {"test"}, "scope": {"repository:group/app:pull"}})
		if rr.status != http.StatusOK {
			t.Fatalf("refresh grant: %d", rr.status)
		}
		secrets = append(secrets, rr.Token)
		if bad := e.oauthToken(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {or.Token}, "service": {e.Host}}); bad.status != http.StatusUnauthorized {
			t.Fatalf("access token used as refresh token: %d", bad.status)
		}
		admTok := e.token(t, "admin", e.AdminPassword, false, "registry:catalog:*")
		secrets = append(secrets, admTok.Token)
		if resp, _ := call(t, http.MethodGet, e.URL+"/v2/_catalog", admTok.Token, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("catalog for the admin: %s", resp.Status)
		}
	})

	t.Run("forged access tokens refused", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(e.DataDir, "keys", "registry-token.pem"))
		if err != nil {
			t.Fatal(err)
		}
		key, err := keystore.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		issuer := e.URL + "/auth"
		mk := func(service string, now time.Time) string {
			s, err := auth.NewTokenSigner(key, issuer, service)
			if err != nil {
				t.Fatal(err)
			}
			svc, err := auth.New(adm.Store, s, nil, nil, auth.Config{Issuer: issuer, Realm: e.URL + "/auth/token", Service: service, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			r, err := svc.IssueToken(ctx, auth.Principal{Kind: auth.KindUser, Name: "admin", User: "admin", Admin: true}, []auth.Access{{Type: auth.TypeRepository, Name: "other/proj", Actions: []string{"pull"}}}, false, "")
			if err != nil {
				t.Fatal(err)
			}
			return r.Token
		}
		valid := mk(e.Host, time.Now())
		expired := mk(e.Host, time.Now().Add(-time.Hour))
		wrongAud := mk("elsewhere.example", time.Now())
		aliceTok := e.token(t, "alice", alicePW, false, "repository:group/app:pull").Token
		parts := strings.Split(aliceTok, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		json.Unmarshal(payload, &claims)
		claims["access"] = []auth.Access{{Type: auth.TypeRepository, Name: "other/proj", Actions: []string{"pull"}}}
		tampered := parts[0] + "." + b64seg(claims) + "." + parts[2]
		none := b64seg(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64seg(claims) + "."
		secrets = append(secrets, valid, aliceTok)

		u := e.URL + "/v2/other/proj/manifests/v1"
		if resp, _ := call(t, http.MethodGet, u, valid, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("control: a genuine token is refused: %s", resp.Status)
		}
		for name, tok := range map[string]string{"expired": expired, "wrong audience": wrongAud, "tampered": tampered, "alg none": none} {
			resp, _ := call(t, http.MethodGet, u, tok, nil)
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s token: %s %q, want 401 invalid_token", name, resp.Status, resp.Header.Get("WWW-Authenticate"))
			}
		}
		evs, err := adm.Store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditInvalidToken})
		if err != nil || len(evs) != 3 {
			t.Fatalf("auth.invalid audit events: %d (%v), want 3 (tampered, wrong audience, alg none; expiry is routine)", len(evs), err)
		}
	})

	t.Run("OIDC token login", func(t *testing.T) {
		good := mintIDToken(t, e.URL, e.DataDir, fmt.Sprintf(`{"aud":%q,"project":"group/app","ref":"main","job_id":"555"}`, e.URL))
		sigstoreAud := mintIDToken(t, e.URL, e.DataDir, `{"aud":"sigstore","project":"group/app","ref":"main"}`)
		unknownProject := mintIDToken(t, e.URL, e.DataDir, fmt.Sprintf(`{"aud":%q,"project":"nope/x","ref":"main"}`, e.URL))
		secrets = append(secrets, good, sigstoreAud)
		tr := e.token(t, auth.JobTokenUser, good, true, "repository:group/app:pull,push", "repository:other/proj:pull,push")
		if tr.status != http.StatusOK {
			t.Fatalf("OIDC login: %d", tr.status)
		}
		if g := grantedAccess(t, tr.Token); len(g) != 1 || g[0].Name != "group/app" || strings.Join(g[0].Actions, ",") != "pull,push" {
			t.Fatalf("OIDC grant = %+v, want pull,push on group/app only", g)
		}
		secrets = append(secrets, tr.Token, tr.Refresh)
		if _, err := pushRandom(t, reg+"/group/app/oidc:v1", "oidc", good); err != nil {
			t.Fatalf("push with an OIDC ID token: %v", err)
		}
		if _, err := pushRandom(t, reg+"/other/proj:oidc", "oidc", good); err == nil {
			t.Fatal("OIDC token of group/app pushed into other/proj")
		}

		// Forgeries of the ID token.
		parts := strings.Split(good, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		json.Unmarshal(payload, &claims)
		claims["project_path"] = "other/proj"
		tampered := parts[0] + "." + b64seg(claims) + "." + parts[2]
		none := b64seg(map[string]string{"alg": "none", "typ": "JWT"}) + "." + b64seg(claims) + "."
		// Expired, with a genuine signature of the issuer's key.
		var hdr map[string]any
		h, _ := base64.RawURLEncoding.DecodeString(parts[0])
		json.Unmarshal(h, &hdr)
		claims["project_path"] = "group/app"
		claims["exp"] = time.Now().Add(-2 * time.Hour).Unix()
		claims["iat"] = time.Now().Add(-3 * time.Hour).Unix()
		claims["nbf"] = time.Now().Add(-3 * time.Hour).Unix()
		rawKey, err := os.ReadFile(filepath.Join(e.DataDir, "keys", "oidc-signing-1.pem"))
		if err != nil {
			t.Fatal(err)
		}
		oidcKey, err := keystore.Parse(rawKey)
		if err != nil {
			t.Fatal(err)
		}
		kid, _ := hdr["kid"].(string)
		tp, _ := (&jose.JSONWebKey{Key: oidcKey.Public()}).Thumbprint(crypto.SHA256)
		if kid != base64.RawURLEncoding.EncodeToString(tp) {
			t.Fatalf("minted token kid %q is not the key file's thumbprint", kid)
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: oidcKey}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
		if err != nil {
			t.Fatal(err)
		}
		expired, err := jwt.Signed(signer).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{"wrong audience": sigstoreAud, "tampered": tampered, "alg none": none, "expired": expired, "unknown project": unknownProject} {
			if r := e.token(t, auth.JobTokenUser, tok, false, "repository:group/app:pull"); r.status != http.StatusUnauthorized {
				t.Errorf("OIDC login with a %s token: %d, want 401", name, r.status)
			}
		}
	})

	t.Run("audit API", func(t *testing.T) {
		get := func(user, pw, bearer, query string) (int, []auth.AuditEventJSON) {
			req, _ := http.NewRequest(http.MethodGet, e.URL+"/api/v1/audit?"+query, nil)
			if user != "" {
				req.SetBasicAuth(user, pw)
			}
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out struct {
				Events []auth.AuditEventJSON `json:"events"`
			}
			json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out.Events
		}
		if st, _ := get("", "", "", ""); st != http.StatusUnauthorized {
			t.Fatalf("audit without credentials: %d", st)
		}
		if st, _ := get("alice", alicePW, "", ""); st != http.StatusForbidden {
			t.Fatalf("audit as non-admin: %d", st)
		}
		st, evs := get("admin", e.AdminPassword, "", "action=sign&repository=group/app")
		if st != http.StatusOK || len(evs) != 1 || evs[0].Actor != "ci-job:group/app:101" || evs[0].ActorKind != auth.KindJob {
			t.Fatalf("sign events: %d %+v", st, evs)
		}
		admTok, _ := os.ReadFile(filepath.Join(e.DataDir, server.AdminTokenFile))
		secrets = append(secrets, strings.TrimSpace(string(admTok)))
		st, evs = get("", "", strings.TrimSpace(string(admTok)), "user=admin&action=push&since=1h")
		if st != http.StatusOK || len(evs) != 2 {
			t.Fatalf("admin pushes via admin token: %d %+v", st, evs)
		}
		st, evs = get("admin", e.AdminPassword, "", "action=auth.failure")
		if st != http.StatusOK || len(evs) < 5 {
			t.Fatalf("auth failures: %d, %d events", st, len(evs))
		}
		st, evs = get("admin", e.AdminPassword, "", "action=auth.denied&user=ci-job:group/app:101")
		if st != http.StatusOK || len(evs) == 0 {
			t.Fatalf("denied pushes of job A: %d %+v", st, evs)
		}
	})

	t.Run("delete audited", func(t *testing.T) {
		tr := e.token(t, "admin", e.AdminPassword, false, "repository:other/proj:delete")
		resp, _ := call(t, http.MethodDelete, e.URL+"/v2/other/proj/manifests/"+bDigest, tr.Token, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("admin delete: %s", resp.Status)
		}
		evs, _ := adm.Store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditDelete, Repository: "other/proj"})
		if len(evs) != 1 || evs[0].Actor != "admin" || evs[0].Digest != bDigest {
			t.Fatalf("delete audit: %+v", evs)
		}
	})

	t.Run("secrets never logged", func(t *testing.T) {
		logs := e.Logs.String()
		if !strings.Contains(logs, "auth.failure") {
			t.Fatal("log capture is not working: no auth event in the logs")
		}
		for _, s := range secrets {
			if s == "" {
				t.Fatal("empty secret collected")
			}
			probe := s
			if len(probe) > 40 {
				probe = probe[len(probe)-40:] // the signature / random tail
			}
			if strings.Contains(logs, probe) {
				t.Errorf("a secret (%d bytes, ends %q) appears in the server log", len(s), probe[len(probe)-6:])
			}
		}
	})
}

// TestAuthBruteForce: failed logins are throttled per user with 429 and
// Retry-After, even for the right password, and the throttle is audited.
func TestAuthBruteForce(t *testing.T) {
	ctx := context.Background()
	e := startAuthServer(t, nil)
	adm := e.admin(t)
	if _, err := adm.AddUser(ctx, "alice", "alice-secret-pw", false); err != nil {
		t.Fatal(err)
	}
	var last tokenReply
	n := 0
	for ; n < 40; n++ {
		last = e.token(t, "alice", fmt.Sprintf("guess-%d", n), false)
		if last.status != http.StatusUnauthorized {
			break
		}
	}
	if last.status != http.StatusTooManyRequests || n != 10 {
		t.Fatalf("after %d wrong passwords: status %d; want 429 after 10", n, last.status)
	}
	if ra := last.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without Retry-After: %q", ra)
	}
	if r := e.token(t, "alice", "alice-secret-pw", false); r.status != http.StatusTooManyRequests {
		t.Fatalf("right password during the lockout: %d, want 429", r.status)
	}
	if _, err := pushRandom(t, e.Host+"/x:1", "alice", "alice-secret-pw"); err == nil || !strings.Contains(err.Error(), "TOOMANYREQUESTS") {
		t.Fatalf("client error during lockout: %v", err)
	}
	evs, _ := adm.Store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditThrottled})
	if len(evs) == 0 {
		t.Fatal("throttling not audited")
	}
}

// An external issuer's ID tokens log in only to projects pinned to it; an
// unpinned project takes the built-in issuer's tokens only, so the owner of
// the same project path on another GitLab cannot push here.
func TestOIDCLoginNeedsAProjectPinnedToTheIssuer(t *testing.T) {
	gitlab := testenv.StartServer(t, nil) // another issuer, trusted by e
	e := startAuthServer(t, func(c *config.Server) {
		c.OIDCIssuers = []config.OIDCIssuer{{URL: gitlab.URL, Type: "gitlab-pipeline"}}
	})
	ctx := context.Background()
	adm := e.admin(t)
	for _, p := range []string{"group/app", "group/pinned"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := adm.SetProjectIssuer(ctx, "group/pinned", gitlab.URL); err != nil {
		t.Fatal(err)
	}
	if err := adm.SetProjectIssuer(ctx, "group/app", "not a url"); err == nil {
		t.Fatal("pinned to a non-URL")
	}
	external := func(project string) string {
		return mintIDToken(t, gitlab.URL, gitlab.DataDir, fmt.Sprintf(`{"aud":%q,"project":%q,"ref":"main"}`, e.URL, project))
	}
	scope := func(p string) string { return "repository:" + p + ":pull,push" }
	if tr := e.token(t, auth.JobTokenUser, external("group/app"), false, scope("group/app")); tr.status != http.StatusUnauthorized {
		t.Fatalf("external issuer's token for an unpinned project: %d, want 401", tr.status)
	}
	tr := e.token(t, auth.JobTokenUser, external("group/pinned"), false, scope("group/pinned"))
	if tr.status != http.StatusOK {
		t.Fatalf("external issuer's token for the project pinned to it: %d", tr.status)
	}
	if g := grantedAccess(t, tr.Token); len(g) != 1 || g[0].Name != "group/pinned" || strings.Join(g[0].Actions, ",") != "pull,push" {
		t.Fatalf("grant = %+v, want pull,push on group/pinned", g)
	}
	// A user "alice" here may pull group/app; alice of the other GitLab
	// does not get that through an ID token of group/pinned.
	if _, err := adm.AddUser(ctx, "alice", "alice-password-123", false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "group/app", "alice", auth.RoleReporter); err != nil {
		t.Fatal(err)
	}
	asAlice := mintIDToken(t, gitlab.URL, gitlab.DataDir, fmt.Sprintf(`{"aud":%q,"project":"group/pinned","ref":"main","user":"alice"}`, e.URL))
	tr = e.token(t, auth.JobTokenUser, asAlice, false, "repository:group/app:pull")
	if tr.status != http.StatusOK {
		t.Fatalf("external token naming user alice: %d", tr.status)
	}
	if g := grantedAccess(t, tr.Token); len(g) != 0 {
		t.Fatalf("an external issuer's user_login got the local user's rights: %+v", g)
	}
	builtin := mintIDToken(t, e.URL, e.DataDir, fmt.Sprintf(`{"aud":%q,"project":"group/app","ref":"main"}`, e.URL))
	if tr := e.token(t, auth.JobTokenUser, builtin, false, scope("group/app")); tr.status != http.StatusOK {
		t.Fatalf("built-in issuer's token for an unpinned project: %d", tr.status)
	}
	builtinPinned := mintIDToken(t, e.URL, e.DataDir, fmt.Sprintf(`{"aud":%q,"project":"group/pinned","ref":"main"}`, e.URL))
	if tr := e.token(t, auth.JobTokenUser, builtinPinned, false, scope("group/pinned")); tr.status != http.StatusUnauthorized {
		t.Fatalf("built-in issuer's token for a project pinned to another issuer: %d, want 401", tr.status)
	}
	if err := adm.SetProjectIssuer(ctx, "group/pinned", ""); err != nil {
		t.Fatal(err)
	}
	if tr := e.token(t, auth.JobTokenUser, external("group/pinned"), false, scope("group/pinned")); tr.status != http.StatusUnauthorized {
		t.Fatalf("external token after unpinning: %d, want 401", tr.status)
	}
}
