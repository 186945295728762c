package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// loadScenario is the load test (bounded, loopback only, auth on):
// -load clients (HALLMARK_BENCH_LOAD_CLIENTS, default 50) run concurrently,
// each its own CI job of one of 5 projects (job token and ID token minted
// by the server over its admin API, as `hallmark ci job` gets them), and
// push, sign and verify HALLMARK_BENCH_LOAD_IMAGES (default 10) small
// unique images each, one after the other as a pipeline does:
//
//	push    the image with the CI job token (token auth: 401, token, push)
//	sign    keyless: ephemeral key, certificate for the job's ID token from
//	        the server's CA (SCT checked), hashedrekord entry in the server's
//	        log (SET and inclusion proof checked), the signature manifest
//	        with the eleven provenance annotations pushed (the server indexes
//	        and verifies it on push); or with one key ("key" mode, logged too)
//	verify  by the job's certificate identity and issuer and the tag
//	        annotation, offline bundle check
//
// against its own `hallmark server` process (auth on, temp data dir). Every
// error counts; the scenario fails unless there are none, every image
// verifies again in one batch afterwards, and the index holds every
// signature (verified, for keyless ones). Modes: HALLMARK_BENCH_LOAD_MODES
// (default "keyless,key"). -quick: 10 clients x 3 images.
//
// Throughput: images/s of the whole cycle = images / wall time (first push
// to last verify). Per phase: images / (time spent in that phase summed over
// clients / clients), i.e. the rate if every client only did that phase.
// Latencies are per image, nearest-rank percentiles.
func loadScenario(ctx context.Context, e *Env) ([]Row, error) {
	if err := e.needCLIs(false); err != nil {
		return nil, err
	}
	clients, per := envInt("HALLMARK_BENCH_LOAD_CLIENTS", 50), envInt("HALLMARK_BENCH_LOAD_IMAGES", 10)
	if e.Quick {
		clients, per = min(clients, 10), min(per, 3)
	}
	modes := strings.Split(envString("HALLMARK_BENCH_LOAD_MODES", "keyless,key"), ",")
	dir, err := os.MkdirTemp("", "hallmark-bench-load-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	srv, err := startAuthServer(ctx, e.HallmarkBin, dir)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	var rows []Row
	var failures []error
	for _, mode := range modes {
		mode = strings.TrimSpace(mode)
		if mode != "keyless" && mode != "key" {
			return rows, fmt.Errorf("HALLMARK_BENCH_LOAD_MODES: unknown mode %q (keyless, key)", mode)
		}
		e.Logf("load: %s, %d clients x %d images, auth on (load average %s)", mode, clients, per, loadAvg())
		rs, err := srv.loadRun(ctx, e, mode, clients, per)
		rows = append(rows, rs...)
		if err != nil {
			failures = append(failures, fmt.Errorf("%s: %w", mode, err))
			if ctx.Err() != nil {
				break
			}
		}
	}
	return rows, errors.Join(failures...)
}

// loadServer is the scenario's own `hallmark server` process.
type loadServer struct {
	url, data  string
	pid        int
	adminToken string
	admin      demo.Credentials
	trust      *demo.Trust
	stop       func()
}

// startAuthServer runs `hallmark server` with auth on (its default) on a
// free loopback port with a data dir in dir, and pins its trust the way an
// operator would: the fingerprint is read from the data dir, out of band.
func startAuthServer(ctx context.Context, bin, dir string) (*loadServer, error) {
	s := &loadServer{data: filepath.Join(dir, "hallmark-data")}
	p, err := startServerProcess(ctx, bin, s.data, "--auth", "on", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	s.url, s.pid, s.stop = p.url, p.pid, p.stop
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(s.data, name))
		return strings.TrimSpace(string(b)), err
	}
	pw, err1 := read("admin-password")
	tok, err2 := read("admin-token")
	trRaw, err3 := os.ReadFile(filepath.Join(s.data, "trust", root.TrustedRootFile))
	if err := errors.Join(err1, err2, err3); err != nil {
		s.stop()
		return nil, err
	}
	s.admin, s.adminToken = demo.Credentials{Username: "admin", Password: pw}, tok
	if s.trust, err = demo.FetchTrust(ctx, nil, s.url, root.Fingerprint(trRaw)); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// loadRun runs one mode and returns its rows.
func (s *loadServer) loadRun(ctx context.Context, e *Env, mode string, clients, per int) ([]Row, error) {
	cpu0, self0 := procCPUSeconds(s.pid), procCPUSeconds(os.Getpid())
	start := time.Now()
	res, err := demo.RunLoad(ctx, demo.LoadConfig{Jobs: &demo.HTTPJobs{URL: s.url, AdminToken: s.adminToken}, Trust: s.trust,
		Clients: clients, ImagesPerClient: per, Projects: 5, KeyBased: mode == "key"})
	if err != nil {
		return nil, err
	}
	cpu1, self1 := procCPUSeconds(s.pid), procCPUSeconds(os.Getpid())
	e.Logf("load: %s cycle done in %s (%d errors), re-verifying all %d images", mode, res.Wall.Round(time.Millisecond), len(res.Errors), len(res.Done))
	batchDur, batchErrs := demo.VerifyAll(ctx, res.Done, s.trust, res.Key, s.admin, 32, nil)
	total, verified, idxErr := demo.IndexCount(ctx, s.url, "Bearer "+s.adminToken, res.Projects, nil)
	n := res.Images
	ms := func(d time.Duration) float64 { return d.Seconds() * 1000 }
	phaseRate := func(d []time.Duration) float64 {
		busy := demo.Sum(d).Seconds() / float64(clients)
		if busy == 0 {
			return 0
		}
		return float64(len(d)) / busy
	}
	pct := func(d []time.Duration) string {
		return fmt.Sprintf("p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms", ms(demo.Percentile(d, 50)), ms(demo.Percentile(d, 90)),
			ms(demo.Percentile(d, 99)), ms(demo.Percentile(d, 100)))
	}
	hwm, _ := procStatusKB(s.pid, "VmHWM")
	label := fmt.Sprintf("load %s, %d clients x %d images, auth on", mode, clients, per)
	wantVerified := n
	if mode == "key" {
		wantVerified = 0 // the index verifies key signatures only with --trusted-key
	}
	details := []string{
		fmt.Sprintf("%s: %d images in %s; errors %d; batch re-verify of %d images: %s, %d failures; index: %d signatures (%d verified, want %d)",
			mode, n, res.Wall.Round(time.Millisecond), len(res.Errors), len(res.Done), batchDur.Round(time.Millisecond), len(batchErrs), total, verified, wantVerified),
		fmt.Sprintf("%s latency push: %s", mode, pct(res.Push)),
		fmt.Sprintf("%s latency sign: %s", mode, pct(res.Sign)),
		fmt.Sprintf("%s latency verify: %s", mode, pct(res.Verify)),
		fmt.Sprintf("%s latency cycle: %s", mode, pct(res.Cycle)),
		fmt.Sprintf("%s CPU: server %.2f s (%.1f ms/image, peak RSS %d MiB), clients (this process, incl. getting the CI jobs) %.2f s (%.1f ms/image); wall incl. CI jobs %s; load average now %s",
			mode, cpu1-cpu0, (cpu1-cpu0)*1000/float64(n), hwm/1024, self1-self0, (self1-self0)*1000/float64(n), time.Since(start).Round(time.Millisecond), loadAvg()),
	}
	rows := []Row{
		{Name: label + ": push+sign+verify cycle throughput", Unit: "images/s", Hallmark: float64(len(res.Cycle)) / res.Wall.Seconds(), HigherIsBetter: true, Details: details},
		{Name: label + ": push phase", Unit: "images/s", Hallmark: phaseRate(res.Push), HigherIsBetter: true},
		{Name: label + ": sign phase", Unit: "images/s", Hallmark: phaseRate(res.Sign), HigherIsBetter: true},
		{Name: label + ": verify phase", Unit: "images/s", Hallmark: phaseRate(res.Verify), HigherIsBetter: true},
		{Name: label + ": cycle latency p50", Unit: "ms", Hallmark: ms(demo.Percentile(res.Cycle, 50))},
		{Name: label + ": cycle latency p99", Unit: "ms", Hallmark: ms(demo.Percentile(res.Cycle, 99))},
		{Name: label + ": batch re-verify of every image (32 workers)", Unit: "images/s", Hallmark: float64(len(res.Done)) / batchDur.Seconds(), HigherIsBetter: true},
	}
	var errs []error
	for i, err := range res.Errors {
		if i == 3 {
			errs = append(errs, fmt.Errorf("... %d more", len(res.Errors)-3))
			break
		}
		errs = append(errs, err)
	}
	if len(batchErrs) > 0 {
		errs = append(errs, fmt.Errorf("batch re-verify: %d failures, the first: %w", len(batchErrs), batchErrs[0]))
	}
	switch {
	case idxErr != nil:
		errs = append(errs, fmt.Errorf("counting the index: %w", idxErr))
	case total != n || verified != wantVerified:
		errs = append(errs, fmt.Errorf("the index holds %d signatures (%d verified); want %d (%d verified)", total, verified, n, wantVerified))
	}
	if len(res.Done) != n {
		errs = append(errs, fmt.Errorf("%d of %d images went through the whole cycle", len(res.Done), n))
	}
	return rows, errors.Join(errs...)
}

// procCPUSeconds is the user+system CPU time of process pid (0 if unknown).
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may contain spaces): state is
	// field 3, utime 14, stime 15 (clock ticks, 100 per second on Linux).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}

func envString(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
