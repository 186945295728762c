package abuse

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

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// env is a real Hallmark server with auth on, running in the test process
// on a random loopback port, with its data in a temp dir.
type env struct {
	URL, Host, DataDir string
	AdminPassword      string
	Logs               *testenv.SyncBuffer // JSON debug log
	Srv                *server.Server
}

// start runs a server with auth on; mod adjusts the configuration.
func start(t *testing.T, mod func(*config.Server)) *env {
	t.Helper()
	cfg := config.Defaults()
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Auth = "on"
	if mod != nil {
		mod(&cfg)
	}
	logs := &testenv.SyncBuffer{}
	var w io.Writer = logs
	if testing.Verbose() {
		w = io.MultiWriter(logs, os.Stderr)
	}
	log := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatalf("start server: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("server stopped with: %v", err)
		}
		srv.Close()
	})
	pw, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminPasswordFile))
	if err != nil {
		t.Fatalf("admin password file: %v", err)
	}
	u, _ := url.Parse(srv.URL())
	return &env{URL: srv.URL(), Host: u.Host, DataDir: cfg.DataDir, AdminPassword: strings.TrimSpace(string(pw)), Logs: logs, Srv: srv}
}

// admin opens the server's database as the management CLI does.
func (e *env) admin(t *testing.T) *auth.Admin {
	t.Helper()
	adm, closeFn, err := server.OpenAuthAdmin(context.Background(), e.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return adm
}
