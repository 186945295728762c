package tlog_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta/postgres"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/tlog"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/rekor/rekortest"
)

// Benchmarks (not part of the default test run; run with -bench):
//
//	go test -run '^$' -bench 'Append' -benchtime 20000x ./internal/tlog/
//	go test -run '^$' -bench 'InclusionProof' -benchtime 20000x -timeout 30m ./internal/tlog/
//
// HALLMARK_TLOG_BENCH_SIZE overrides the 1,000,000-entry tree size.

var bigTree struct {
	once  sync.Once
	dir   string
	store *sqlite.Store
	log   *tlog.Log
	size  uint64
	took  time.Duration
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigTree.store != nil {
		bigTree.store.Close()
	}
	if bigTree.dir != "" {
		os.RemoveAll(bigTree.dir)
	}
	os.Exit(code)
}

// signedEntries makes n valid canonical hashedrekord entries, in parallel.
func signedEntries(b *testing.B, n int) ([]*rekor.Canonical, [][]byte) {
	b.Helper()
	cs := make([]*rekor.Canonical, n)
	raws := make([][]byte, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				raws[i] = rekortest.SignedEntry(b, k, []byte(fmt.Sprintf("bench artifact %d %d", i, time.Now().UnixNano())))
				c, err := rekor.Canonicalize(raws[i])
				if err != nil {
					b.Error(err)
					return
				}
				cs[i] = c
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return cs, raws
}

// BenchmarkAppendConcurrent32 is durable appends/s with 32 concurrent
// submitters on a real SQLite file (WAL, synchronous=FULL): each Add returns
// after its batch's transaction committed.
func BenchmarkAppendConcurrent32(b *testing.B) {
	benchAppend(b, newTestLog(b, tlog.Config{}).Log)
}

// BenchmarkAppendConcurrent32Postgres is the same on PostgreSQL (fsync on,
// synchronous commit), with the 32 submitters spread over two replicas
// (two pools and Logs on one database).
func BenchmarkAppendConcurrent32Postgres(b *testing.B) {
	url := testenv.Postgres(b)
	key := rekortest.NewKey(b)
	var logs []*tlog.Log
	for range 2 {
		st, err := postgres.Open(context.Background(), postgres.Config{URL: url})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		l, err := tlog.New(context.Background(), tlogStore(b, st), key, nil, tlog.Config{Hostname: "rekor.test"})
		if err != nil {
			b.Fatal(err)
		}
		logs = append(logs, l)
	}
	benchAppend(b, logs...)
}

// benchAppend adds b.N entries from 32 submitters, round robin over logs.
func benchAppend(b *testing.B, logs ...*tlog.Log) {
	cs, _ := signedEntries(b, b.N)
	ctx := context.Background()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := logs[w%len(logs)]
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				if _, err := l.Add(ctx, cs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// BenchmarkAppendHTTP32 is the same through the Rekor API over loopback
// HTTP: request parsing, signature verification, the durable append, the
// SET and the JSON response.
func BenchmarkAppendHTTP32(b *testing.B) {
	env := newAPI(b, 0)
	_, raws := signedEntries(b, b.N)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
				resp, err := client.Post(env.srv.URL+"/api/v1/log/entries", "application/json", bytesReader(raws[i]))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("status %s", resp.Status)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
}

// syntheticEntry is a canonical hashedrekord-shaped body for bulk-built
// trees (the proof benchmark measures storage, not signature checks).
func syntheticEntry(i uint64, keyB64 string) *rekor.Canonical {
	body := fmt.Sprintf(`{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"%064x"}},"signature":{"content":"MEUCIQD%064dAiB%040d","publicKey":{"content":"%s"}}}}`,
		i, i, i, keyB64)
	return &rekor.Canonical{Kind: rekor.KindHashedRekord, Body: []byte(body), LeafHash: rekor.LeafHash([]byte(body))}
}

// buildBigTree builds (once per process) a tree of HALLMARK_TLOG_BENCH_SIZE
// (default 1,000,000) entries through the sequencer's batch path, 10,000
// entries per transaction.
func buildBigTree(b *testing.B) {
	bigTree.once.Do(func() {
		size := uint64(1_000_000)
		if v := os.Getenv("HALLMARK_TLOG_BENCH_SIZE"); v != "" {
			size, _ = strconv.ParseUint(v, 10, 64)
		}
		bigTree.size = size
		dir, err := os.MkdirTemp("", "hallmark-tlog-bench-")
		if err != nil {
			bigTree.err = err
			return
		}
		bigTree.dir = dir
		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "hallmark.db")})
		if err != nil {
			bigTree.err = err
			return
		}
		bigTree.store = st
		ts, err := st.TransparencyLog(context.Background())
		if err != nil {
			bigTree.err = err
			return
		}
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		l, err := tlog.New(context.Background(), ts, k, nil, tlog.Config{Hostname: "bench.rekor"})
		if err != nil {
			bigTree.err = err
			return
		}
		bigTree.log = l
		keyB64 := base64.StdEncoding.EncodeToString(rekortest.PublicKeyPEM(b, k.Public()))
		start := time.Now()
		const batch = 10_000
		for n := uint64(0); n < size; n += batch {
			cs := make([]*rekor.Canonical, 0, batch)
			for i := n; i < min(n+batch, size); i++ {
				cs = append(cs, syntheticEntry(i, keyB64))
			}
			if err := l.AppendBulk(context.Background(), cs); err != nil {
				bigTree.err = err
				return
			}
		}
		bigTree.took = time.Since(start)
	})
	if bigTree.err != nil {
		b.Fatal(bigTree.err)
	}
	fi, _ := os.Stat(filepath.Join(bigTree.dir, "hallmark.db"))
	var mb int64
	if fi != nil {
		mb = fi.Size() >> 20
	}
	b.Logf("tree of %d entries built in %s through the batch path (%.0f entries/s), database %d MiB",
		bigTree.size, bigTree.took.Round(time.Millisecond), float64(bigTree.size)/bigTree.took.Seconds(), mb)
}

func reportLatency(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	q := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
	b.ReportMetric(float64(d[len(d)-1].Microseconds()), "max-µs")
}

// BenchmarkInclusionProof1M is inclusion-proof latency at a random index of
// a 1,000,000-entry tree: "proof" is the storage part (node reads and
// rehash), "entry" the whole GET by index (entry, head, proof, SET), "http"
// the same over the Rekor API.
func BenchmarkInclusionProof1M(b *testing.B) {
	buildBigTree(b)
	l, size := bigTree.log, bigTree.size
	ctx := context.Background()
	rnd := mrand.New(mrand.NewPCG(1, 2))
	b.Run("proof", func(b *testing.B) {
		d := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			idx := rnd.Uint64N(size)
			t0 := time.Now()
			if _, err := l.InclusionProofAt(ctx, idx, size); err != nil {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	})
	b.Run("entry", func(b *testing.B) {
		d := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			idx := rnd.Uint64N(size)
			t0 := time.Now()
			e, err := l.EntryByIndex(ctx, idx)
			if err != nil || e.Proof.TreeSize != size {
				b.Fatal(err)
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	})
	b.Run("http", func(b *testing.B) {
		mux := http.NewServeMux()
		api, _ := tlog.NewAPI(l, nil, tlog.APIConfig{BaseURL: "http://bench"})
		api.Register(mux, nil)
		srv := httptestServer(b, mux)
		d := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			idx := rnd.Uint64N(size)
			t0 := time.Now()
			resp, err := http.Get(fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", srv, idx))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatal(resp.Status)
			}
			d = append(d, time.Since(t0))
		}
		reportLatency(b, d)
	})
}
