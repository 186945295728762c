package testenv

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// Server is a Hallmark server running in the test process.
type Server struct {
	Addr    string // host:port, e.g. 127.0.0.1:41234
	URL     string // external base URL: http://Addr unless Config.ExternalURL is set
	DataDir string
	Config  config.Server
}

// StartServer runs a real Hallmark server (filesystem blobs, SQLite
// metadata in a temp data dir) on a random loopback port until the test
// ends, with auth off. mod, if not nil, adjusts the configuration before
// start.
func StartServer(tb testing.TB, mod func(*config.Server)) *Server {
	tb.Helper()
	s, _ := StartStoppableServer(tb, mod)
	return s
}

// StartStoppableServer is StartServer, also returning a function that
// stops the server (graceful shutdown, then the stores are closed) before
// the test ends, e.g. to start another on the same data dir and address.
// Calling it more than once is harmless.
func StartStoppableServer(tb testing.TB, mod func(*config.Server)) (*Server, func()) {
	tb.Helper()
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	cfg.LogLevel = "warn"
	cfg.ShutdownTimeout = 5 * time.Second
	// Most tests exercise the registry, not access control: auth is off
	// unless mod turns it on (cfg.Auth = "on").
	cfg.Auth = "off"
	if mod != nil {
		mod(&cfg)
	}
	if cfg.DatabaseURL != "" && cfg.KeyEncryptionKeyFile == "" && cfg.KeyEncryptionKey == "" {
		cfg.KeyEncryptionKey = TestKEK // servers on one database share their keys
	}
	var logw io.Writer = io.Discard
	if testing.Verbose() {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		tb.Fatalf("testenv: start hallmark server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				tb.Logf("testenv: server stopped with: %v", err)
			}
			srv.Close()
		})
	}
	tb.Cleanup(stop)
	return &Server{Addr: srv.Addr().String(), URL: srv.URL(), DataDir: cfg.DataDir, Config: cfg}, stop
}

// TestKEK is the key encryption key (base64) of test servers on
// PostgreSQL that set none: StartServer uses it, and replicas of a test
// share it (give it to a server process as HALLMARK_KEY_ENCRYPTION_KEY).
const TestKEK = "aGFsbG1hcmsgdGVzdCBrZXkgZW5jcnlwdGlvbiBrZXk="

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// HallmarkBinary builds cmd/hallmark once per test process and returns the
// path of the binary (for tests that run the real CLI or kill a server
// process).
func HallmarkBinary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "hallmark-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "hallmark")
		cmd := exec.Command("go", "build", "-o", buildPath, "./cmd/hallmark")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = errors.New("go build ./cmd/hallmark: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		tb.Fatalf("testenv: %v", buildErr)
	}
	return buildPath
}

// ModuleRoot returns the directory holding Hallmark's go.mod.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the testenv source file")
	}
	return filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
}
