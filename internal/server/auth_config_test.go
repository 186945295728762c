package server_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// TestAuthConfigRefusals: an open registry or plain-HTTP credentials never
// reach the network by accident.
func TestAuthConfigRefusals(t *testing.T) {
	if config.Defaults().Auth != "on" {
		t.Fatal("auth is not on by default")
	}
	tests := []struct {
		name    string
		mod     func(*config.Server)
		wantErr string // "" = valid
	}{
		{"auth off on loopback", func(c *config.Server) { c.Auth = "off" }, ""},
		{"auth off on all interfaces", func(c *config.Server) { c.Auth = "off"; c.Addr = ":5000"; c.InsecureHTTP = true }, "only allowed on a loopback address"},
		{"auth off on a LAN address", func(c *config.Server) { c.Auth = "off"; c.Addr = "192.0.2.10:5000"; c.InsecureHTTP = true }, "only allowed on a loopback address"},
		{"plain HTTP on a non-loopback address", func(c *config.Server) { c.Addr = "0.0.0.0:5000" }, "--insecure-http"},
		{"plain HTTP allowed explicitly", func(c *config.Server) { c.Addr = "0.0.0.0:5000"; c.InsecureHTTP = true }, ""},
		{"TLS on a non-loopback address", func(c *config.Server) { c.Addr = "0.0.0.0:5000"; c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, ""},
		{"cert without key", func(c *config.Server) { c.TLSCert = "c.pem" }, "together"},
		{"unknown auth mode", func(c *config.Server) { c.Auth = "maybe" }, "use on, token or off"},
		{"localhost is loopback", func(c *config.Server) { c.Auth = "off"; c.Addr = "localhost:5000" }, ""},
		{"IPv6 loopback", func(c *config.Server) { c.Auth = "off"; c.Addr = "[::1]:5000" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Defaults()
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
	// server.New refuses before opening anything.
	c := config.Defaults()
	c.Auth, c.Addr, c.DataDir = "off", "0.0.0.0:0", t.TempDir()
	if _, err := server.New(context.Background(), c, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("server.New with auth off on 0.0.0.0: %v", err)
	}
	c = config.Defaults()
	c.Addr, c.DataDir, c.TLSCert, c.TLSKey = "127.0.0.1:0", t.TempDir(), filepath.Join(t.TempDir(), "missing.pem"), filepath.Join(t.TempDir(), "missing-key.pem")
	if _, err := server.New(context.Background(), c, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "tls-cert") {
		t.Fatalf("server.New with a missing certificate: %v", err)
	}
}

// TestAuthBootstrapAdmin: the first start creates "admin" with a generated
// password in <data-dir>/admin-password (0600) and says where; a restart
// keeps it.
func TestAuthBootstrapAdmin(t *testing.T) {
	dir := t.TempDir()
	e := startAuthServer(t, func(c *config.Server) { c.DataDir = dir })
	p := filepath.Join(dir, server.AdminPasswordFile)
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin password file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if !strings.Contains(e.Logs.String(), p) {
		t.Fatal("the log does not say where the admin password is")
	}
	if strings.Contains(e.Logs.String(), e.AdminPassword) {
		t.Fatal("the admin password itself was logged")
	}
	if r := e.token(t, "admin", e.AdminPassword, false, "registry:catalog:*"); r.status != 200 || len(grantedAccess(t, r.Token)) != 1 {
		t.Fatalf("admin login with the generated password: %d", r.status)
	}
	users, err := e.admin(t).Store.ListUsers(context.Background())
	if err != nil || len(users) != 1 || users[0].Name != "admin" || !users[0].Admin {
		t.Fatalf("users after first start: %+v %v", users, err)
	}
	// A second start on the same data dir (a restart, or a replica) keeps
	// the account and its password.
	e2 := startAuthServer(t, func(c *config.Server) { c.DataDir = dir })
	if e2.AdminPassword != e.AdminPassword || strings.Contains(e2.Logs.String(), "created the admin account") {
		t.Fatal("the second start replaced the admin account")
	}
	if r := e2.token(t, "admin", e.AdminPassword, false); r.status != 200 {
		t.Fatalf("admin login after restart: %d", r.status)
	}
}
