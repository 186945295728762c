package testenv

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Balancer is a load balancer in front of several servers (replicas) on
// loopback, for tests: each request goes to the backend Pick chooses.
type Balancer struct {
	URL  string // http://Addr
	Addr string // host:port clients use
	// Hits counts the requests each backend was sent (up to 8 backends).
	Hits [8]atomic.Int64

	mu       sync.Mutex
	backends []*url.URL
}

// Add adds a backend (index len(backends so far)), e.g. a replica started
// after the balancer because its --external-url is the balancer's URL.
func (b *Balancer) Add(tb testing.TB, backend string) {
	tb.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		tb.Fatalf("testenv: balancer backend %q: %v", backend, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.backends) == len(b.Hits) {
		tb.Fatalf("testenv: a balancer has at most %d backends", len(b.Hits))
	}
	b.backends = append(b.backends, u)
}

// Pick chooses the backend (an index) of a request; n counts the requests
// the balancer has seen, from 0.
type Pick func(r *http.Request, n int64) int

// RoundRobin sends the requests to each backend in turn, so consecutive
// requests of one client (an upload's POST, PATCH and PUT) land on
// different replicas.
func RoundRobin(backends int) Pick {
	return func(_ *http.Request, n int64) int { return int(n % int64(backends)) }
}

// StartBalancer runs a reverse proxy on a random loopback port until tb
// ends. Requests keep their Host header (as behind a real load balancer,
// the replicas see the address clients use).
func StartBalancer(tb testing.TB, pick Pick, backends ...string) *Balancer {
	tb.Helper()
	b := &Balancer{}
	for _, u := range backends {
		b.Add(tb, u)
	}
	var n atomic.Int64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			b.mu.Lock()
			i := pick(r.In, n.Add(1)-1) % len(b.backends)
			target := b.backends[i]
			b.mu.Unlock()
			b.Hits[i].Add(1)
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		FlushInterval: -1,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	b.Addr = ln.Addr().String()
	b.URL = "http://" + b.Addr
	return b
}
