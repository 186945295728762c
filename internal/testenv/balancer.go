package testenv

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// Balancer is a load balancer in front of several servers (replicas) on
// loopback, for tests: each request goes to the backend Pick chooses.
type Balancer struct {
	URL  string // http://Addr
	Addr string // host:port clients use
	// Hits counts the requests each backend was sent.
	Hits []atomic.Int64
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
	targets := make([]*url.URL, len(backends))
	for i, b := range backends {
		u, err := url.Parse(b)
		if err != nil {
			tb.Fatalf("testenv: balancer backend %q: %v", b, err)
		}
		targets[i] = u
	}
	b := &Balancer{Hits: make([]atomic.Int64, len(backends))}
	var n atomic.Int64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			i := pick(r.In, n.Add(1)-1)
			b.Hits[i].Add(1)
			r.SetURL(targets[i])
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
