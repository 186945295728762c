package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// DeadProxy is the address of an HTTP proxy nothing listens on. A client
// with it as HTTP(S)_PROXY reaches loopback servers only (Go clients never
// proxy loopback; NO_PROXY tells the others), so that no test reaches the
// public sigstore services (TUF repository, Rekor) by accident.
const DeadProxy = "http://127.0.0.1:9"

// ToolEnv is the environment for a client tool a test runs (cosign, crane,
// docker, the hallmark CLI), isolated from the configuration of whoever
// runs the tests: only PATH is taken from the test process; HOME is home,
// docker's config home/.docker (created) and sigstore's TUF cache
// home/tuf; no SIGSTORE_*, COSIGN_*, HALLMARK_* or DOCKER_HOST variable is
// inherited. With offline, the proxy variables name DeadProxy. The extra
// entries ("K=V") come last and replace earlier ones with the same key.
func ToolEnv(tb testing.TB, home string, offline bool, extra ...string) []string {
	tb.Helper()
	docker := filepath.Join(home, ".docker")
	if err := os.MkdirAll(docker, 0o700); err != nil {
		tb.Fatal(err)
	}
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "DOCKER_CONFIG=" + docker,
		"TUF_ROOT=" + filepath.Join(home, "tuf")}
	if offline {
		env = append(env, "HTTPS_PROXY="+DeadProxy, "HTTP_PROXY="+DeadProxy, "https_proxy="+DeadProxy, "http_proxy="+DeadProxy,
			"NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	}
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") })
		env = append(env, kv)
	}
	return env
}

// RunTool runs bin with args in dir with env (ToolEnv's, say), stdin as
// its standard input ("" for none), for at most four minutes, and returns
// its combined output.
func RunTool(tb testing.TB, dir string, env []string, stdin, bin string, args ...string) (string, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir = env, dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}
