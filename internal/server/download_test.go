package server_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// The server hands out its own executable, which runs as the client.
func TestDownloadClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	p := startServer(t, testenv.HallmarkBinary(t), t.TempDir())
	name := "hallmark-" + runtime.GOOS + "-" + runtime.GOARCH
	res, err := http.Get(p.URL + "/download/" + name)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /download/%s: %s %s", name, res.Status, body)
	}
	want, err := os.ReadFile(testenv.HallmarkBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) {
		t.Fatal("downloaded client differs from the server's executable")
	}
	exe := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(exe, body, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "hallmark ") {
		t.Fatalf("downloaded client: %v %s", err, out)
	}
	res, err = http.Get(p.URL + "/download/hallmark-plan9-mips")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound || !strings.Contains(string(body), name) {
		t.Fatalf("other platform: %s %s", res.Status, body)
	}
}
