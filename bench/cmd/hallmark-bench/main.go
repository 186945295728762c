package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Target is a server under test.
type Target struct {
	Name string // "hallmark", "distribution"
	URL  string // base URL, e.g. http://127.0.0.1:5000
	PID  int    // 0 when unknown (RSS scenarios then skip it)
	// Replicas are the base URLs of every replica when the target is
	// several servers sharing their storage (URL is the first); empty for
	// one server.
	Replicas []string
}

// replica is the base URL of replica i (round robin; URL for one server).
func (t Target) replica(i int) string {
	if len(t.Replicas) == 0 {
		return t.URL
	}
	return t.Replicas[i%len(t.Replicas)]
}

// Env is what scenarios get: the two servers, shared settings and the
// shared test data.
type Env struct {
	Hallmark, Peer Target
	DataDir        string // random test data, generated once
	Quick          bool
	SmallReps      int           // repetitions for 64 MiB blobs
	LargeReps      int           // repetitions for 512 MiB blobs
	PullRounds     int           // timed pulls of each pushed blob from the page cache
	Sizes          []int64       // blob sizes in MiB
	RSSSize        int64         // MiB uploaded in the RSS scenario
	Conns          int           // concurrent connections of load scenarios
	Duration       time.Duration // measurement window of one load round
	Warmup         time.Duration
	Rounds         int // load rounds per server (alternating), median reported
	Verbose        bool
	Pin            bool // pin client and servers apart during pulls (pin.go)
	// Signing scenario (signing.go): the two CLIs compared and its sizes.
	HallmarkBin, CosignBin string
	SignReps               int // timed runs of each CLI
	BatchImages            int // images verified in one call
	BatchWorkers           int // hallmark verify --max-workers for the batch
	log                    io.Writer
	data                   *dataset
}

// Logf prints a progress line on stderr.
func (e *Env) Logf(format string, args ...any) {
	fmt.Fprintf(e.log, "bench: "+format+"\n", args...)
}

// targets returns both servers; the order alternates with i so neither
// always runs first (page cache, load changes).
func (e *Env) targets(i int) []Target {
	if i%2 == 1 {
		return []Target{e.Peer, e.Hallmark}
	}
	return []Target{e.Hallmark, e.Peer}
}

// Goal is the pass condition of a row.
type Goal struct {
	Kind  goalKind
	Value float64
}

type goalKind int

const (
	goalNone     goalKind = iota
	goalRatioMin          // hallmark/peer >= Value (higher is better)
	goalAbsBelow          // hallmark < Value (lower is better)
	goalRatioMax          // hallmark/peer <= Value (lower is better)
)

func (g Goal) String() string {
	switch g.Kind {
	case goalRatioMin:
		return fmt.Sprintf(">= %.2gx", g.Value)
	case goalAbsBelow:
		return fmt.Sprintf("< %g", g.Value)
	case goalRatioMax:
		return fmt.Sprintf("<= %.2gx", g.Value)
	}
	return "-"
}

// Row is one measurement of both servers.
type Row struct {
	Name           string
	Unit           string
	Hallmark, Peer float64
	HigherIsBetter bool
	Goal           Goal
	Details        []string // per-run figures, printed under the table
}

func (r Row) ratio() float64 {
	if r.Peer == 0 {
		return 0
	}
	return r.Hallmark / r.Peer
}

// Pass reports whether the row meets its goal (true when it has none).
func (r Row) Pass() bool {
	switch r.Goal.Kind {
	case goalRatioMin:
		return r.ratio() >= r.Goal.Value
	case goalAbsBelow:
		return r.Hallmark > 0 && r.Hallmark < r.Goal.Value
	case goalRatioMax:
		return r.Hallmark > 0 && r.Peer > 0 && r.ratio() <= r.Goal.Value
	}
	return true
}

// Scenario is one group of measurements.
type Scenario struct {
	Name string
	Help string
	Run  func(ctx context.Context, e *Env) ([]Row, error)
}

