package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// TestTrustedProxyValidated: a --trusted-proxy value that is neither an
// address nor a CIDR prefix stops the start with a message naming it.
func TestTrustedProxyValidated(t *testing.T) {
	for _, bad := range []string{"proxy.example.com", "10.0.0.0/33", "10.0.0.1-10.0.0.9"} {
		cfg := config.Defaults()
		cfg.Addr, cfg.DataDir, cfg.Auth = "127.0.0.1:0", t.TempDir(), "on"
		cfg.TrustedProxies = []string{"10.0.0.0/8", bad}
		srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err == nil {
			srv.Close()
			t.Fatalf("--trusted-proxy %q accepted", bad)
		}
		if !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("--trusted-proxy %q: %v", bad, err)
		}
	}
}
