package cli_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// TestAuthCommands drives the real binary: user/project/PAT/job-token
// management on the server's database, `hallmark login` into docker's
// config.json, and `hallmark sign`/`verify` finding those credentials
// through docker's credential store, against a server with auth on.
func TestAuthCommands(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	host := strings.TrimPrefix(srv.URL, "http://")
	hm, _ := newToolsNoCosign(t)
	dd := "--data-dir=" + srv.DataDir
	dockerCfg := filepath.Join(hm.dir, "home", ".docker", "config.json")

	hm.okStdin("alice-cli-password\n", "user", "add", "alice", "--password-stdin", dd)
	if r := hm.runEnv(nil, "alice-cli-password\n", "user", "add", "alice", "--password-stdin", dd); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("adding alice twice: %s", r)
	}
	var users []struct {
		Name  string `json:"name"`
		Admin bool   `json:"admin"`
	}
	if err := json.Unmarshal([]byte(hm.ok("user", "list", "--json", dd).stdout), &users); err != nil || len(users) != 2 || !users[0].Admin || users[1].Name != "alice" || users[1].Admin {
		t.Fatalf("user list: %+v %v", users, err)
	}
	hm.ok("project", "add", "group/app", "--visibility", "private", dd)
	hm.ok("project", "grant", "group/app", "alice", "--role", "developer", dd)
	if out := hm.ok("project", "members", "group/app", dd).stdout; !strings.Contains(out, "alice") || !strings.Contains(out, "developer") {
		t.Fatalf("members: %s", out)
	}
	if r := hm.run("project", "grant", "group/app", "alice", "--role", "owner", dd); r.code == 0 {
		t.Fatal("unknown role accepted")
	}

	// Wrong password: refused, nothing stored.
	if r := hm.runEnv(nil, "wrong-password\n", "login", "-u", "alice", "--password-stdin", host); r.code == 0 {
		t.Fatalf("login with a wrong password succeeded: %s", r)
	}
	if _, err := os.Stat(dockerCfg); err == nil {
		b, _ := os.ReadFile(dockerCfg)
		if strings.Contains(string(b), host) {
			t.Fatalf("a failed login stored credentials: %s", b)
		}
	}
	if out := hm.okStdin("alice-cli-password\n", "login", "-u", "alice", "--password-stdin", host).stdout; !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %s", out)
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	raw, err := os.ReadFile(dockerCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(cfg.Auths[host].Auth); string(got) != "alice:alice-cli-password" {
		t.Fatalf("config.json auths[%s] = %q", host, got)
	}

	// sign/verify find the stored credentials (docker's keychain).
	t.Setenv("DOCKER_CONFIG", filepath.Dir(dockerCfg))
	ref, err := name.ParseReference(host+"/group/app/signed:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(128, 1)
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatalf("push with docker's keychain after hallmark login: %v", err)
	}
	d, _ := img.Digest()
	signed := host + "/group/app/signed@" + d.String()
	hm.ok("generate-key-pair", "--output-key-prefix", "k")
	hm.ok("sign", "--new-bundle-format=false", "--key", "k.key", "--tlog-upload=false", "-y", signed)
	hm.ok("verify", "--key", "k.pub", "--insecure-ignore-tlog", signed)

	// Personal access tokens and job tokens.
	pat := strings.TrimSpace(hm.ok("user", "create-pat", "alice", "--scope", "pull", "--expires", "1d", "--name", "test", dd).stdout)
	if !strings.HasPrefix(pat, "hmpat_") {
		t.Fatalf("create-pat printed %q", pat)
	}
	if out := hm.ok("user", "list-pats", "alice", dd).stdout; !strings.Contains(out, "pull") || strings.Contains(out, pat) {
		t.Fatalf("list-pats: %s", out)
	}
	hm.okStdin(pat+"\n", "login", "-u", "alice", "--password-stdin", host)
	hm.ok("user", "revoke-pat", "1", dd)
	if r := hm.runEnv(nil, pat+"\n", "login", "-u", "alice", "--password-stdin", host); r.code == 0 {
		t.Fatal("login with a revoked PAT succeeded")
	}
	job := strings.TrimSpace(hm.ok("project", "job-token", "group/app", "--job", "77", "--ttl", "10m", dd).stdout)
	hm.okStdin(job+"\n", "login", "-u", "gitlab-ci-token", "--password-stdin", host)
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatalf("push with the job token from docker's keychain: %v", err)
	}
	other, _ := name.ParseReference(host+"/elsewhere:v1", name.Insecure)
	if err := remote.Write(other, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err == nil {
		t.Fatal("job token pushed outside its project")
	}

	hm.ok("logout", host)
	raw, _ = os.ReadFile(dockerCfg)
	if strings.Contains(string(raw), host) {
		t.Fatalf("logout left credentials: %s", raw)
	}
	hm.ok("user", "remove", "alice", dd)
	if out := hm.ok("user", "list", dd).stdout; strings.Contains(out, "alice") {
		t.Fatalf("alice still listed: %s", out)
	}
	if r := hm.run("user", "list", "--data-dir="+filepath.Join(t.TempDir(), "nope")); r.code == 0 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("missing data dir: %s", r)
	}
}

// newToolsNoCosign is newTools without the cosign peer: the hallmark
// binary in an isolated HOME/DOCKER_CONFIG.
func newToolsNoCosign(t *testing.T) (*tool, string) {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	env := testenv.ToolEnv(t, home, false, "COSIGN_PASSWORD=auth-test")
	return &tool{t: t, bin: testenv.HallmarkBinary(t), dir: dir, env: env, name: "hallmark"}, home
}

// okStdin runs the tool with stdin and fails the test unless it exits 0.
func (tl *tool) okStdin(stdin string, args ...string) result {
	tl.t.Helper()
	r := tl.runEnv(nil, stdin, args...)
	if r.code != 0 {
		tl.t.Fatalf("%s %s: %s", tl.name, strings.Join(args, " "), r)
	}
	return r
}
