package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

const (
	mtOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mtOCIConfig   = "application/vnd.oci.image.config.v1+json"
	mtOCILayer    = "application/vnd.oci.image.layer.v1.tar"
	// acceptManifests is what docker and containerd send.
	acceptManifests = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)

// manifestScenario pushes one small image (config + one layer + OCI
// manifest, tagged) to each server, then measures GET by tag and by digest
// with -conns keep-alive connections, -rounds rounds per server alternating
// servers. Every response is checked: status 200 and the exact manifest
// bytes.
func manifestScenario(ctx context.Context, e *Env) ([]Row, error) {
	const repo, tag = "bench/manifest", "v1"
	layer := make([]byte, 4096)
	rand.Read(layer)
	diffID := sha256.Sum256(layer)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:` +
		hex.EncodeToString(diffID[:]) + `"]},"config":{}}`)
	var manifest []byte
	var mdigest string
	for _, t := range []Target{e.Hallmark, e.Peer} {
		ld, err := pushSmallBlob(ctx, t, repo, layer)
		if err != nil {
			return nil, err
		}
		cd, err := pushSmallBlob(ctx, t, repo, config)
		if err != nil {
			return nil, err
		}
		manifest = fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}],"annotations":{"org.opencontainers.image.title":"hallmark-bench"}}`,
			mtOCIManifest, mtOCIConfig, cd, len(config), mtOCILayer, ld, len(layer))
		sum := sha256.Sum256(manifest)
		mdigest = "sha256:" + hex.EncodeToString(sum[:])
		if err := pushManifest(ctx, t, repo, tag, mtOCIManifest, manifest); err != nil {
			return nil, err
		}
	}
	var rows []Row
	for _, ref := range []struct{ name, ref string }{{"manifest GET by tag", tag}, {"manifest GET by digest", mdigest}} {
		res := map[string][]loadResult{}
		for i := range e.Rounds {
			for _, t := range e.targets(i) {
				r, err := loadGET(ctx, t, "/v2/"+repo+"/manifests/"+ref.ref, manifest, e.Conns, e.Warmup, e.Duration)
				if err != nil {
					return rows, err
				}
				res[t.Name] = append(res[t.Name], r)
				if e.Verbose {
					e.Logf("%s %s round %d: %s", ref.name, t.Name, i+1, r)
				}
			}
		}
		h, p := rates(res[e.Hallmark.Name]), rates(res[e.Peer.Name])
		goal := 1.5
		if len(e.Hallmark.Replicas) > 1 {
			goal = 2 // issue 13: replicas vs distribution on the same S3 server
		}
		row := Row{
			Name: fmt.Sprintf("%s, %d conns", ref.name, e.Conns), Unit: "req/s", HigherIsBetter: true,
			Hallmark: median(h), Peer: median(p),
			Goal: Goal{Kind: goalRatioMin, Value: goal},
		}
		for _, t := range []Target{e.Hallmark, e.Peer} {
			for _, r := range res[t.Name] {
				row.Details = append(row.Details, fmt.Sprintf("%s %s", t.Name, r))
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func rates(rs []loadResult) []float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, r.rps)
	}
	return v
}

type loadResult struct {
	reqs     int
	rps      float64
	p50, p99 time.Duration
}

func (r loadResult) String() string {
	return fmt.Sprintf("%.0f req/s (%d requests), p50 %s, p99 %s", r.rps, r.reqs,
		r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
}

// loadGET is a small wrk-like load generator: conns goroutines, each with
// one keep-alive HTTP/1.1 connection, sending the same pre-built GET and
// reading the response with a minimal parser. It is cheaper than net/http's
// client, so on a small machine more CPU is left to the server under test.
// Responses completing inside the measurement window (after warmup) count.
func loadGET(ctx context.Context, t Target, path string, want []byte, conns int, warmup, dur time.Duration) (loadResult, error) {
	return loadGETWith(ctx, t, path, "", want, conns, warmup, dur)
}

// loadGETWith is loadGET with extra request header lines (each ending in
// CRLF), e.g. "Authorization: Bearer ...\r\n".
func loadGETWith(ctx context.Context, t Target, path, header string, want []byte, conns int, warmup, dur time.Duration) (loadResult, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return loadResult{}, err
	}
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: hallmark-bench\r\nAccept: " + acceptManifests + "\r\n" + header + "\r\n")
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+dur)
	lats := make([][]time.Duration, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		host := u.Host
		if r, err := url.Parse(t.replica(i)); err == nil {
			host = r.Host // connections spread over the replicas
		}
		wg.Go(func() {
			lats[i], errs[i] = loadConn(ctx, host, req, want, from, to)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return loadResult{}, fmt.Errorf("%s GET %s: %w", t.Name, path, err)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return loadResult{}, fmt.Errorf("%s GET %s: no response completed in the window", t.Name, path)
	}
	slices.Sort(all)
	return loadResult{
		reqs: len(all), rps: float64(len(all)) / dur.Seconds(),
		p50: all[len(all)/2], p99: all[len(all)*99/100],
	}, nil
}

func loadConn(ctx context.Context, addr string, req, want []byte, from, to time.Time) ([]time.Duration, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() { c.Close() }()
	br := bufio.NewReaderSize(c, 64<<10)
	body := make([]byte, 0, len(want))
	lats := make([]time.Duration, 0, 1<<14)
	for {
		t0 := time.Now()
		if t0.After(to) || ctx.Err() != nil {
			return lats, ctx.Err()
		}
		if _, err := c.Write(req); err != nil {
			return lats, err
		}
		status, n, closeConn, err := readResponse(br, &body)
		if err != nil {
			return lats, err
		}
		if status != 200 || !bytes.Equal(body, want) {
			return lats, fmt.Errorf("unexpected response: status %d, %d body bytes (want 200 and the %d-byte manifest)", status, n, len(want))
		}
		t1 := time.Now()
		if t1.After(from) && !t1.After(to) {
			lats = append(lats, t1.Sub(t0))
		}
		if closeConn {
			c.Close()
			if c, err = d.DialContext(ctx, "tcp", addr); err != nil {
				return lats, err
			}
			br.Reset(c)
		}
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length body into
// *body and returns the status, body length and whether the server closes
// the connection.
func readResponse(br *bufio.Reader, body *[]byte) (status, n int, closeConn bool, err error) {
	status, cl, closeConn, err := readHead(br)
	if err != nil {
		return 0, 0, false, err
	}
	n = int(cl)
	if cap(*body) < n {
		*body = make([]byte, n)
	}
	*body = (*body)[:n]
	_, err = io.ReadFull(br, *body)
	return status, n, closeConn, err
}

// readHead reads the status line and headers of an HTTP/1.1 response and
// returns the status, Content-Length (required) and whether the server
// closes the connection.
func readHead(br *bufio.Reader) (status int, n int64, closeConn bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, 0, false, fmt.Errorf("bad status line %q", line)
	}
	n = -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if n, err = strconv.ParseInt(string(v), 10, 64); err != nil || n < 0 {
				return 0, 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Connection")):
			closeConn = bytes.EqualFold(v, []byte("close"))
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			return 0, 0, false, fmt.Errorf("unexpected Transfer-Encoding %q (the load generator expects Content-Length)", v)
		}
	}
	if n < 0 {
		return status, 0, false, errors.New("response without Content-Length")
	}
	return status, n, closeConn, nil
}
