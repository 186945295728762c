package testenv

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// AuthServer is a Hallmark server with access control on, running in the
// test process, with its JSON debug log captured (tests grep it for
// secrets) and the generated admin password read back.
type AuthServer struct {
	URL, Host, DataDir string
	AdminPassword      string
	Logs               *SyncBuffer
	Srv                *server.Server
}

// StartAuthServer runs a real server with auth on, on a random loopback
// port, with its data in a temp dir, until the test ends. mod, if not nil,
// adjusts the configuration before start.
func StartAuthServer(tb testing.TB, mod func(*config.Server)) *AuthServer {
	tb.Helper()
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Auth = "on"
	if mod != nil {
		mod(&cfg)
	}
	logs := &SyncBuffer{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		tb.Fatalf("start server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			tb.Logf("server stopped with: %v", err)
		}
		srv.Close()
	})
	pw, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminPasswordFile))
	if err != nil {
		tb.Fatalf("admin password file: %v", err)
	}
	u, _ := url.Parse(srv.URL())
	return &AuthServer{URL: srv.URL(), Host: u.Host, DataDir: cfg.DataDir, AdminPassword: strings.TrimSpace(string(pw)), Logs: logs, Srv: srv}
}
