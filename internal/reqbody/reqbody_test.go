package reqbody_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/reqbody"
)

// result is what the test handler saw.
type result struct {
	n      int64
	err    error
	ctxErr error // the request context after the body was read and a pause
}

// serve runs Handler(timeout) over a handler that reads the whole body,
// optionally waits, and reports what it saw.
func serve(t *testing.T, timeout, pauseAfter time.Duration) (*httptest.Server, <-chan result) {
	t.Helper()
	seen := make(chan result, 1)
	srv := httptest.NewServer(reqbody.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		time.Sleep(pauseAfter)
		seen <- result{n, err, r.Context().Err()}
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
		}
	}), timeout))
	t.Cleanup(srv.Close)
	return srv, seen
}

// trickle sends a request announcing size bytes, then one byte per pause,
// at most max bytes, until the server closes the connection. It reports
// whether the server did.
func trickle(t *testing.T, addr string, size, max int, pause time.Duration) bool {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
	closed := make(chan struct{})
	go func() { io.Copy(io.Discard, conn); close(closed) }()
	for range max {
		select {
		case <-closed:
			return true
		case <-time.After(pause):
		}
		if _, err := conn.Write([]byte("x")); err != nil {
			return true
		}
	}
	return false
}

func TestTrickleIsCutOff(t *testing.T) {
	srv, seen := serve(t, 200*time.Millisecond, 0)
	if !trickle(t, srv.Listener.Addr().String(), 1<<20, 100, 50*time.Millisecond) {
		t.Fatal("connection still open after 100 bytes at one per 50ms; the timeout is 200ms")
	}
	r := <-seen
	if !errors.Is(r.err, reqbody.ErrTooSlow) || !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("handler read %d bytes, then %v; want ErrTooSlow wrapping os.ErrDeadlineExceeded", r.n, r.err)
	}
}

// TestUnreadBodyIsCutOff: a body the handler leaves unread must also keep
// coming, or the connection is closed.
func TestUnreadBodyIsCutOff(t *testing.T) {
	srv := httptest.NewServer(reqbody.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}), 200*time.Millisecond))
	defer srv.Close()
	if !trickle(t, srv.Listener.Addr().String(), 100<<10, 100, 50*time.Millisecond) {
		t.Fatal("connection still open after 100 bytes of an unread body at one per 50ms; the timeout is 200ms")
	}
}

// pieces is a body of n pieces of size bytes, pause before each.
type pieces struct {
	n, size int
	pause   time.Duration
	left    int
}

func (p *pieces) Read(b []byte) (int, error) {
	if p.left == 0 {
		if p.n == 0 {
			return 0, io.EOF
		}
		time.Sleep(p.pause)
		p.n, p.left = p.n-1, p.size
	}
	k := min(len(b), p.left)
	p.left -= k
	return k, nil
}

// TestSteadyBodyOutlastsTimeout: the deadline is about progress: a body
// taking longer than the timeout in all is read in full, streamed or with
// a Content-Length, and the request context stays alive after it.
func TestSteadyBodyOutlastsTimeout(t *testing.T) {
	const timeout = time.Second
	for _, length := range []int64{-1, 12 * 80 << 10} {
		srv, seen := serve(t, timeout, timeout+timeout/2)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, &pieces{n: 12, size: 80 << 10, pause: timeout / 10})
		req.ContentLength = length
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r := <-seen
		if r.err != nil || r.n != 12*80<<10 || resp.StatusCode != http.StatusOK {
			t.Fatalf("length %d: handler read %d bytes, err %v; status %d", length, r.n, r.err, resp.StatusCode)
		}
		if r.ctxErr != nil {
			t.Fatalf("length %d: the request context ended %v after the body was read: %v", length, timeout+timeout/2, r.ctxErr)
		}
	}
}

// TestWithoutDeadlines: a writer that cannot set deadlines (here a
// recorder) still gets its body.
func TestWithoutDeadlines(t *testing.T) {
	var got []byte
	h := reqbody.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}), time.Second)
	body := strings.Repeat("b", 200<<10)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
	if !bytes.Equal(got, []byte(body)) {
		t.Fatalf("read %d bytes, want %d", len(got), len(body))
	}
}
