package server_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// SIGTERM drains in-flight requests: an upload whose body is still arriving
// when the signal comes completes and is acknowledged, the process exits 0,
// and after a restart the blob is there.
func TestGracefulDrainOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	bin := testenv.HallmarkBinary(t)
	dir := t.TempDir()
	p := startServer(t, bin, dir)
	data := randBytes(4 << 20)
	d := digest.FromBytes(data)
	res, _ := mustDo(t, http.StatusAccepted, http.MethodPost, p.URL+"/v2/drain/app/blobs/uploads/", nil)
	loc := res.Header.Get("Location")

	pr, pw := io.Pipe()
	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		// A connection of its own: an idle keep-alive connection reused
		// for the PUT could be closed by the shutdown before the server
		// reads the request (HTTP's usual race, which clients retry).
		req, err := http.NewRequest(http.MethodPut, p.URL+loc+"?digest="+d.String(), pr)
		if err != nil {
			done <- result{err: err}
			return
		}
		req.ContentLength = int64(len(data))
		res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		done <- result{status: res.StatusCode, body: body, err: err}
	}()
	if _, err := pw.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	// SIGTERM only once the server is handling the request, i.e. has written
	// the first MiB to the upload's data file (before that, the connection
	// may still wait in the listener's backlog, and closing the listener
	// resets it: that is not a request in flight).
	file := filepath.Join(dir, "blobs", "uploads", path.Base(loc), "data")
	waitFor(t, "the server to receive the first MiB", func() bool {
		fi, err := os.Stat(file)
		return err == nil && fi.Size() >= 1<<20
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to start shutting down", func() bool { return strings.Contains(p.Logs.String(), "shutting down") })
	// New connections are refused while the old request drains.
	if _, err := (&http.Client{Timeout: 2 * time.Second}).Get(p.URL + "/v2/"); err == nil {
		t.Error("a new request was served after SIGTERM")
	}
	if _, err := io.Copy(pw, bytes.NewReader(data[1<<20:])); err != nil {
		r := <-done
		t.Fatalf("sending the rest of the body: %v; the request ended with status %d, err %v, body %s\nserver log:\n%s", err, r.status, r.err, r.body, p.Logs)
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusCreated {
		t.Fatalf("in-flight upload across SIGTERM: status %d, err %v, body %s\nserver log:\n%s", r.status, r.err, r.body, p.Logs)
	}
	<-p.Done()
	if code := p.ExitCode(); code != 0 {
		t.Fatalf("exit status %d after SIGTERM\n%s", code, p.Logs)
	}

	p2 := startServer(t, bin, dir)
	_, got := mustDo(t, http.StatusOK, http.MethodGet, p2.URL+"/v2/drain/app/blobs/"+d.String(), nil)
	if !bytes.Equal(got, data) {
		t.Fatal("the blob acknowledged during the drain is not intact after restart")
	}
}
