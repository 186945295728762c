package cli_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// startDistribution runs the pinned distribution registry (v3.1.2) with
// filesystem storage in a temp dir on a free loopback port until the test
// ends, and returns its host:port.
func startDistribution(t *testing.T) string {
	t.Helper()
	addr, _ := startDistributionData(t)
	return addr
}

// startDistributionData is startDistribution that also returns the
// storage root directory.
func startDistributionData(t *testing.T) (addr, dataDir string) {
	t.Helper()
	bin := testenv.Peer(t, "registry")
	dir := t.TempDir()
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := filepath.Join(dir, "config.yml")
		conf := fmt.Sprintf(`version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
http: {addr: %s}
`, filepath.Join(dir, "data"), addr)
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		cmd := exec.Command(bin, "serve", cfg)
		cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if waitHTTP("http://"+addr+"/v2/", exited, 20*time.Second) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			return addr, filepath.Join(dir, "data")
		}
		cmd.Process.Kill()
		<-exited
		t.Logf("distribution registry did not start on %s (attempt %d): %s", addr, attempt+1, logs.String())
	}
	t.Fatal("could not start the distribution registry")
	return "", ""
}

func waitHTTP(url string, exited <-chan error, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// pushImage pushes a small random image to host/repo:tag and returns its
// digest reference.
func pushImage(t *testing.T, host, repo, tag string) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}

// pushIndex pushes a two-platform OCI index at host/repo:tag and returns
// the index and its children's digest references.
func pushIndex(t *testing.T, host, repo, tag string) (name.Digest, []name.Digest) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var children []name.Digest
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(128, 1)
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		d, _ := img.Digest()
		child, err := name.NewDigest(host + "/" + repo + "@" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, child)
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	ref, err := name.NewTag(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	d, _ := idx.Digest()
	return ref.Context().Digest(d.String()), children
}

// tool runs hallmark or cosign with a clean, isolated environment.
type tool struct {
	t    *testing.T
	bin  string
	dir  string   // working directory (keys live here)
	env  []string // base environment
	name string
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// newTools returns hallmark and cosign sharing one temp working directory
// and HOME, with cosign kept off the network: SIGSTORE_REKOR_PUBLIC_KEY
// names an empty file, which stops its TUF lookup (cosign-wire.md §8).
func newTools(t *testing.T) (hallmark, cosign *tool) {
	t.Helper()
	dir := t.TempDir()
	empty := filepath.Join(dir, "no-rekor.pub")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := testenv.ToolEnv(t, filepath.Join(dir, "home"), false, "SIGSTORE_REKOR_PUBLIC_KEY="+empty, "COSIGN_PASSWORD=e2e-password")
	cosignBin := testenv.Peer(t, "cosign")
	return &tool{t: t, bin: testenv.HallmarkBinary(t), dir: dir, env: env, name: "hallmark"},
		&tool{t: t, bin: cosignBin, dir: dir, env: env, name: "cosign"}
}

// run runs the tool with extra environment entries ("K=V") and stdin.
func (tl *tool) runEnv(extraEnv []string, stdin string, args ...string) result {
	tl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tl.bin, args...)
	cmd.Dir = tl.dir
	cmd.Env = append(append([]string(nil), tl.env...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		tl.t.Fatalf("%s %s: %v", tl.name, strings.Join(args, " "), err)
	}
	return r
}

func (tl *tool) run(args ...string) result {
	tl.t.Helper()
	return tl.runEnv(nil, "", args...)
}

// ok runs the tool and fails the test unless it exits 0.
func (tl *tool) ok(args ...string) result {
	tl.t.Helper()
	r := tl.run(args...)
	if r.code != 0 {
		tl.t.Fatalf("%s %s: %s", tl.name, strings.Join(args, " "), r)
	}
	return r
}

func (tl *tool) okEnv(env []string, args ...string) result {
	tl.t.Helper()
	r := tl.runEnv(env, "", args...)
	if r.code != 0 {
		tl.t.Fatalf("%s %s: %s", tl.name, strings.Join(args, " "), r)
	}
	return r
}

// fail runs the tool and fails the test unless it exits with code.
func (tl *tool) fail(code int, args ...string) result {
	tl.t.Helper()
	r := tl.run(args...)
	if r.code != code {
		tl.t.Fatalf("%s %s: want exit %d, got %s", tl.name, strings.Join(args, " "), code, r)
	}
	return r
}

func (tl *tool) path(name string) string { return filepath.Join(tl.dir, name) }

// sigTag is the cosign signature tag of a digest reference.
func sigTag(t *testing.T, ref string) name.Tag {
	t.Helper()
	d, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}

func digestHex(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
