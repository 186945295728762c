package abuse

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/config"
)

// slowBodyTimeout is the body read timeout of the transport tests: short,
// so that cutting a slow body off takes a second, not the default 30.
const slowBodyTimeout = time.Second

// TestSlowBodyIsCutOff (issue 9, defect 5): a client announcing a large
// body and sending it a byte at a time held its connection, and the
// bytes it had sent, for as long as it liked (still open after 75 s). The
// server must close such a connection once the body read timeout passes
// without real progress.
func TestSlowBodyIsCutOff(t *testing.T) {
	e := start(t, func(c *config.Server) { c.BodyReadTimeout = slowBodyTimeout })
	tok := e.regToken(t, "admin", e.AdminPassword, "repository:slow/app:push,pull")
	upload := e.regStartUpload(t, "slow/app", tok)
	for _, tc := range []struct{ name, method, path, auth string }{
		{"log entry, anonymous", http.MethodPost, "/api/v1/log/entries", ""},
		{"certificate request, anonymous", http.MethodPost, "/api/v2/signingCert", ""},
		{"quarantine API, anonymous", http.MethodPost, "/api/v1/quarantine", ""},
		{"registry chunk", http.MethodPatch, upload, "Authorization: Bearer " + tok + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", e.Host)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
				tc.method, tc.path, e.Host, tc.auth, 4<<20-1)
			closed := make(chan struct{})
			go func() { io.Copy(io.Discard, conn); close(closed) }()
			began := time.Now()
			const pause, bytesToSend = 200 * time.Millisecond, 50 // 10 s in all, ten times the timeout
			for range bytesToSend {
				select {
				case <-closed:
				case <-time.After(pause):
					if _, err := conn.Write([]byte(" ")); err == nil {
						continue
					}
				}
				// The server closed the connection (or reset it).
				took := time.Since(began)
				if took > slowBodyTimeout+5*time.Second {
					t.Fatalf("connection closed only after %v; the body read timeout is %v", took, slowBodyTimeout)
				}
				t.Logf("closed after %v", took.Round(time.Millisecond))
				return
			}
			t.Fatalf("connection still open after %v of one byte per %v; the body read timeout is %v",
				time.Since(began).Round(time.Second), pause, slowBodyTimeout)
		})
	}
	// The cut-off chunk was dropped and the session is free again.
	if r := e.regDo(t, http.MethodGet, upload, tok, nil); r.code != http.StatusNoContent || r.header.Get("Range") != "0-0" {
		t.Fatalf("upload after the slow chunk: %d Range %q; want 204 Range 0-0", r.code, r.header.Get("Range"))
	}
}

// pacedReader yields pieces of data with a pause before each: a slow but
// steady client.
type pacedReader struct {
	data  []byte
	piece int
	pause time.Duration
	left  int // bytes of the current piece still to give
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(p.data) == 0 {
		return 0, io.EOF
	}
	if p.left == 0 {
		time.Sleep(p.pause)
		p.left = min(p.piece, len(p.data))
	}
	n := copy(b, p.data[:min(p.left, len(b))])
	p.data, p.left = p.data[n:], p.left-n
	return n, nil
}

// TestSteadyUploadOutlastsBodyTimeout: the body read timeout is about
// progress, not the total: a blob sent in pieces, taking three times the
// timeout in all, is accepted.
func TestSteadyUploadOutlastsBodyTimeout(t *testing.T) {
	e := start(t, func(c *config.Server) { c.BodyReadTimeout = slowBodyTimeout })
	tok := e.regToken(t, "admin", e.AdminPassword, "repository:steady/app:push,pull")
	upload := e.regStartUpload(t, "steady/app", tok)
	data := bytes.Repeat([]byte("steady-upload-"), 80_000) // ~1.1 MB
	const pieces = 8
	body := &pacedReader{data: data, piece: len(data)/pieces + 1, pause: 3 * slowBodyTimeout / pieces}
	req, _ := http.NewRequest(http.MethodPatch, e.URL+upload, body)
	req.ContentLength = -1 // streamed (chunked), as docker sends a layer
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/octet-stream")
	began := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("steady upload after %v: %v", time.Since(began), err)
	}
	resp.Body.Close()
	if took := time.Since(began); resp.StatusCode != http.StatusAccepted || took < 2*slowBodyTimeout {
		t.Fatalf("steady upload: %d after %v (want 202, and the upload to have taken longer than the timeout)", resp.StatusCode, took)
	}
	d := digest.FromBytes(data)
	if r := e.regDo(t, http.MethodPut, resp.Header.Get("Location")+"?digest="+d.String(), tok, nil); r.code != http.StatusCreated {
		t.Fatalf("finish upload: %d %s", r.code, r.body)
	}
}
