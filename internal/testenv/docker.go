package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// RequireDocker reports whether a missing Docker engine is a failure
// rather than a skip (HALLMARK_REQUIRE_DOCKER=1, set by scripts/test where
// an engine can run).
func RequireDocker() bool { return os.Getenv("HALLMARK_REQUIRE_DOCKER") == "1" }

// LookDocker returns DOCKER_HOST of an answering Docker engine, starting
// one with the project's scripts/start-dockerd when none answers; or "" and
// why none is available.
func LookDocker() (host, why string) {
	if _, err := exec.LookPath("docker"); err != nil {
		return "", "docker is not installed (bash scripts/install-peers all installs docker.io)"
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err.Error()
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "start-dockerd"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "scripts/start-dockerd: " + err.Error() + ": " + strings.TrimSpace(stderr.String())
	}
	host, ok := strings.CutPrefix(strings.TrimSpace(string(out)), "export DOCKER_HOST=")
	if !ok || host == "" {
		return "", "scripts/start-dockerd printed no DOCKER_HOST: " + string(out)
	}
	return host, ""
}

// DockerHost is LookDocker for tests that need the engine: without one the
// test is skipped with a loud message naming what was not tested, or fails
// under HALLMARK_REQUIRE_DOCKER=1.
func DockerHost(tb testing.TB, notTested string) string {
	tb.Helper()
	host, why := LookDocker()
	if host == "" {
		msg := "NO DOCKER ENGINE, " + notTested + " NOT TESTED: " + why
		if RequireDocker() {
			tb.Fatal(msg + " (HALLMARK_REQUIRE_DOCKER=1)")
		}
		tb.Skip(msg)
	}
	return host
}
