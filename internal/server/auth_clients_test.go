package server_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// clientEnv is an isolated home for a peer client: its own HOME and
// DOCKER_CONFIG, so credentials never leak between clients or into the
// machine's.
type clientEnv struct {
	home string
	env  []string
}

func newClientEnv(t *testing.T) *clientEnv {
	home := t.TempDir()
	dc := filepath.Join(home, ".docker")
	os.MkdirAll(dc, 0o700)
	env := []string{"HOME=" + home, "DOCKER_CONFIG=" + dc, "PATH=" + os.Getenv("PATH"), "XDG_RUNTIME_DIR=" + home}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		env = append(env, "DOCKER_HOST="+h)
	}
	return &clientEnv{home: home, env: env}
}

func (c *clientEnv) run(t *testing.T, stdin string, bin string, args ...string) (string, error) {
	t.Helper()
	return testenv.RunTool(t, c.home, c.env, stdin, bin, args...)
}

func (c *clientEnv) must(t *testing.T, stdin string, bin string, args ...string) string {
	t.Helper()
	out, err := c.run(t, stdin, bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

func (c *clientEnv) mustFail(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := c.run(t, "", bin, args...)
	if err == nil {
		t.Fatalf("%s %s succeeded; want refusal\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return out
}

func layerTar(t *testing.T, dir, content string) string {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write([]byte(content))
	tw.Close()
	p := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// authFixture: a server with auth on, private project group/app with
// developer alice, a job token for it, and a second private project.
func authFixture(t *testing.T, mod func(*config.Server)) (e *authEnv, alicePW, jobToken string) {
	ctx := context.Background()
	e = startAuthServer(t, mod)
	adm := e.admin(t)
	for _, p := range []string{"group/app", "other/proj"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	alicePW = "alice-client-pw"
	if _, err := adm.AddUser(ctx, "alice", alicePW, false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "group/app", "alice", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	jobToken, _, err := adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "9"})
	if err != nil {
		t.Fatal(err)
	}
	return e, alicePW, jobToken
}

// TestAuthPeerClients: real crane, oras, regctl and skopeo log in, push and
// pull with credentials, and are refused where they have no rights.
func TestAuthPeerClients(t *testing.T) {
	e, alicePW, job := authFixture(t, nil)
	reg := e.Host

	t.Run("crane", func(t *testing.T) {
		crane := testenv.Peer(t, "crane")
		c := newClientEnv(t)
		layer := layerTar(t, c.home, "crane")
		c.mustFail(t, crane, "append", "--insecure", "-f", layer, "-t", reg+"/group/app/crane:v1")
		c.must(t, "", crane, "auth", "login", reg, "-u", "alice", "-p", alicePW)
		c.must(t, "", crane, "append", "--insecure", "-f", layer, "-t", reg+"/group/app/crane:v1")
		d := strings.TrimSpace(c.must(t, "", crane, "digest", "--insecure", reg+"/group/app/crane:v1"))
		if !strings.HasPrefix(d, "sha256:") {
			t.Fatalf("crane digest: %q", d)
		}
		c.mustFail(t, crane, "append", "--insecure", "-f", layer, "-t", reg+"/other/proj/crane:v1")
		// The job token, as a CI job logs in.
		j := newClientEnv(t)
		j.must(t, "", crane, "auth", "login", reg, "-u", auth.JobTokenUser, "-p", job)
		j.must(t, "", crane, "copy", "--insecure", reg+"/group/app/crane:v1", reg+"/group/app/crane:job")
		j.mustFail(t, crane, "copy", "--insecure", reg+"/group/app/crane:v1", reg+"/other/proj/crane:job")
		j.mustFail(t, crane, "delete", "--insecure", reg+"/group/app/crane@"+d)
	})

	t.Run("oras", func(t *testing.T) {
		oras := testenv.Peer(t, "oras")
		c := newClientEnv(t)
		os.WriteFile(filepath.Join(c.home, "artifact.txt"), []byte("oras artifact"), 0o644)
		c.mustFail(t, oras, "push", "--plain-http", reg+"/group/app/oras:v1", "artifact.txt")
		c.must(t, job+"\n", oras, "login", "--plain-http", "-u", auth.JobTokenUser, "--password-stdin", reg)
		c.must(t, "", oras, "push", "--plain-http", reg+"/group/app/oras:v1", "artifact.txt")
		out := filepath.Join(c.home, "out")
		c.must(t, "", oras, "pull", "--plain-http", "-o", out, reg+"/group/app/oras:v1")
		if b, _ := os.ReadFile(filepath.Join(out, "artifact.txt")); string(b) != "oras artifact" {
			t.Fatalf("oras pulled %q", b)
		}
		c.mustFail(t, oras, "push", "--plain-http", reg+"/other/proj/oras:v1", "artifact.txt")
		c.must(t, "", oras, "logout", reg)
		c.mustFail(t, oras, "pull", "--plain-http", "-o", out, reg+"/group/app/oras:v1")
	})

	t.Run("regctl", func(t *testing.T) {
		regctl := testenv.Peer(t, "regctl")
		c := newClientEnv(t)
		os.WriteFile(filepath.Join(c.home, "data.json"), []byte(`{"regctl":true}`), 0o644)
		c.must(t, "", regctl, "registry", "set", reg, "--tls", "disabled")
		put := []string{"artifact", "put", "--artifact-type", "application/vnd.hallmark.test", "-f", "data.json"}
		c.mustFail(t, regctl, append(put, reg+"/group/app/regctl:v1")...)
		c.must(t, alicePW+"\n", regctl, "registry", "login", reg, "-u", "alice", "--pass-stdin")
		c.must(t, "", regctl, append(put, reg+"/group/app/regctl:v1")...)
		if out := c.must(t, "", regctl, "artifact", "get", reg+"/group/app/regctl:v1"); !strings.Contains(out, `{"regctl":true}`) {
			t.Fatalf("regctl artifact get: %q", out)
		}
		c.mustFail(t, regctl, append(put, reg+"/other/proj/regctl:v1")...)
	})

	t.Run("skopeo", func(t *testing.T) {
		skopeo := testenv.Peer(t, "skopeo")
		c := newClientEnv(t)
		authfile := filepath.Join(c.home, "auth.json")
		src := "docker://" + reg + "/group/app/crane:v1"
		c.mustFail(t, skopeo, "inspect", "--tls-verify=false", "--authfile", authfile, src)
		c.must(t, alicePW+"\n", skopeo, "login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "--password-stdin", reg)
		c.must(t, "", skopeo, "inspect", "--tls-verify=false", "--authfile", authfile, src)
		copyArgs := []string{"--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--authfile", authfile, src}
		c.must(t, "", skopeo, append(copyArgs, "docker://"+reg+"/group/app/skopeo:v1")...)
		c.mustFail(t, skopeo, append(copyArgs, "docker://"+reg+"/other/proj/skopeo:v1")...)
	})
}

// TestAuthDockerLogin: the reference pipeline's `docker login -u
// gitlab-ci-token -p $CI_JOB_TOKEN`, build FROM scratch and push, with a
// real Docker engine (started by scripts/start-dockerd when none answers).
func TestAuthDockerLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("docker engine test skipped in -short mode")
	}
	host := testenv.DockerHost(t, "DOCKER LOGIN")
	t.Setenv("DOCKER_HOST", host)

	e, _, job := authFixture(t, nil)
	reg := e.Host
	c := newClientEnv(t)
	docker := "docker"
	os.WriteFile(filepath.Join(c.home, "hello.txt"), []byte("hello from docker\n"), 0o644)
	os.WriteFile(filepath.Join(c.home, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /\n"), 0o644)
	img := reg + "/group/app:docker-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	c.must(t, "", docker, "login", "-u", auth.JobTokenUser, "-p", job, reg)
	cfg, _ := os.ReadFile(filepath.Join(c.home, ".docker", "config.json"))
	if !strings.Contains(string(cfg), reg) {
		t.Fatalf("docker login stored nothing for %s: %s", reg, cfg)
	}
	if out, err := c.run(t, "", docker, "build", "-q", "-t", img, "."); err != nil {
		// Engines without BuildKit: the classic builder.
		c.env = append(c.env, "DOCKER_BUILDKIT=0")
		if out2, err2 := c.run(t, "", docker, "build", "-q", "-t", img, "."); err2 != nil {
			t.Fatalf("docker build: %v\n%s\n%s", err2, out, out2)
		}
	}
	t.Cleanup(func() { exec.Command(docker, "rmi", "-f", img).Run() })
	c.must(t, "", docker, "push", img)
	digest := strings.TrimSpace(c.must(t, "", docker, "inspect", "--format", "{{index .RepoDigests 0}}", img))
	if !strings.Contains(digest, "@sha256:") {
		t.Fatalf("RepoDigests: %q", digest)
	}
	other := reg + "/other/proj:docker"
	c.must(t, "", docker, "tag", img, other)
	t.Cleanup(func() { exec.Command(docker, "rmi", "-f", other).Run() })
	if out := c.mustFail(t, docker, "push", other); !strings.Contains(out, "denied") && !strings.Contains(out, "unauthorized") {
		t.Fatalf("push to another project: %s", out)
	}
	c.must(t, "", docker, "logout", reg)
	bad := newClientEnv(t)
	if out := bad.mustFail(t, docker, "login", "-u", auth.JobTokenUser, "-p", "hmjob_wrong", reg); !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(out, "401") {
		t.Fatalf("docker login with a wrong token: %s", out)
	}
}

// TestAuthTLS: --tls-cert/--tls-key serve HTTPS; crane logs in and pushes
// over TLS.
func TestAuthTLS(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)

	e, alicePW, _ := authFixture(t, func(c *config.Server) { c.TLSCert, c.TLSKey = certFile, keyFile })
	if !strings.HasPrefix(e.URL, "https://") {
		t.Fatalf("server URL %q is not https", e.URL)
	}
	crane := testenv.Peer(t, "crane")
	c := newClientEnv(t)
	c.must(t, "", crane, "auth", "login", e.Host, "-u", "alice", "-p", alicePW)
	layer := layerTar(t, c.home, "tls")
	c.must(t, "", crane, "append", "--insecure", "-f", layer, "-t", e.Host+"/group/app/tls:v1")
	// Plain HTTP to the TLS port gets nowhere.
	if resp, err := newHTTPClient().Get("http://" + e.Host + "/v2/"); err == nil && resp.StatusCode < 400 {
		t.Fatalf("plain HTTP to the TLS listener answered %s", resp.Status)
	}
}
