package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/demo"
)

// gcScenario measures what an online garbage collection sweep costs the
// pushes running at the same time. It starts its own `hallmark server`
// (auth off, SQLite and filesystem blobs in a temp dir, no GC worker:
// --gc-interval 0, --gc-grace 1s), pushes HALLMARK_BENCH_GC_BLOBS (default
// 100,000; -quick 10,000) small unreferenced blobs through the registry
// (monolithic POSTs, 32 at a time), waits for the grace period, then runs
// the push load (4 clients, each pushing images one after the other: a
// 512-byte config and two 64 KiB layers, then the manifest, all new
// content; the latency of an image is that of its four requests):
//
//	before  -duration of pushes with no sweep
//	during  pushes while the server's garbage collection worker sweeps
//	        the 100,000 blobs
//	after   -duration of pushes with no sweep again
//
// and reports the image push p99 during the sweep against the p99 of the
// before and after samples together (target <= 1.5x), and the sweep's
// duration. The pushes and the sweep share the machine, so the ratio is
// what the sweep costs a push, not only its database lock.
//
// The sweep is the server's online worker (--gc-interval): the server is
// restarted on the seeded data with an interval of gcInterval, measured
// before its first sweep, during it (until hallmark_gc_sweeps_total counts
// it in /metrics) and after, restarted with no worker (which would
// otherwise sweep the reviews of the images just pushed). (Until 2026-12-07 this scenario ran `hallmark
// gc` as a separate process on the data dir; on SQLite its transactions
// and the server's then wait for each other through SQLite's file locks
// and busy-retry sleeps instead of the server's one writer queue.)
func gcScenario(ctx context.Context, e *Env) ([]Row, error) {
	if err := e.needCLIs(false); err != nil {
		return nil, err
	}
	blobs := envInt("HALLMARK_BENCH_GC_BLOBS", 100000)
	if e.Quick {
		blobs = min(blobs, 10000)
	}
	dir, err := os.MkdirTemp("", "hallmark-bench-gc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "hallmark-data")
	srv, err := startServerProcess(ctx, e.HallmarkBin, data, "--auth", "off", "--log-level", "warn", "--gc-interval", "0", "--gc-grace", "1s")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	t := Target{Name: "hallmark", URL: srv.url, PID: srv.pid}

	e.Logf("gc: pushing %d unreferenced blobs (load average %s)", blobs, loadAvg())
	start := time.Now()
	if err := seedGarbage(ctx, t, blobs); err != nil {
		return nil, err
	}
	seed := time.Since(start)
	e.Logf("gc: %d blobs in %s (%.0f/s)", blobs, seed.Round(time.Second), float64(blobs)/seed.Seconds())
	time.Sleep(1500 * time.Millisecond) // past the grace period

	// The server's own worker sweeps: restarted with a GC interval, its
	// first sweep starts one interval later.
	srv.stop()
	srv, err = startServerProcess(ctx, e.HallmarkBin, data, "--auth", "off", "--log-level", "warn", "--gc-interval", gcInterval.String(), "--gc-grace", "1s")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	t = Target{Name: "hallmark", URL: srv.url, PID: srv.pid}
	sweepAt := time.Now().Add(gcInterval)

	const clients = 4
	before, err := pushLoad(ctx, t, clients, func() bool { return false }, min(e.Duration*2, gcInterval/2))
	if err != nil {
		return nil, err
	}
	time.Sleep(time.Until(sweepAt))
	// During: until the worker's first sweep is done (its counter in
	// /metrics, polled twice a second).
	var sweepDone atomic.Bool
	var sweepErr error
	var wg sync.WaitGroup
	pollCtx, stopPoll := context.WithCancel(ctx)
	wg.Go(func() {
		defer sweepDone.Store(true)
		for pollCtx.Err() == nil {
			m, err := scrapeMetrics(pollCtx, srv.url)
			if err != nil {
				sweepErr = err
				return
			}
			if m[`hallmark_gc_sweeps_total{result="error"}`] > 0 {
				sweepErr = errors.New("the server's garbage collection sweep failed (see its log)")
				return
			}
			if m[`hallmark_gc_sweeps_total{result="ok"}`] >= 1 {
				return
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	during, err := pushLoad(ctx, t, clients, sweepDone.Load, 0)
	stopPoll()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if sweepErr != nil {
		return nil, sweepErr
	}
	m, err := scrapeMetrics(ctx, srv.url)
	if err != nil {
		return nil, err
	}
	res := struct {
		BlobsDeleted int
		BytesFreed   int64
	}{int(m["hallmark_gc_blobs_deleted_total"]), int64(m["hallmark_gc_bytes_freed_total"])}
	sweepTook := time.Duration(m["hallmark_gc_last_sweep_seconds"] * float64(time.Second))
	if res.BlobsDeleted < blobs {
		return nil, fmt.Errorf("the sweep deleted %d blobs, want the %d pushed", res.BlobsDeleted, blobs)
	}
	// After: the worker would sweep again every interval (the reviews of
	// the images just pushed), so the quiet sample after the sweep is taken
	// on the server restarted without it.
	srv.stop()
	srv, err = startServerProcess(ctx, e.HallmarkBin, data, "--auth", "off", "--log-level", "warn", "--gc-interval", "0", "--gc-grace", "1s")
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	t = Target{Name: "hallmark", URL: srv.url, PID: srv.pid}
	after, err := pushLoad(ctx, t, clients, func() bool { return false }, e.Duration*2)
	if err != nil {
		return nil, err
	}
	quiet := append(append([]time.Duration(nil), before...), after...)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	sum := func(name string, d []time.Duration) string {
		return fmt.Sprintf("%s: %d images, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", name, len(d), ms(demo.Percentile(d, 50)),
			ms(demo.Percentile(d, 90)), ms(demo.Percentile(d, 99)), ms(demo.Percentile(d, 100)))
	}
	if len(during) < 100 {
		return nil, fmt.Errorf("only %d images were pushed during the %s sweep: too few for a p99", len(during), sweepTook.Round(time.Millisecond))
	}
	details := []string{
		fmt.Sprintf("seeded %d unreferenced blobs through the registry in %s (%.0f/s); the sweep deleted %d (%d bytes) in %s",
			blobs, seed.Round(time.Second), float64(blobs)/seed.Seconds(), res.BlobsDeleted, res.BytesFreed, sweepTook.Round(time.Millisecond)),
		sum("before the sweep", before), sum("during the sweep", during), sum("after the sweep", after),
	}
	return []Row{
		{Name: fmt.Sprintf("gc: image push p99 during a sweep of %d blobs vs none (%d clients)", blobs, clients), Unit: "ms",
			Hallmark: ms(demo.Percentile(during, 99)), Peer: ms(demo.Percentile(quiet, 99)), Goal: Goal{Kind: goalRatioMax, Value: 1.5}, Details: details},
		{Name: fmt.Sprintf("gc: sweep of %d unreferenced blobs while pushing", blobs), Unit: "s", Hallmark: sweepTook.Seconds()},
	}, nil
}

// seedGarbage pushes n distinct small blobs, linked and referenced by no
// manifest, 32 at a time.
func seedGarbage(ctx context.Context, t Target, n int) error {
	var next atomic.Int64
	errs := make([]error, 32)
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			c := &http.Client{Timeout: time.Minute}
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				b := []byte(fmt.Sprintf("unreferenced blob %d for the gc scenario", i))
				if err := pushBlobTo(ctx, c, t, "bench/garbage", b); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

func pushBlobTo(ctx context.Context, c *http.Client, t Target, repo string, b []byte) error {
	d := digest.FromBytes(b)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bytes.NewReader(b))
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("push blob: %s: %s", res.Status, tail(string(body), 300))
	}
	return nil
}

// pushLoad runs clients pushing new images (a config and two 64 KiB
// layers, then the manifest) one after the other, until done() or, when
// d > 0, d has passed, and returns each image's push latency.
func pushLoad(ctx context.Context, t Target, clients int, done func() bool, d time.Duration) ([]time.Duration, error) {
	end := time.Now().Add(d)
	stop := func() bool { return ctx.Err() != nil || done() || (d > 0 && time.Now().After(end)) }
	lat := make([][]time.Duration, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			c := &http.Client{Timeout: time.Minute}
			for i := 0; !stop(); i++ {
				t0 := time.Now()
				if err := pushImageTo(ctx, c, t, fmt.Sprintf("bench/gc-load-%d", w), fmt.Sprintf("i%d", i)); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return all, errors.Join(errs...)
}

func pushImageTo(ctx context.Context, c *http.Client, t Target, repo, tag string) error {
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int           `json:"size"`
	}
	cfg := make([]byte, 512)
	rand.Read(cfg)
	m := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc{"application/vnd.oci.image.config.v1+json", digest.FromBytes(cfg), len(cfg)}}
	if err := pushBlobTo(ctx, c, t, repo, cfg); err != nil {
		return err
	}
	var layers []desc
	for range 2 {
		l := make([]byte, 64<<10)
		rand.Read(l)
		if err := pushBlobTo(ctx, c, t, repo, l); err != nil {
			return err
		}
		layers = append(layers, desc{"application/vnd.oci.image.layer.v1.tar+gzip", digest.FromBytes(l), len(l)})
	}
	m["layers"] = layers
	body, _ := json.Marshal(m)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, t.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	rb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("push manifest: %s: %s", res.Status, tail(string(rb), 300))
	}
	return nil
}

// gcInterval is the GC worker's interval in the gc scenario: its first
// sweep starts this long after the server.
const gcInterval = 20 * time.Second

// scrapeMetrics reads the server's /metrics: value by series (name with
// its labels as written, e.g. hallmark_gc_sweeps_total{result="ok"}).
func scrapeMetrics(ctx context.Context, base string) (map[string]float64, error) {
	body, err := getOK(ctx, base+"/metrics")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSuffix(line, "\n")
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}
