package testenv_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

func TestStartServerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the hallmark binary; skipped with -short")
	}
	dir := t.TempDir()
	p := testenv.StartServerProcess(t, testenv.HallmarkBinary(t), dir, nil, "--auth", "off", "--log-level", "info")
	if p.DataDir != dir || p.URL != "http://"+p.Addr || !strings.HasPrefix(p.Addr, "127.0.0.1:") {
		t.Fatalf("process %+v", p)
	}
	resp, err := http.Get(p.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %s", resp.Status)
	}
	if !strings.Contains(p.Logs.String(), "hallmark server listening") {
		t.Errorf("log lacks the listening line:\n%s", p.Logs)
	}
	p.Kill()
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	if _, err := http.Get(p.URL + "/v2/"); err == nil {
		t.Error("the killed server still answers")
	}
	p.Stop() // a no-op on a dead process
}

func TestToolEnv(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	env := testenv.ToolEnv(t, home, false, "COSIGN_PASSWORD=x", "PATH=/only/this")
	want := []string{"HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, ".docker"), "TUF_ROOT=" + filepath.Join(home, "tuf"),
		"COSIGN_PASSWORD=x", "PATH=/only/this"}
	slices.Sort(env)
	slices.Sort(want)
	if !slices.Equal(env, want) {
		t.Errorf("ToolEnv = %q, want %q", env, want)
	}
	if fi, err := os.Stat(filepath.Join(home, ".docker")); err != nil || !fi.IsDir() {
		t.Errorf("docker config dir not created: %v", err)
	}
	off := testenv.ToolEnv(t, home, true)
	for _, kv := range []string{"HTTPS_PROXY=" + testenv.DeadProxy, "http_proxy=" + testenv.DeadProxy, "NO_PROXY=127.0.0.1,localhost"} {
		if !slices.Contains(off, kv) {
			t.Errorf("offline ToolEnv lacks %s: %q", kv, off)
		}
	}
	t.Setenv("SIGSTORE_ID_TOKEN", "must-not-leak")
	for _, kv := range testenv.ToolEnv(t, home, true) {
		if strings.HasPrefix(kv, "SIGSTORE_") {
			t.Errorf("ToolEnv inherits %s", kv)
		}
	}
}
