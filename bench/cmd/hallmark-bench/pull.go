package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"time"
)

// fastPuller GETs blobs over one keep-alive connection per server and
// discards the body with splice(2) into /dev/null (io.CopyN from a
// *net.TCPConn to an *os.File), so the client does not copy the bytes to
// user space. On a small machine the client's copy would otherwise be the
// bottleneck for both servers and hide how much work each server does per
// byte. Content is verified separately by pullBlob with sha256 (untimed).
type fastPuller struct {
	mu    sync.Mutex
	conns map[string]*pullConn
	null  *os.File
}

type pullConn struct {
	c  net.Conn
	br *bufio.Reader
}

func newFastPuller() (*fastPuller, error) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	return &fastPuller{conns: map[string]*pullConn{}, null: null}, nil
}

func (p *fastPuller) Close() {
	for _, pc := range p.conns {
		pc.c.Close()
	}
	p.null.Close()
}

func (p *fastPuller) conn(ctx context.Context, host string) (*pullConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc := p.conns[host]; pc != nil {
		return pc, nil
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	pc := &pullConn{c: c, br: bufio.NewReaderSize(c, 64<<10)}
	p.conns[host] = pc
	return pc, nil
}

func (p *fastPuller) drop(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pc := p.conns[host]; pc != nil {
		pc.c.Close()
		delete(p.conns, host)
	}
}

// pull returns the time from sending the request to the last body byte.
// With replicas, the second serves it (not the one that took the push).
func (p *fastPuller) pull(ctx context.Context, t Target, repo, dg string, size int64) (time.Duration, error) {
	u, err := url.Parse(t.replica(1))
	if err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		d, err, retry := p.try(ctx, u.Host, "/v2/"+repo+"/blobs/"+dg, size)
		if err == nil {
			return d, nil
		}
		p.drop(u.Host)
		if !retry || attempt > 0 {
			return 0, fmt.Errorf("%s GET blob: %w", t.Name, err)
		}
	}
}

// try makes one request; retry reports a failure before any response byte
// (a keep-alive connection the server closed).
func (p *fastPuller) try(ctx context.Context, host, path string, size int64) (time.Duration, error, bool) {
	pc, err := p.conn(ctx, host)
	if err != nil {
		return 0, err, false
	}
	if dl, ok := ctx.Deadline(); ok {
		pc.c.SetDeadline(dl)
	}
	start := time.Now()
	if _, err := io.WriteString(pc.c, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nUser-Agent: hallmark-bench\r\n\r\n"); err != nil {
		return 0, err, true
	}
	if _, err := pc.br.Peek(1); err != nil {
		return 0, err, true
	}
	status, n, closeConn, err := readHead(pc.br)
	if err != nil {
		return 0, err, false
	}
	if status != 200 || n != size {
		return 0, fmt.Errorf("status %d, Content-Length %d (want 200, %d)", status, n, size), false
	}
	buffered := min(int64(pc.br.Buffered()), n)
	if _, err := pc.br.Discard(int(buffered)); err != nil {
		return 0, err, false
	}
	got, err := io.CopyN(p.null, pc.c, n-buffered) // splice(2)
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("read %d of %d body bytes: %w", buffered+got, n, err), false
	}
	if closeConn {
		p.drop(host)
	}
	return d, nil, false
}
