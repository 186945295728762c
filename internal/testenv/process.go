package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that one goroutine may write while another
// reads it (a child process's output read by the test).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ServerProcess is a `hallmark server` child process.
type ServerProcess struct {
	Addr    string // host:port it listens on, e.g. 127.0.0.1:41234
	URL     string // http://Addr
	DataDir string
	Logs    *SyncBuffer // its JSON log lines (standard error)

	cmd  *exec.Cmd
	done chan struct{}
}

// StartServerProcess runs `bin server` on a random loopback port over
// dataDir, with JSON logs and the extra flags args (e.g. "--auth", "off",
// "--log-level", "info"), in env (nil: the test process's environment). It
// returns once the server logs that it listens, and fails the test if the
// process exits first. At the end of the test the process is stopped
// (SIGTERM, then SIGKILL) and, if the test failed, its log is shown.
func StartServerProcess(tb testing.TB, bin, dataDir string, env []string, args ...string) *ServerProcess {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"server", "--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, args...)...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	p := &ServerProcess{DataDir: dataDir, Logs: &SyncBuffer{}, cmd: cmd, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			p.Logs.Write(append(line, '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "hallmark server listening" {
				select {
				case addrc <- rec.Addr:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			tb.Logf("hallmark server log:\n%s", p.Logs)
		}
	})
	select {
	case p.Addr = <-addrc:
		p.URL = "http://" + p.Addr
	case <-p.done:
		tb.Fatalf("hallmark server exited before listening:\n%s", p.Logs)
	case <-time.After(60 * time.Second):
		tb.Fatalf("hallmark server did not start:\n%s", p.Logs)
	}
	return p
}

// Done is closed when the process has exited.
func (p *ServerProcess) Done() <-chan struct{} { return p.done }

// Signal sends sig to the process (without waiting for it to exit).
func (p *ServerProcess) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ExitCode is the process's exit code once Done is closed (-1 when a
// signal killed it).
func (p *ServerProcess) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// Kill kills the process with SIGKILL (a crash) and waits until it is gone.
func (p *ServerProcess) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to shut down (SIGTERM), kills it if it has not
// exited after 15 seconds, and waits until it is gone.
func (p *ServerProcess) Stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.Kill()
	}
}
