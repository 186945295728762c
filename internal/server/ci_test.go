package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

const ciSHA = "5c0f1e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d"

// postCIJob calls POST /api/v1/ci/job with the given Authorization header
// value ("" for none) and returns the status and decoded reply.
func postCIJob(t *testing.T, base, authz, body string) (int, map[string]string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+server.CIJobPath, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := newHTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	var out server.CIJobResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw.Bytes(), &out); err != nil {
			t.Fatalf("reply: %v\n%s", err, raw.Bytes())
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("a reply holding tokens must not be cached: Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
	}
	return resp.StatusCode, out.Variables, raw.String()
}

func adminBearer(tb testing.TB, dataDir string) string {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, server.AdminTokenFile))
	if err != nil {
		tb.Fatal(err)
	}
	return "Bearer " + strings.TrimSpace(string(raw))
}

func basicAuth(user, pw string) string {
	r, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	r.SetBasicAuth(user, pw)
	return r.Header.Get("Authorization")
}

// ciCert asks the server's CA (Fulcio v2 API) for a certificate for the ID
// token, proving possession of a fresh key over the token's subject.
func ciCert(t *testing.T, base, token string) (*x509.Certificate, error) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	sum := sha256.Sum256([]byte(claims.Sub))
	proof, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
	body, _ := json.Marshal(map[string]any{
		"credentials": map[string]any{"oidcIdentityToken": token},
		"publicKeyRequest": map[string]any{
			"publicKey":         map[string]any{"algorithm": "ECDSA", "content": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))},
			"proofOfPossession": proof,
		},
	})
	resp, err := newHTTPClient().Post(base+"/api/v2/signingCert", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CA: HTTP %d: %s", resp.StatusCode, raw.Bytes())
	}
	var sc struct {
		SCT struct {
			Chain struct {
				Certificates []string `json:"certificates"`
			} `json:"chain"`
		} `json:"signedCertificateEmbeddedSct"`
	}
	if err := json.Unmarshal(raw.Bytes(), &sc); err != nil || len(sc.SCT.Chain.Certificates) == 0 {
		t.Fatalf("CA reply: %v %s", err, raw.Bytes())
	}
	blk, _ := pem.Decode([]byte(sc.SCT.Chain.Certificates[0]))
	if blk == nil {
		t.Fatalf("CA reply holds no PEM certificate: %s", raw.Bytes())
	}
	return x509.ParseCertificate(blk.Bytes)
}

// certExt returns the value of the certificate extension oid, decoded as
// an ASN.1 UTF8String when it is one (Fulcio's v2 extensions), else raw.
func certExt(c *x509.Certificate, oid asn1.ObjectIdentifier) string {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			var s string
			if rest, err := asn1.Unmarshal(e.Value, &s); err == nil && len(rest) == 0 {
				return s
			}
			return string(e.Value)
		}
	}
	return ""
}

// pushAs pushes a random image to host/repo:tag with Basic credentials.
func pushAs(host, repo, user, pw string) error {
	ref, err := name.ParseReference(host + "/" + repo + ":ci")
	if err != nil {
		return err
	}
	img, err := random.Image(128, 1)
	if err != nil {
		return err
	}
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	return remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: user, Password: pw}), remote.WithTransport(tr))
}

