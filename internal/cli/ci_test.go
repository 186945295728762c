package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

const ciSHA = "5c0f1e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d"

// runHallmarkStdin is runHallmark with standard input.
func runHallmarkStdin(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testenv.HallmarkBinary(t), args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// evalEnv evals the export lines in bash and returns the variables
// server.CIJobVariables names, as the shell sees them.
func evalEnv(t *testing.T, exports string) map[string]string {
	t.Helper()
	script := "set -eu\neval \"$(cat)\"\nfor n in " + strings.Join(server.CIJobVariables, " ") + "; do printf '%s=%s\\0' \"$n\" \"${!n}\"; done\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent-home"}
	cmd.Stdin = strings.NewReader(exports)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash eval of the output: %v\n%s", err, exports)
	}
	vars := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return vars
}

// TestCIJobCLI runs `hallmark ci job` (the real binary) against a server
// with auth on: the output evals in bash to the expected variables, even
// with shell metacharacters in a value; the JSON output agrees; the ID
// token verifies; admin users may call it, others may not.
func TestCIJobCLI(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	nasty := `Ann "O'Brien" $HOME ` + "`id` $(id) \\ ; |&"
	args := []string{"ci", "job", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", "grp/app", "--ref", "feature/x",
		"--sha", ciSHA, "--pipeline", "41", "--job", "42", "--user", "ann", "--user-name", nasty, "--ttl", "20m"}
	out, stderr, code := runHallmark(t, nil, args...)
	if code != 0 {
		t.Fatalf("hallmark ci job: exit %d\n%s", code, stderr)
	}
	identity := srv.URL + "/grp/app//.gitlab-ci.yml@refs/heads/feature/x"
	if !strings.Contains(out, "# keyless identity: --certificate-identity "+identity+" --certificate-oidc-issuer "+srv.URL+"\n") {
		t.Errorf("the output does not name the keyless identity:\n%s", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(line, "# ") && !strings.HasPrefix(line, "export ") {
			t.Errorf("line is neither a comment nor an export: %q", line)
		}
	}
	v := evalEnv(t, out)
	for k, w := range map[string]string{
		"GITLAB_USER_NAME": nasty, "GITLAB_USER_LOGIN": "ann", "CI_PROJECT_PATH": "grp/app", "CI_COMMIT_REF_NAME": "feature/x",
		"CI_COMMIT_REF_SLUG": "feature-x", "CI_COMMIT_BRANCH": "feature/x", "CI_COMMIT_SHA": ciSHA, "CI_COMMIT_SHORT_SHA": ciSHA[:8],
		"CI_PIPELINE_ID": "41", "CI_JOB_ID": "42", "CI_SERVER_URL": srv.URL, "CI_PROJECT_URL": srv.URL + "/grp/app",
		"CI_PIPELINE_URL": srv.URL + "/grp/app/-/pipelines/41", "CI_JOB_URL": srv.URL + "/grp/app/-/jobs/42",
		"CI_REGISTRY": srv.Addr, "CI_REGISTRY_IMAGE": srv.Addr + "/grp/app", "CI_REGISTRY_USER": "gitlab-ci-token",
		"CI": "true", "GITLAB_CI": "true", "COSIGN_YES": "true", "CI_CONFIG_PATH": ".gitlab-ci.yml",
	} {
		if v[k] != w {
			t.Errorf("after eval %s = %q, want %q", k, v[k], w)
		}
	}
	if !strings.HasPrefix(v["CI_JOB_TOKEN"], "hmjob_") || v["CI_REGISTRY_PASSWORD"] != v["CI_JOB_TOKEN"] {
		t.Errorf("job token %q", v["CI_JOB_TOKEN"])
	}
	ver, err := oidc.NewVerifier(nil, nil, oidc.VerifierConfig{Issuers: []oidc.TrustedIssuer{{URL: srv.URL, Type: oidc.TypeGitLab}}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ver.Verify(t.Context(), v["SIGSTORE_ID_TOKEN"], "sigstore")
	if err != nil {
		t.Fatalf("SIGSTORE_ID_TOKEN: %v", err)
	}
	if got, _ := tok.StringClaim("ci_config_ref_uri"); "http://"+got != identity {
		t.Errorf("ci_config_ref_uri %q, identity %q", got, identity)
	}

	t.Run("json", func(t *testing.T) {
		out, stderr, code := runHallmark(t, nil, append(args, "-o", "json")...)
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, stderr)
		}
		var j map[string]string
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("-o json: %v\n%s", err, out)
		}
		if j["GITLAB_USER_NAME"] != nasty || j["CI_JOB_ID"] != "42" || j["CI_JOB_TOKEN"] == "" || j["CI_JOB_TOKEN"] == v["CI_JOB_TOKEN"] {
			t.Errorf("json output: %v", j)
		}
	})

	t.Run("admin user credentials", func(t *testing.T) {
		pw, err := os.ReadFile(filepath.Join(srv.DataDir, server.AdminPasswordFile))
		if err != nil {
			t.Fatal(err)
		}
		base := []string{"ci", "job", "--server", srv.URL, "--project", "grp/app", "--ref", "main"}
		out, stderr, code := runHallmarkStdin(t, string(pw), nil, append(base, "--username", "admin", "--password-stdin")...)
		if code != 0 || !strings.Contains(out, "export CI_JOB_TOKEN=hmjob_") {
			t.Fatalf("admin user: exit %d\n%s\n%s", code, out, stderr)
		}
		out, stderr, code = runHallmark(t, []string{"HALLMARK_PASSWORD=" + strings.TrimSpace(string(pw))}, append(base, "--username", "admin")...)
		if code != 0 || !strings.Contains(out, "export SIGSTORE_ID_TOKEN=ey") {
			t.Fatalf("admin user, password in HALLMARK_PASSWORD: exit %d\n%s\n%s", code, out, stderr)
		}
		if _, stderr, code := runHallmarkStdin(t, "wrong-password\n", nil, append(base, "--username", "admin", "--password-stdin")...); code == 0 || !strings.Contains(stderr, "admin credentials rejected") {
			t.Errorf("wrong password: exit %d\n%s", code, stderr)
		}
		if _, stderr, code := runHallmark(t, []string{"HALLMARK_ADMIN_TOKEN=hmadm_wrong-wrong-wrong-wrong"}, base...); code == 0 || !strings.Contains(stderr, "admin credentials rejected") {
			t.Errorf("wrong admin token: exit %d\n%s", code, stderr)
		}
		if _, stderr, code := runHallmark(t, nil, base...); code == 0 || !strings.Contains(stderr, "no admin token") {
			t.Errorf("no credentials: exit %d\n%s", code, stderr)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		if _, stderr, code := runHallmark(t, nil, "ci", "job", "--server", srv.URL, "--data-dir", srv.DataDir, "--ref", "main"); code == 0 || !strings.Contains(stderr, `"project" not set`) {
			t.Errorf("missing --project: exit %d\n%s", code, stderr)
		}
		if _, stderr, code := runHallmark(t, nil, "ci", "job", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", "grp/app", "--ref", "main", "--sha", "nope"); code == 0 || !strings.Contains(stderr, "hex commit") {
			t.Errorf("bad --sha: exit %d\n%s", code, stderr)
		}
		if _, stderr, code := runHallmark(t, nil, "ci", "job", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", "grp/app", "--ref", "main", "-o", "yaml"); code == 0 || !strings.Contains(stderr, "--output") {
			t.Errorf("bad --output: exit %d\n%s", code, stderr)
		}
	})
}

// TestCIJobCLIAuthOff: the output says there is no job token.
func TestCIJobCLIAuthOff(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	out, stderr, code := runHallmark(t, nil, "ci", "job", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", "grp/app", "--ref", "main")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	if !strings.Contains(out, "# auth is off on this server") || !strings.Contains(out, "export CI_JOB_TOKEN=''\n") {
		t.Errorf("auth off output:\n%s", out)
	}
	if v := evalEnv(t, out); v["SIGSTORE_ID_TOKEN"] == "" || v["CI_JOB_TOKEN"] != "" {
		t.Errorf("auth off: %v", v)
	}
}
