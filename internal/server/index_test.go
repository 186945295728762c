package server_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// TestTrustedRootFlag: --trusted-root imports a sigstore trusted root
// under a name policies use; a bad value stops the start and says why.
func TestTrustedRootFlag(t *testing.T) {
	other := testenv.StartServer(t, nil)
	good := filepath.Join(other.DataDir, server.TrustDir, root.TrustedRootFile)
	dir := t.TempDir()
	notJSON := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(notJSON, []byte("{{"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, spec, want string
	}{
		{"missing file", "pg=" + filepath.Join(dir, "nope.json"), "no such file"},
		{"not a trusted root", "pg=" + notJSON, "trusted-root pg="},
		{"a name that is not one", "Public Good=" + good, `"Public Good" is not a root name`},
		{"this server's name", "hallmark=" + good, `the name "hallmark" is taken`},
		{"a file named like nothing", good + ".d/.json", "is not a root name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config.Defaults()
			cfg.Addr, cfg.DataDir, cfg.Auth, cfg.TrustedRoots = "127.0.0.1:0", t.TempDir(), "off", []string{c.spec}
			s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("start with --trusted-root %s: %v; want %q", c.spec, err, c.want)
			}
		})
	}
	// Named by its file's base name, and shown by the policy API.
	named := filepath.Join(dir, "public-good.json")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(named, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testenv.StartServer(t, func(c *config.Server) { c.TrustedRoots = []string{named} })
	resp, body := testenv.Call(t, "PUT", srv.URL+"/api/v1/projects/nope/policy", "", []byte(`{"roots":["public-good"]}`))
	if resp.StatusCode != 404 || !strings.Contains(string(body), "not found") {
		t.Fatalf("PUT a policy naming the imported root on a missing project: %d %s", resp.StatusCode, body)
	}
	resp, body = testenv.Call(t, "PUT", srv.URL+"/api/v1/projects/nope/policy", "", []byte(`{"roots":["other"]}`))
	if resp.StatusCode != 400 || !strings.Contains(string(body), "it has: hallmark, public-good") {
		t.Fatalf("PUT a policy naming an unknown root: %d %s", resp.StatusCode, body)
	}
}