// scenarios lists every scenario in run order. Later issues add theirs here
// (sign/verify against cosign, transparency-log appends, load tests).
func scenarios() []Scenario {
	return []Scenario{
		{Name: "blob", Help: "blob push (monolithic POST+PUT and streamed PATCH) and pull throughput, 64 and 512 MiB", Run: blobScenario},
		{Name: "manifest", Help: "manifest GET by tag and by digest, req/s at -conns keep-alive connections", Run: manifestScenario},
		{Name: "auth", Help: "what auth costs: manifest GET by tag at -conns connections, Hallmark with auth on (bearer token) vs auth off, both loaded at once (own servers, same build); target on >= 0.8x off", Run: authScenario},
		{Name: "rss", Help: "peak RSS of each server while it receives one -rss-size MiB blob", Run: rssScenario},
		{Name: "signing", Help: "hallmark sign/verify vs cosign sign/verify wall time (key, no log), and one verify call over -batch-images images vs the ECDSA P-256 limit", Run: signingScenario},
		{Name: "tlog", Help: "transparency log: durable appends/s at -conns clients, and entry + inclusion proof latency at 1,000,000 entries (HALLMARK_BENCH_TLOG_SIZE)", Run: tlogScenario},
		{Name: "keyless", Help: "keyless hallmark sign/verify vs cosign sign/verify wall time against the same Hallmark server as registry, CA and log (own server, built-in issuer token)", Run: keylessScenario},
		{Name: "index", Help: "signature index: N real keyless signatures (made once into bench/out/index-cache) pushed, then indexed with full verification by the server's workers, then rebuilt; signatures/s (target >= 1,000/s; own server; HALLMARK_BENCH_INDEX_SIGNATURES, default 100,000)", Run: indexScenario},
		{Name: "search", Help: "incident search over 1,000,000 indexed keyless signatures of 100,000 images (generated once into bench/out/search-<n>; HALLMARK_BENCH_SEARCH_SIGNATURES): search p99 by query and caller, page sizes, the image API, an export (own server, auth on, SQLite); absolute targets", Run: searchScenario},
		{Name: "gc", Help: "online garbage collection: image push p99 while hallmark gc sweeps 100,000 unreferenced blobs (HALLMARK_BENCH_GC_BLOBS) vs no sweep, target <= 1.5x; the sweep's duration (own server)", Run: gcScenario},
		{Name: "load", Help: "load test, auth on: 50 concurrent CI jobs push, sign (keyless; then with a key) and verify 500 images; images/s per cycle and phase, latency percentiles, zero errors, batch re-verify, index count (own server; HALLMARK_BENCH_LOAD_CLIENTS/_IMAGES/_MODES)", Run: loadScenario},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hallmark-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &Env{log: stderr}
	var scen, sizes, peerName string
	var strict, list bool
	var wait time.Duration
	fs.StringVar(&e.Hallmark.URL, "hallmark", "", "Hallmark base URL (http://127.0.0.1:PORT); replicas sharing one database and bucket: their URLs, comma-separated (pushes go to the first, pulls to the second, load is spread over all)")
	fs.IntVar(&e.Hallmark.PID, "hallmark-pid", 0, "Hallmark process id (for RSS)")
	fs.StringVar(&e.Peer.URL, "peer", "", "peer registry base URL")
	fs.IntVar(&e.Peer.PID, "peer-pid", 0, "peer process id (for RSS)")
	fs.StringVar(&peerName, "peer-name", "distribution", "name of the peer in the table")
	fs.StringVar(&e.DataDir, "data", "bench/out/data", "directory for the random test data (generated once, reused)")
	fs.StringVar(&scen, "scenario", "all", "comma-separated scenarios to run, or all (see -list)")
	fs.BoolVar(&list, "list", false, "list scenarios and exit")
	fs.BoolVar(&e.Quick, "quick", false, "fewer repetitions and shorter load rounds (a smoke run; figures are noisier)")
	fs.StringVar(&sizes, "sizes", "64,512", "blob sizes in MiB for the blob scenario")
	fs.IntVar(&e.SmallReps, "reps", 5, "repetitions per blob measurement for blobs < 256 MiB")
	fs.IntVar(&e.LargeReps, "large-reps", 3, "repetitions per blob measurement for blobs >= 256 MiB")
	fs.IntVar(&e.PullRounds, "pull-rounds", 4, "timed page-cache pulls of every pushed blob")
	fs.Int64Var(&e.RSSSize, "rss-size", 1024, "blob size in MiB for the RSS scenario")
	fs.IntVar(&e.Conns, "conns", 32, "concurrent keep-alive connections for request-rate scenarios")
	fs.DurationVar(&e.Duration, "duration", 5*time.Second, "measurement window of one load round")
	fs.DurationVar(&e.Warmup, "warmup", time.Second, "warm-up before each load round (not counted)")
	fs.IntVar(&e.Rounds, "rounds", 3, "load rounds per server, alternating servers; the median is reported")
	fs.BoolVar(&strict, "strict", false, "exit with status 3 when a target is not met")
	fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for both servers to answer /v2/")
	fs.BoolVar(&e.Verbose, "v", false, "print every run")
	fs.BoolVar(&e.Pin, "pin", true, "during single-stream pulls, run this process on CPU 0 and the servers on CPUs 1..n-1 (needs >= 2 CPUs)")
	fs.StringVar(&e.HallmarkBin, "hallmark-bin", "", "hallmark binary for the signing scenario")
	fs.StringVar(&e.CosignBin, "cosign", "", "cosign v2 binary for the signing scenario")
	fs.IntVar(&e.SignReps, "sign-reps", 7, "timed sign and verify runs of each CLI per registry")
	fs.IntVar(&e.BatchImages, "batch-images", 1000, "signed images verified in one call")
	fs.IntVar(&e.BatchWorkers, "batch-workers", 32, "hallmark verify --max-workers for the batch")
	var freePorts int
	fs.IntVar(&freePorts, "free-ports", 0, "print this many free 127.0.0.1 TCP ports and exit (used by bench/run.sh)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if freePorts > 0 {
		return printFreePorts(stdout, stderr, freePorts)
	}
	all := scenarios()
	if list {
		for _, s := range all {
			fmt.Fprintf(stdout, "%-10s %s\n", s.Name, s.Help)
		}
		return 0
	}
	if e.Hallmark.URL == "" || e.Peer.URL == "" {
		fmt.Fprintln(stderr, "hallmark-bench: -hallmark and -peer URLs are required (bench/run.sh starts both servers and passes them)")
		return 2
	}
	e.Hallmark.Name, e.Peer.Name = "hallmark", peerName
	if urls := strings.Split(e.Hallmark.URL, ","); len(urls) > 1 {
		for _, u := range urls {
			e.Hallmark.Replicas = append(e.Hallmark.Replicas, strings.TrimSuffix(strings.TrimSpace(u), "/"))
		}
		e.Hallmark.URL = e.Hallmark.Replicas[0]
	}
	e.Hallmark.URL = strings.TrimSuffix(e.Hallmark.URL, "/")
	e.Peer.URL = strings.TrimSuffix(e.Peer.URL, "/")
	for _, s := range strings.Split(sizes, ",") {
		var n int64
		if _, err := fmt.Sscan(strings.TrimSpace(s), &n); err != nil || n < 1 {
			fmt.Fprintf(stderr, "hallmark-bench: -sizes: %q is not a size in MiB\n", s)
			return 2
		}
		e.Sizes = append(e.Sizes, n)
	}
	if e.Quick {
		e.SmallReps, e.LargeReps, e.PullRounds = min(e.SmallReps, 2), 1, min(e.PullRounds, 2)
		e.Duration, e.Warmup, e.Rounds = min(e.Duration, 2*time.Second), min(e.Warmup, 500*time.Millisecond), 1
	}
	var chosen []Scenario
	if scen == "all" || scen == "" {
		chosen = all
	} else {
		for _, name := range strings.Split(scen, ",") {
			i := slices.IndexFunc(all, func(s Scenario) bool { return s.Name == strings.TrimSpace(name) })
			if i < 0 {
				fmt.Fprintf(stderr, "hallmark-bench: unknown scenario %q (have: %s)\n", name, scenarioNames(all))
				return 2
			}
			chosen = append(chosen, all[i])
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ts := []Target{e.Hallmark, e.Peer}
	for i := 1; i < len(e.Hallmark.Replicas); i++ {
		ts = append(ts, Target{Name: e.Hallmark.Name, URL: e.Hallmark.Replicas[i]})
	}
	for _, t := range ts {
		if err := waitReady(ctx, t, wait); err != nil {
			fmt.Fprintf(stderr, "hallmark-bench: %v\n", err)
			return 1
		}
	}

	start := time.Now()
	fmt.Fprintf(stdout, "# hallmark-bench %s\n\n", start.UTC().Format(time.RFC3339))
	fmt.Fprintf(stdout, "- machine: %d CPUs (%s), %s, %s/%s\n", runtime.NumCPU(), cpuModel(), memTotal(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "- load average at start: %s\n", loadAvg())
	fmt.Fprintf(stdout, "- hallmark %s (pid %d), %s %s (pid %d)\n", e.Hallmark.URL, e.Hallmark.PID, e.Peer.Name, e.Peer.URL, e.Peer.PID)
	if len(e.Hallmark.Replicas) > 1 {
		fmt.Fprintf(stdout, "- hallmark replicas: %s (pushes to the first, pulls from the second, load spread over all)\n", strings.Join(e.Hallmark.Replicas, " "))
	}
	fmt.Fprintf(stdout, "- scenarios: %s; quick=%v; blob reps %d (<256 MiB) / %d; load: %d conns, %d rounds x %s (+%s warm-up)\n\n",
		scenarioNames(chosen), e.Quick, e.SmallReps, e.LargeReps, e.Conns, e.Rounds, e.Duration, e.Warmup)

	var rows []Row
	failed := false
	for _, s := range chosen {
		e.Logf("scenario %s (load average %s)", s.Name, loadAvg())
		rs, err := s.Run(ctx, e)
		rows = append(rows, rs...)
		if err != nil {
			fmt.Fprintf(stderr, "hallmark-bench: scenario %s: %v\n", s.Name, err)
			failed = true
			if errors.Is(err, context.Canceled) {
				break
			}
		}
	}
	printTable(stdout, e, rows)
	fmt.Fprintf(stdout, "\n- load average at end: %s; wall time %s\n", loadAvg(), time.Since(start).Round(time.Second))
	met := 0
	goals := 0
	for _, r := range rows {
		if r.Goal.Kind != goalNone {
			goals++
			if r.Pass() {
				met++
			}
		}
	}
	fmt.Fprintf(stdout, "- targets met: %d of %d\n", met, goals)
	if failed {
		return 1
	}
	if strict && met < goals {
		return 3
	}
	return 0
}

func printFreePorts(stdout, stderr io.Writer, n int) int {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "hallmark-bench: %v\n", err)
			return 1
		}
		lns = append(lns, l)
		fmt.Fprintln(stdout, l.Addr().(*net.TCPAddr).Port)
	}
	return 0
}

func scenarioNames(s []Scenario) string {
	var n []string
	for _, x := range s {
		n = append(n, x.Name)
	}
	return strings.Join(n, ",")
}

func printTable(w io.Writer, e *Env, rows []Row) {
	fmt.Fprintf(w, "| name | hallmark | %s | ratio (hallmark/%s) | target | pass/fail |\n", e.Peer.Name, e.Peer.Name)
	fmt.Fprintln(w, "|---|---:|---:|---:|---|---|")
	for _, r := range rows {
		dir := "higher is better"
		if !r.HigherIsBetter {
			dir = "lower is better"
		}
		res := "-"
		if r.Goal.Kind != goalNone {
			res = "FAIL"
			if r.Pass() {
				res = "pass"
			}
		}
		target := r.Goal.String()
		if r.Goal.Kind == goalAbsBelow {
			target += " " + r.Unit
		}
		fmt.Fprintf(w, "| %s (%s, %s) | %s | %s | %.2fx | %s | %s |\n",
			r.Name, r.Unit, dir, fmtNum(r.Hallmark), fmtNum(r.Peer), r.ratio(), target, res)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Runs (median is reported above):")
	fmt.Fprintln(w)
	for _, r := range rows {
		for _, d := range r.Details {
			fmt.Fprintf(w, "    %s: %s\n", r.Name, d)
		}
	}
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "n/a"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRuns(v []float64) string {
	var p []string
	for _, x := range v {
		p = append(p, fmtNum(x))
	}
	return strings.Join(p, " ")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown RAM"
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(l, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.0f GiB RAM", float64(kb)/(1<<20))
		}
	}
	return "unknown RAM"
}
