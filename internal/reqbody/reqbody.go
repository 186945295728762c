package reqbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// MinProgress is how many bytes a body must deliver within each timeout
// period (unless it ends sooner): 64 KiB per 30 s, the default, is about
// 2 KiB/s, far below any real client and far above a trickle.
const MinProgress = 64 << 10

// ErrTooSlow is the error (wrapping os.ErrDeadlineExceeded) a body read
// returns when the body made too little progress.
var ErrTooSlow = errors.New("request body arrived too slowly")

// Handler reads every request body next reads under a progress deadline:
// the connection's read deadline is timeout from the first read, and moves
// timeout ahead each time MinProgress more bytes have arrived. After next
// returns, what it left unread must also arrive within timeout (net/http
// reads up to 256 KiB of it to reuse the connection).
func Handler(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		b := &body{rc: r.Body, ctl: http.NewResponseController(w), timeout: timeout}
		r.Body = b
		next.ServeHTTP(w, r)
		if !b.ended {
			b.extend()
		}
	})
}

// body is a request body read under a moving deadline. Like any request
// body it is read by one goroutine at a time.
type body struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController
	timeout time.Duration

	armed       bool  // a deadline is set
	unsupported bool  // the connection takes no deadlines
	ended       bool  // EOF (or an error) was returned
	since       int64 // bytes since the deadline last moved
}

// extend moves the deadline timeout ahead.
func (b *body) extend() {
	if b.unsupported {
		return
	}
	if err := b.ctl.SetReadDeadline(time.Now().Add(b.timeout)); err != nil {
		b.unsupported = true
		return
	}
	b.armed, b.since = true, 0
}

func (b *body) Read(p []byte) (int, error) {
	if !b.armed && !b.ended {
		b.extend()
	}
	n, err := b.rc.Read(p)
	b.since += int64(n)
	switch {
	case err == nil:
		if b.since >= MinProgress {
			b.extend()
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.ended = true
		err = fmt.Errorf("%w: less than %d bytes in %v (%w)", ErrTooSlow, MinProgress, b.timeout, err)
	default:
		// At EOF net/http clears the deadline itself (its background
		// read watches for the client going away): leave it alone.
		b.ended = true
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }
