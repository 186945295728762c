package abuse

import (
	"context"
	"testing"

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
	e := testenv.StartAuthServer(t, mod)
	return &env{URL: e.URL, Host: e.Host, DataDir: e.DataDir, AdminPassword: e.AdminPassword, Logs: e.Logs, Srv: e.Srv}
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
