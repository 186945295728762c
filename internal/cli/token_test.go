package cli_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// runHallmark runs the real binary with env (on top of a clean
// environment) and returns stdout, stderr and the exit code.
func runHallmark(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	return runHallmarkStdin(t, "", env, args...)
}

func TestTokenIssueCLI(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	v, err := oidc.NewVerifier(nil, nil, oidc.VerifierConfig{Issuers: []oidc.TrustedIssuer{{URL: srv.URL, Type: oidc.TypeGitLab}}})
	if err != nil {
		t.Fatal(err)
	}
	sha := "714a629c0b401fdce83e847fc9589983fc6f46bc"
	out, errOut, code := runHallmark(t, nil, "token", "issue", "--server", srv.URL, "--data-dir", srv.DataDir,
		"--aud", "sigstore", "--project", "group/app", "--ref", "v1.2.3", "--ref-type", "tag", "--sha", sha,
		"--pipeline", "77", "--job", "78", "--user", "alice", "--ttl", "5m")
	if code != 0 {
		t.Fatalf("token issue: exit %d: %s", code, errOut)
	}
	raw := strings.TrimSpace(out)
	if strings.Count(raw, ".") != 2 || strings.Contains(raw, "\n") {
		t.Fatalf("stdout is not exactly one JWT: %q", out)
	}
	tok, err := v.Verify(context.Background(), raw, "sigstore")
	if err != nil {
		t.Fatalf("verifying the CLI's token: %v", err)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	for k, want := range map[string]string{
		"sub":               "project_path:group/app:ref_type:tag:ref:v1.2.3",
		"ci_config_ref_uri": host + "/group/app//.gitlab-ci.yml@refs/tags/v1.2.3",
		"sha":               sha, "pipeline_id": "77", "job_id": "78", "user_login": "alice", "ref_type": "tag",
	} {
		if got, _ := tok.StringClaim(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if tok.Expiry.Sub(tok.IssuedAt).Minutes() != 5 {
		t.Errorf("ttl %v", tok.Expiry.Sub(tok.IssuedAt))
	}

	admin, _ := os.ReadFile(filepath.Join(srv.DataDir, "admin-token"))
	// Env: HALLMARK_SERVER and HALLMARK_ADMIN_TOKEN.
	out, errOut, code = runHallmark(t, []string{"HALLMARK_SERVER=" + srv.URL, "HALLMARK_ADMIN_TOKEN=" + strings.TrimSpace(string(admin))},
		"token", "issue", "--project", "group/app", "--ref", "main")
	if code != 0 {
		t.Fatalf("token issue with env: exit %d: %s", code, errOut)
	}
	if _, err := v.Verify(context.Background(), strings.TrimSpace(out), "sigstore"); err != nil {
		t.Fatal(err)
	}

	// A wrong admin token file.
	bad := filepath.Join(t.TempDir(), "bad-token")
	os.WriteFile(bad, []byte("hmadm_not-the-right-token\n"), 0o600)
	out, errOut, code = runHallmark(t, nil, "token", "issue", "--server", srv.URL, "--admin-token-file", bad, "--project", "group/app", "--ref", "main")
	if code == 0 || out != "" || !strings.Contains(errOut, "admin credentials rejected") {
		t.Fatalf("wrong admin token: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// No admin token anywhere.
	_, errOut, code = runHallmark(t, nil, "token", "issue", "--server", srv.URL, "--project", "group/app", "--ref", "main")
	if code == 0 || !strings.Contains(errOut, "no admin token") {
		t.Fatalf("no admin token: exit %d, stderr %q", code, errOut)
	}
	// Invalid claims: the server's message reaches the user.
	_, errOut, code = runHallmark(t, nil, "token", "issue", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", "group/app", "--ref", "main", "--ref-type", "commit")
	if code == 0 || !strings.Contains(errOut, "ref_type") {
		t.Fatalf("bad ref type: exit %d, stderr %q", code, errOut)
	}
	// Required flags.
	_, errOut, code = runHallmark(t, nil, "token", "issue", "--server", srv.URL, "--data-dir", srv.DataDir, "--ref", "main")
	if code == 0 || !strings.Contains(errOut, "project") {
		t.Fatalf("missing --project: exit %d, stderr %q", code, errOut)
	}

	// rotate-key prints the new kid, which then signs.
	out, errOut, code = runHallmark(t, nil, "token", "rotate-key", "--server", srv.URL, "--data-dir", srv.DataDir)
	if code != 0 {
		t.Fatalf("rotate-key: exit %d: %s", code, errOut)
	}
	newKid := strings.TrimSpace(out)
	out, _, _ = runHallmark(t, nil, "token", "issue", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", "group/app", "--ref", "main")
	// A fresh verifier: v fetched the JWKS moments ago and rate-limits
	// refetches for unknown kids.
	v2, _ := oidc.NewVerifier(nil, nil, oidc.VerifierConfig{Issuers: []oidc.TrustedIssuer{{URL: srv.URL, Type: oidc.TypeGitLab}}})
	tok2, err := v2.Verify(context.Background(), strings.TrimSpace(out), "sigstore")
	if err != nil || tok2.KeyID != newKid || tok2.KeyID == tok.KeyID {
		t.Fatalf("token after rotate-key: kid %v (want %s), %v", tok2, newKid, err)
	}
	var jwks struct{ Keys []json.RawMessage }
	resp, err := http.Get(srv.URL + "/oauth/discovery/keys")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if len(jwks.Keys) != 2 {
		t.Fatalf("JWKS after rotate-key has %d keys, want 2", len(jwks.Keys))
	}
}
