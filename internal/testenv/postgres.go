package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a throwaway PostgreSQL server run by
// scripts/start-postgres --supervise: its data lives in a temp dir that is
// removed when the server's owner (the test, or the test process) ends.
type PostgresServer struct {
	// AdminURL reaches its "postgres" database as a superuser.
	AdminURL string

	mu    sync.Mutex // one command at a time
	stdin io.WriteCloser
	out   *bufio.Reader
	cmd   *exec.Cmd
	n     atomic.Int64
}

var shared struct {
	once sync.Once
	srv  *PostgresServer
	err  error
}

// errNoPostgres: PostgreSQL is not installed here.
var errNoPostgres = errors.New("PostgreSQL is not installed")

// Postgres returns the URL of a new, empty database on a PostgreSQL server
// shared by the test process (started on first use, or the one at
// $HALLMARK_TEST_DATABASE_URL). The database is dropped when tb ends. When
// PostgreSQL is missing the test is skipped, or fails under
// HALLMARK_REQUIRE_PEERS=1.
func Postgres(tb testing.TB) string {
	tb.Helper()
	shared.once.Do(func() {
		if u := os.Getenv("HALLMARK_TEST_DATABASE_URL"); u != "" {
			shared.srv = &PostgresServer{AdminURL: u}
			return
		}
		shared.srv, shared.err = startPostgres()
	})
	if shared.err != nil {
		skipOrFail(tb, shared.err)
	}
	return shared.srv.NewDatabase(tb)
}

// StartPostgres starts a PostgreSQL server of tb's own (for tests that stop
// and restart it), removed when tb ends.
func StartPostgres(tb testing.TB) *PostgresServer {
	tb.Helper()
	p, err := startPostgres()
	if err != nil {
		skipOrFail(tb, err)
	}
	tb.Cleanup(p.close)
	return p
}

func skipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errNoPostgres) && !RequirePeers() {
		tb.Skip("POSTGRESQL NOT INSTALLED, POSTGRESQL BACKEND NOT TESTED: " + err.Error())
	}
	tb.Fatalf("testenv: %v", err)
}

func startPostgres() (*PostgresServer, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "start-postgres"), "--supervise")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start scripts/start-postgres: %w", err)
	}
	p := &PostgresServer{stdin: stdin, out: bufio.NewReader(stdout), cmd: cmd}
	line, err := p.out.ReadString('\n')
	if err != nil {
		werr := cmd.Wait()
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 3 {
			return nil, fmt.Errorf("%w: %s", errNoPostgres, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("scripts/start-postgres failed (%v): %s", werr, stderr.String())
	}
	p.AdminURL = strings.TrimSpace(line)
	return p, nil
}

// do sends one command to the supervising script and waits for its answer.
func (p *PostgresServer) do(cmd string) error {
	if p.cmd == nil {
		return errors.New("this PostgreSQL server is not run by the test (HALLMARK_TEST_DATABASE_URL)")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return err
	}
	ans, err := p.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	if ans = strings.TrimSpace(ans); ans != "ok" {
		return fmt.Errorf("%s: %s", cmd, ans)
	}
	return nil
}

// Stop shuts the server down (fast mode: open sessions are cut).
func (p *PostgresServer) Stop(tb testing.TB) {
	tb.Helper()
	if err := p.do("stop"); err != nil {
		tb.Fatalf("testenv: stop PostgreSQL: %v", err)
	}
}

// Start starts the stopped server again on the same port.
func (p *PostgresServer) Start(tb testing.TB) {
	tb.Helper()
	if err := p.do("start"); err != nil {
		tb.Fatalf("testenv: start PostgreSQL: %v", err)
	}
}

func (p *PostgresServer) close() {
	p.stdin.Close()
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
	}
}

// NewDatabase creates an empty database on the server and returns its URL.
// On a server testenv started it stays until the server goes; on one at
// $HALLMARK_TEST_DATABASE_URL it is dropped when tb ends.
func (p *PostgresServer) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), p.n.Add(1))
	if err := p.admin("CREATE DATABASE " + name); err != nil {
		tb.Fatalf("testenv: create database: %v", err)
	}
	if p.cmd == nil {
		// Someone else's server: clean up. A server of our own goes with
		// its data dir, so skipping the drop saves a checkpoint per test.
		tb.Cleanup(func() {
			if err := p.admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
				tb.Logf("testenv: drop database %s: %v", name, err)
			}
		})
	}
	u, err := url.Parse(p.AdminURL)
	if err != nil {
		tb.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

func (p *PostgresServer) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}
