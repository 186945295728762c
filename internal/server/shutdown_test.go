package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// A client that opened a spare connection and never used it must not hold
// up shutdown (http.Server treats new connections as active for 5 s).
func TestShutdownClosesUnusedConnections(t *testing.T) {
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Auth = "off"
	// Shorter than the 5 s http.Server grants a new connection: without the
	// fix, Shutdown fails with "context deadline exceeded".
	cfg.ShutdownTimeout = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // let the server see the connection
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown with an unused client connection open: %v", err)
	}
}

// The data dir holds password hashes and keys: a group- or world-readable
// one is made private at start.
func TestDataDirIsMadePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Addr, cfg.DataDir, cfg.Auth = "127.0.0.1:0", dir, "off"
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode %04o, want 0700", fi.Mode().Perm())
	}
}

// --debug-addr serves the profiler on its own loopback listener, apart
// from the registry: the registry's address does not serve it, and it is
// off by default.
func TestDebugAddr(t *testing.T) {
	cfg := config.Defaults()
	cfg.Addr, cfg.DataDir, cfg.Auth = "127.0.0.1:0", t.TempDir(), "off"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	off, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if off.DebugAddr() != nil {
		t.Errorf("profiler on by default at %s", off.DebugAddr())
	}
	off.Close()
	cfg.DebugAddr = "127.0.0.1:0"
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	get := func(base string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + base + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var code int
	for range 50 { // Run starts serving it
		if c, err := net.Dial("tcp", srv.DebugAddr().String()); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ = get(srv.DebugAddr().String()); code != http.StatusOK {
		t.Errorf("profiler at %s: %d", srv.DebugAddr(), code)
	}
	if code, _ = get(srv.Addr().String()); code == http.StatusOK {
		t.Errorf("the registry's address serves the profiler")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
