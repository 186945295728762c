package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/demo"
)

// needCLIs checks that the scenario's binaries were given (the hallmark
// CLI, and cosign with withCosign) and makes their paths absolute: the
// tools run in temp dirs.
func (e *Env) needCLIs(withCosign bool) error {
	bins := []*string{&e.HallmarkBin}
	switch {
	case withCosign && (e.HallmarkBin == "" || e.CosignBin == ""):
		return errors.New("needs -hallmark-bin and -cosign (bench/run.sh passes them)")
	case e.HallmarkBin == "":
		return errors.New("needs -hallmark-bin (bench/run.sh passes it)")
	case withCosign:
		bins = append(bins, &e.CosignBin)
	}
	for _, p := range bins {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}

// cliEnv is the environment the CLIs under test run in: only PATH from
// the bench's own, HOME in dir/home (docker config and TUF cache there, so
// nothing of the user's is read), then extra ("K=V").
func cliEnv(dir string, extra ...string) ([]string, error) {
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
		return nil, err
	}
	return append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"TUF_ROOT=" + filepath.Join(home, "tuf")}, extra...), nil
}

// runCLI runs bin with args in dir and env and returns its wall time and
// standard output; a non-zero exit is an error carrying the end of its
// standard error.
func runCLI(ctx context.Context, dir string, env []string, bin string, args ...string) (time.Duration, []byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, nil, fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), tail(strings.Join(args, " "), 500), err, tail(stderr.String(), 2000))
	}
	return d, stdout.Bytes(), nil
}

// serverProcess is a `hallmark server` process a scenario runs itself.
type serverProcess struct {
	url  string // http://127.0.0.1:<port>
	pid  int
	stop func() // SIGINT, then SIGKILL after 15 s; waits until it is gone
}

// startServerProcess runs `bin server` on a free loopback port over the
// data dir with the extra flags args, and waits (30 s at most) until it
// serves its trusted root.
func startServerProcess(ctx context.Context, bin, data string, args ...string) (*serverProcess, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append([]string{"server", "--addr", addr, "--data-dir", data}, args...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &serverProcess{url: "http://" + addr, pid: cmd.Process.Pid}
	p.stop = func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + demo.TrustedRootPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("the bench's Hallmark server did not start on %s: %s", addr, tail(logs.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
