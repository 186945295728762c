package tuf_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// TestCosignRefusesExpiredTimestamp: real cosign v2.6.5 and v3.1.3
// initialize against the repository, refuse it once its timestamp has
// expired (signed by a repository whose clock runs two hours behind, so
// that it expired an hour ago), and accept it again once renewed.
func TestCosignRefusesExpiredTimestamp(t *testing.T) {
	for _, peer := range []string{"cosign", "cosign3"} {
		t.Run(peer, func(t *testing.T) {
			bin := testenv.Peer(t, peer)
			f := newFixture(t, tuf.Config{TimestampExpiry: time.Hour})
			f.publish(sigstoreTargets(t))
			rootFile := filepath.Join(t.TempDir(), "root.json")
			if err := os.WriteFile(rootFile, f.root(), 0o600); err != nil {
				t.Fatal(err)
			}
			env := testenv.ToolEnv(t, t.TempDir(), true)
			initialize := func() (string, error) {
				cmd := exec.Command(bin, "initialize", "--mirror", f.url, "--root", rootFile)
				cmd.Env = env
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			if out, err := initialize(); err != nil {
				t.Fatalf("initialize: %v\n%s", err, out)
			}

			f.clock.Set(-2 * time.Hour)
			if err := renewTimestamp(f); err != nil {
				t.Fatal(err)
			}
			out, err := initialize()
			if err == nil || !strings.Contains(out, "expired") {
				t.Fatalf("%s initialize accepted an expired timestamp or failed otherwise: %v\n%s", peer, err, out)
			}
			t.Logf("refused:\n%s", out)

			f.clock.Set(0)
			if _, err := f.repo.Renew(context.Background()); err != nil {
				t.Fatal(err)
			}
			if out, err := initialize(); err != nil {
				t.Fatalf("initialize after renewal: %v\n%s", err, out)
			}
		})
	}
}
