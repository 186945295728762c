package cli_test

import (
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

// TestSignWithRegistryAuth signs and verifies against a Hallmark server
// with access control on, logged in through docker's credential store as a
// CI job would be (hallmark login writes it; cosign reads it too).
func TestSignWithRegistryAuth(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	pw, err := os.ReadFile(filepath.Join(srv.DataDir, "admin-password"))
	if err != nil {
		t.Fatalf("no generated admin password to log in with: %v", err)
	}
	hm, cs := newTools(t)
	hm.ok("generate-key-pair")
	if r := hm.runEnv(nil, strings.TrimSpace(string(pw)), "login", "-u", "admin", "--password-stdin", srv.Addr); r.code != 0 {
		t.Fatalf("hallmark login: %s", r)
	}
	// Push an image with the same credentials.
	img, _ := random.Image(128, 1)
	tag, _ := name.NewTag(srv.Addr + "/auth/app:v1")
	auth := authn.FromConfig(authn.AuthConfig{Username: "admin", Password: strings.TrimSpace(string(pw))})
	if err := remote.Write(tag, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push with admin credentials: %v", err)
	}
	d, _ := img.Digest()
	ref := tag.Context().Digest(d.String()).String()

	hm.ok("sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "-a", "auth=on", ref)
	want := cs.ok(verifyArgs("cosign.pub", "-a", "auth=on", ref)...)
	got := hm.ok(verifyArgs("cosign.pub", "-a", "auth=on", ref)...)
	if got.stdout != want.stdout {
		t.Errorf("stdout differs\nhallmark: %q\ncosign:   %q", got.stdout, want.stdout)
	}
	// Explicit credentials instead of the credential store.
	other, _ := os.MkdirTemp(t.TempDir(), "docker")
	hm.okEnv([]string{"DOCKER_CONFIG=" + other}, append(verifyArgs("cosign.pub", ref), "--registry-username", "admin", "--registry-password", strings.TrimSpace(string(pw)))...)
	r := hm.runEnv([]string{"DOCKER_CONFIG=" + other}, "", verifyArgs("cosign.pub", ref)...)
	if r.code == 0 {
		t.Errorf("anonymous verify succeeded against a registry with access control on")
	}
}