// TestCIJob: the environment of a CI job, as `hallmark ci job` gets it,
// with auth on. Every variable is there and consistent with the request;
// the ID token verifies against the built-in issuer with the same claims;
// the CA issues for it a certificate whose identity and issuer are the
// ones the reference pipeline's verify step builds from the variables; the
// job token pushes to its project only.
func TestCIJob(t *testing.T) {
	e := startAuthServer(t, nil)
	body := fmt.Sprintf(`{"project":"Group/App","ref":"main","sha":%q,"pipeline_id":"574","job_id":"302","user":"alice","user_name":"Alice O'Brien","ttl":"30m"}`, strings.ToUpper(ciSHA))
	status, v, raw := postCIJob(t, e.URL, adminBearer(t, e.DataDir), body)
	if status != http.StatusOK {
		t.Fatalf("POST %s: %d %s", server.CIJobPath, status, raw)
	}
	for _, k := range server.CIJobVariables {
		if _, ok := v[k]; !ok {
			t.Errorf("variable %s missing", k)
		}
	}
	if len(v) != len(server.CIJobVariables) {
		t.Errorf("%d variables, want the %d of CIJobVariables", len(v), len(server.CIJobVariables))
	}
	u, _ := url.Parse(e.URL)
	want := map[string]string{
		"CI": "true", "GITLAB_CI": "true",
		"CI_SERVER_URL": e.URL, "CI_SERVER_HOST": u.Hostname(), "CI_SERVER_PORT": u.Port(), "CI_SERVER_PROTOCOL": "http", "CI_SERVER_FQDN": u.Host,
		"CI_PROJECT_PATH": "Group/App", "CI_PROJECT_NAME": "App", "CI_PROJECT_NAMESPACE": "Group", "CI_PROJECT_ROOT_NAMESPACE": "Group",
		"CI_PROJECT_PATH_SLUG": "group-app", "CI_PROJECT_URL": e.URL + "/Group/App", "CI_CONFIG_PATH": ".gitlab-ci.yml",
		"CI_COMMIT_SHA": ciSHA, "CI_COMMIT_SHORT_SHA": ciSHA[:8], "CI_COMMIT_REF_NAME": "main", "CI_COMMIT_REF_SLUG": "main",
		"CI_COMMIT_BRANCH": "main", "CI_COMMIT_TAG": "",
		"CI_PIPELINE_ID": "574", "CI_PIPELINE_SOURCE": "push", "CI_PIPELINE_URL": e.URL + "/Group/App/-/pipelines/574",
		"CI_JOB_ID": "302", "CI_JOB_URL": e.URL + "/Group/App/-/jobs/302",
		"GITLAB_USER_LOGIN": "alice", "GITLAB_USER_NAME": "Alice O'Brien", "GITLAB_USER_EMAIL": "alice@users.noreply." + u.Hostname(),
		"CI_REGISTRY": u.Host, "CI_REGISTRY_IMAGE": u.Host + "/group/app", "CI_REGISTRY_USER": "gitlab-ci-token",
		"COSIGN_YES": "true", "HALLMARK_URL": e.URL, "HALLMARK_REGISTRY": u.Host,
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	trRaw, err := os.ReadFile(filepath.Join(e.DataDir, server.TrustDir, root.TrustedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	if v["HALLMARK_TRUST_FINGERPRINT"] != root.Fingerprint(trRaw) {
		t.Errorf("HALLMARK_TRUST_FINGERPRINT %q is not the trusted root's fingerprint", v["HALLMARK_TRUST_FINGERPRINT"])
	}
	if !strings.HasPrefix(v["CI_JOB_TOKEN"], "hmjob_") || v["CI_REGISTRY_PASSWORD"] != v["CI_JOB_TOKEN"] {
		t.Errorf("job token %q / registry password %q", v["CI_JOB_TOKEN"], v["CI_REGISTRY_PASSWORD"])
	}

	// The ID token: the built-in issuer's, audience sigstore, claims of
	// this very job.
	ver, err := oidc.NewVerifier(nil, nil, oidc.VerifierConfig{Issuers: []oidc.TrustedIssuer{{URL: e.URL, Type: oidc.TypeGitLab}}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ver.Verify(context.Background(), v["SIGSTORE_ID_TOKEN"], "sigstore")
	if err != nil {
		t.Fatalf("SIGSTORE_ID_TOKEN does not verify: %v", err)
	}
	if tok.Issuer != v["CI_SERVER_URL"] || tok.Subject != "project_path:Group/App:ref_type:branch:ref:main" {
		t.Errorf("iss %q sub %q", tok.Issuer, tok.Subject)
	}
	for claim, w := range map[string]string{"project_path": "Group/App", "ref": "main", "ref_type": "branch", "sha": ciSHA,
		"pipeline_id": "574", "job_id": "302", "user_login": "alice", "user_email": v["GITLAB_USER_EMAIL"],
		"project_id": v["CI_PROJECT_ID"], "user_id": v["GITLAB_USER_ID"], "namespace_path": "Group"} {
		if got, _ := tok.StringClaim(claim); got != w {
			t.Errorf("ID token claim %s = %q, want %q", claim, got, w)
		}
	}
	if d := time.Until(tok.Expiry); d > 30*time.Minute+time.Minute || d < 25*time.Minute {
		t.Errorf("ID token expires in %s, want the requested 30m", d)
	}
	if _, err := ver.Verify(context.Background(), v["SIGSTORE_ID_TOKEN"], e.URL); err == nil {
		t.Error("the sigstore ID token was accepted for the registry audience")
	}

	// The CA certifies exactly the identity and issuer the pipeline's
	// verify step builds from the variables.
	cert, err := ciCert(t, e.URL, v["SIGSTORE_ID_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	identity := v["CI_PROJECT_URL"] + "//.gitlab-ci.yml@refs/heads/" + v["CI_COMMIT_REF_NAME"]
	if len(cert.URIs) != 1 || cert.URIs[0].String() != identity {
		t.Errorf("certificate SAN %v, want %s", cert.URIs, identity)
	}
	if got := certExt(cert, fulcio.OIDIssuerV2); got != v["CI_SERVER_URL"] {
		t.Errorf("certificate issuer %q, want CI_SERVER_URL %q", got, v["CI_SERVER_URL"])
	}
	if got := certExt(cert, fulcio.OID(fulcio.SourceRepositoryDigest)); got != ciSHA {
		t.Errorf("certificate source digest %q, want %s", got, ciSHA)
	}
	if got := certExt(cert, fulcio.OID(fulcio.SourceRepositoryRef)); got != "refs/heads/main" {
		t.Errorf("certificate source ref %q", got)
	}
	if got := certExt(cert, fulcio.OID(fulcio.RunInvocationURI)); got != v["CI_JOB_URL"] {
		t.Errorf("certificate run invocation URI %q, want CI_JOB_URL %q", got, v["CI_JOB_URL"])
	}

	// The job token pushes to its project (the lower-cased registry path),
	// not elsewhere.
	if err := pushAs(u.Host, "group/app/img", v["CI_REGISTRY_USER"], v["CI_JOB_TOKEN"]); err != nil {
		t.Errorf("push with the job token to its project: %v", err)
	}
	if err := pushAs(u.Host, "group/other", v["CI_REGISTRY_USER"], v["CI_JOB_TOKEN"]); err == nil {
		t.Error("the job token pushed to another project")
	}

	// Neither token reaches the server log.
	for _, k := range []string{"CI_JOB_TOKEN", "SIGSTORE_ID_TOKEN"} {
		if strings.Contains(e.Logs.String(), v[k]) {
			t.Errorf("%s appears in the server log", k)
		}
	}

	t.Run("tag pipeline", func(t *testing.T) {
		status, v, raw := postCIJob(t, e.URL, adminBearer(t, e.DataDir), `{"project":"group/app","ref":"v1.2.0","ref_type":"tag"}`)
		if status != http.StatusOK {
			t.Fatalf("%d %s", status, raw)
		}
		if v["CI_COMMIT_TAG"] != "v1.2.0" || v["CI_COMMIT_BRANCH"] != "" || v["CI_COMMIT_REF_SLUG"] != "v1-2-0" {
			t.Errorf("tag variables: tag %q branch %q slug %q", v["CI_COMMIT_TAG"], v["CI_COMMIT_BRANCH"], v["CI_COMMIT_REF_SLUG"])
		}
		// Defaults: a random commit, job = pipeline + 1, user hallmark.
		if len(v["CI_COMMIT_SHA"]) != 40 || v["CI_COMMIT_SHA"] == strings.Repeat("0", 40) || v["GITLAB_USER_LOGIN"] != "hallmark" {
			t.Errorf("defaults: sha %q user %q", v["CI_COMMIT_SHA"], v["GITLAB_USER_LOGIN"])
		}
		if v["CI_JOB_ID"] == v["CI_PIPELINE_ID"] || v["CI_JOB_ID"] == "" {
			t.Errorf("job %q pipeline %q", v["CI_JOB_ID"], v["CI_PIPELINE_ID"])
		}
		cert, err := ciCert(t, e.URL, v["SIGSTORE_ID_TOKEN"])
		if err != nil {
			t.Fatal(err)
		}
		if want := v["CI_PROJECT_URL"] + "//.gitlab-ci.yml@refs/tags/v1.2.0"; len(cert.URIs) != 1 || cert.URIs[0].String() != want {
			t.Errorf("SAN %v, want %s", cert.URIs, want)
		}
	})

	t.Run("in process", func(t *testing.T) {
		v, err := e.srv.CIJob(context.Background(), server.CIJobRequest{Project: "group/demo", Ref: "main", SHA: ciSHA, TTL: 10 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if v["CI_PROJECT_URL"] != e.URL+"/group/demo" || v["CI_JOB_TOKEN"] == "" || v["SIGSTORE_ID_TOKEN"] == "" {
			t.Errorf("in-process environment: %v", v)
		}
		_, err = e.srv.CIJob(context.Background(), server.CIJobRequest{Project: "demo", Ref: "main"})
		if !errors.Is(err, server.ErrInvalidCIJob) {
			t.Errorf("project without a group: %v, want ErrInvalidCIJob", err)
		}
	})

	t.Run("authorisation", func(t *testing.T) {
		ok := `{"project":"group/app","ref":"main"}`
		if s, _, raw := postCIJob(t, e.URL, "", ok); s != http.StatusUnauthorized {
			t.Errorf("no credentials: %d %s", s, raw)
		}
		if s, _, raw := postCIJob(t, e.URL, "Bearer hmadm_not-the-admin-token-at-all", ok); s != http.StatusUnauthorized {
			t.Errorf("wrong admin token: %d %s", s, raw)
		}
		if s, _, raw := postCIJob(t, e.URL, basicAuth("admin", e.AdminPassword), ok); s != http.StatusOK {
			t.Errorf("admin user: %d %s", s, raw)
		}
		adm := e.admin(t)
		if _, err := adm.AddUser(context.Background(), "bob", "bob-password-123", false); err != nil {
			t.Fatal(err)
		}
		if s, _, raw := postCIJob(t, e.URL, basicAuth("bob", "bob-password-123"), ok); s != http.StatusForbidden {
			t.Errorf("non-admin user: %d %s", s, raw)
		}
		// A job token is not an admin credential.
		if s, _, raw := postCIJob(t, e.URL, basicAuth("gitlab-ci-token", v["CI_JOB_TOKEN"]), ok); s != http.StatusForbidden && s != http.StatusUnauthorized {
			t.Errorf("job token as admin credential: %d %s", s, raw)
		}
	})

	t.Run("invalid requests", func(t *testing.T) {
		for _, tc := range []struct{ body, want string }{
			{`{"ref":"main"}`, "project"},
			{`{"project":"app","ref":"main"}`, "group/project"},
			{`{"project":"group/a b","ref":"main"}`, "project"},
			{`{"project":"group/app"}`, "ref is required"},
			{`{"project":"group/app","ref":"refs/heads/main"}`, "short name"},
			{`{"project":"group/app","ref":"ma in"}`, "white space"},
			{`{"project":"group/app","ref":"main","ref_type":"merge"}`, "branch or tag"},
			{`{"project":"group/app","ref":"main","sha":"xyz"}`, "hex commit"},
			{`{"project":"group/app","ref":"main","pipeline_id":"-1"}`, "pipeline id"},
			{`{"project":"group/app","ref":"main","job_id":"0"}`, "job id"},
			{`{"project":"group/app","ref":"main","user":"a b"}`, "user"},
			{`{"project":"group/app","ref":"main","user_email":"nope"}`, "email"},
			{`{"project":"group/app","ref":"main","ttl":"2h"}`, "oidc-max-token-ttl"},
			{`{"project":"group/app","ref":"main","ttl":"-1h"}`, "positive"},
			{`{"project":"group/app","ref":"main","ttl":"soon"}`, "duration"},
			{`{"project":"group/app","ref":"main","extra":1}`, "unknown field"},
			{`{"project":`, "request body"},
			{`[]`, "request body"},
		} {
			s, _, raw := postCIJob(t, e.URL, adminBearer(t, e.DataDir), tc.body)
			if s != http.StatusBadRequest || !strings.Contains(raw, tc.want) {
				t.Errorf("%s: %d %s (want 400 mentioning %q)", tc.body, s, raw, tc.want)
			}
		}
	})
}

// TestCIJobAuthOff: without auth there are no job tokens; the ID token is
// still minted, and the endpoint still needs the admin token.
func TestCIJobAuthOff(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	body := `{"project":"group/app","ref":"main"}`
	if s, _, raw := postCIJob(t, srv.URL, "", body); s != http.StatusUnauthorized {
		t.Errorf("no admin token: %d %s", s, raw)
	}
	if s, _, raw := postCIJob(t, srv.URL, "Bearer wrong-wrong-wrong-wrong", body); s != http.StatusUnauthorized {
		t.Errorf("wrong admin token: %d %s", s, raw)
	}
	s, v, raw := postCIJob(t, srv.URL, adminBearer(t, srv.DataDir), body)
	if s != http.StatusOK {
		t.Fatalf("%d %s", s, raw)
	}
	if v["CI_JOB_TOKEN"] != "" || v["CI_REGISTRY_PASSWORD"] != "" || v["SIGSTORE_ID_TOKEN"] == "" {
		t.Errorf("auth off: job token %q, ID token present %v", v["CI_JOB_TOKEN"], v["SIGSTORE_ID_TOKEN"] != "")
	}
	cert, err := ciCert(t, srv.URL, v["SIGSTORE_ID_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	if want := v["CI_PROJECT_URL"] + "//.gitlab-ci.yml@refs/heads/main"; cert.URIs[0].String() != want {
		t.Errorf("SAN %v, want %s", cert.URIs, want)
	}

	t.Run("without the built-in issuer", func(t *testing.T) {
		// No issuer, no auth: no admin token exists, so nothing can
		// authorise the request.
		srv := testenv.StartServer(t, func(c *config.Server) { c.OIDCBuiltin = false })
		if s, _, raw := postCIJob(t, srv.URL, "Bearer anything-anything-anything", body); s != http.StatusServiceUnavailable {
			t.Errorf("%d %s", s, raw)
		}
	})
}

// TestCIJobExternalURL: with --external-url the URLs, the registry and the
// certificate identity follow it (scheme included).
func TestCIJobExternalURL(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.ExternalURL = "https://hallmark.example.com:8443" })
	s, v, raw := postCIJob(t, "http://"+srv.Addr, adminBearer(t, srv.DataDir), `{"project":"group/app","ref":"main"}`)
	if s != http.StatusOK {
		t.Fatalf("%d %s", s, raw)
	}
	for k, w := range map[string]string{"CI_SERVER_URL": "https://hallmark.example.com:8443", "CI_SERVER_HOST": "hallmark.example.com",
		"CI_SERVER_PORT": "8443", "CI_SERVER_PROTOCOL": "https", "CI_REGISTRY": "hallmark.example.com:8443",
		"CI_PROJECT_URL": "https://hallmark.example.com:8443/group/app", "GITLAB_USER_EMAIL": "hallmark@users.noreply.hallmark.example.com"} {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	cert, err := ciCert(t, "http://"+srv.Addr, v["SIGSTORE_ID_TOKEN"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://hallmark.example.com:8443/group/app//.gitlab-ci.yml@refs/heads/main"; cert.URIs[0].String() != want {
		t.Errorf("SAN %v, want %s", cert.URIs, want)
	}
	if !slices.Contains(server.CIJobVariables, "CI_JOB_TOKEN") {
		t.Error("CIJobVariables lacks CI_JOB_TOKEN")
	}
}

// FuzzCIJobRequest: whatever the body, the endpoint answers 200 or 400,
// and a 200 holds every variable.
func FuzzCIJobRequest(f *testing.F) {
	for _, s := range []string{
		`{"project":"group/app","ref":"main"}`,
		`{"project":"Group/Sub/App","ref":"v1.0","ref_type":"tag","sha":"` + ciSHA + `","pipeline_id":"1","job_id":"2","user":"a.b","user_name":"A 'B' \"C\" $D","ttl":"5m"}`,
		`{"project":"group/app","ref":"main","user_email":"x@y"}`,
		`{"project":"g/a","ref":"-x"}`,
		`{"project":"g//a","ref":"m"}`,
		`{}`, `null`, `{"ttl":"1ns"}`,
	} {
		f.Add(s)
	}
	srv := testenv.StartServer(f, nil)
	authz := adminBearer(f, srv.DataDir)
	f.Fuzz(func(t *testing.T, body string) {
		s, v, raw := postCIJob(t, srv.URL, authz, body)
		switch s {
		case http.StatusOK:
			for _, k := range server.CIJobVariables {
				if _, ok := v[k]; !ok {
					t.Fatalf("200 without %s for %s", k, body)
				}
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("%s: HTTP %d %s", body, s, raw)
		}
	})
}
