package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// tlogScenario measures Hallmark's transparency log (Rekor v1 API). The
// peer registry has no log, so its column is n/a; the targets are absolute.
//
//   - durable appends/s with -conns concurrent clients POSTing fresh, validly
//     signed hashedrekord entries (the server verifies each signature,
//     commits it durably in a group-committed batch and answers with SET,
//     inclusion proof and checkpoint), -rounds rounds of -duration after
//     -warmup, median. The target (>= 2,000 appends/s) is expressed as
//     microseconds per append (< 500 µs) so it fits the table's goals. The
//     entries are signed before each round so client signing does not
//     compete with the server for the CPUs.
//   - inclusion-proof latency: the same clients grow the log to
//     HALLMARK_BENCH_TLOG_SIZE entries (default 1,000,000; 20,000 with
//     -quick), then GET /api/v1/log/entries?logIndex=<random> on one
//     connection; p50 and p99 (target p99 < 5 ms). Sampled responses are
//     verified afterwards (SET with the served key, inclusion proof against
//     the signed checkpoint).
func tlogScenario(ctx context.Context, e *Env) ([]Row, error) {
	base := e.Hallmark.URL
	key, err := tlogServedKey(ctx, base)
	if err != nil {
		return nil, err
	}
	gen := newTlogGen()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: e.Conns * 2, MaxConnsPerHost: e.Conns * 2}}

	var rates []float64
	var details []string
	for r := 0; r < e.Rounds; r++ {
		// Enough entries for the round at up to 15,000 appends/s.
		need := int((e.Warmup + e.Duration).Seconds() * 15000)
		e.Logf("tlog: signing %d entries for round %d", need, r+1)
		pool := gen.make(need)
		e.Logf("tlog: round %d, %d clients, %s (+%s warm-up), load average %s", r+1, e.Conns, e.Duration, e.Warmup, loadAvg())
		res, err := tlogLoad(ctx, client, e.Hallmark, e.Conns, pool, e.Warmup, e.Duration)
		if err != nil {
			return nil, err
		}
		rates = append(rates, res.rate)
		details = append(details, fmt.Sprintf("round %d: %.0f appends/s (%d in %s, mean latency %s, p99 %s%s)",
			r+1, res.rate, res.n, res.elapsed.Round(time.Millisecond), res.mean.Round(time.Microsecond), res.p99.Round(time.Microsecond), res.note))
	}
	rate := median(rates)
	rows := []Row{
		{Name: fmt.Sprintf("tlog durable appends, %d clients", e.Conns), Unit: "appends/s", Hallmark: rate, HigherIsBetter: true, Details: details},
		{Name: fmt.Sprintf("tlog time per durable append, %d clients (>= 2,000/s)", e.Conns), Unit: "µs", Hallmark: 1e6 / rate, Goal: Goal{Kind: goalAbsBelow, Value: 500}},
	}

	size := uint64(1_000_000)
	if e.Quick {
		size = 20_000
	}
	if v := os.Getenv("HALLMARK_BENCH_TLOG_SIZE"); v != "" {
		if size, err = strconv.ParseUint(v, 10, 64); err != nil {
			return rows, fmt.Errorf("HALLMARK_BENCH_TLOG_SIZE: %v", err)
		}
	}
	cur, err := tlogTreeSize(ctx, base)
	if err != nil {
		return rows, err
	}
	if cur < size {
		e.Logf("tlog: growing the log from %d to %d entries (signing and appending concurrently)", cur, size)
		start := time.Now()
		if err := tlogFill(ctx, client, base, e.Conns, gen, size-cur); err != nil {
			return rows, err
		}
		e.Logf("tlog: grown in %s", time.Since(start).Round(time.Second))
	}
	if cur, err = tlogTreeSize(ctx, base); err != nil {
		return rows, err
	}
	samples := 5000
	if e.Quick {
		samples = 1000
	}
	lat, bodies, err := tlogProofLatency(ctx, base, cur, samples)
	if err != nil {
		return rows, err
	}
	for _, b := range bodies {
		if err := tlogVerifyEntry(b, key); err != nil {
			return rows, fmt.Errorf("tlog: a served entry does not verify: %w", err)
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	detail := fmt.Sprintf("%d GETs by random index at tree size %d: p50 %.3f ms, p99 %.3f ms, max %.3f ms; %d responses verified (SET, inclusion proof, checkpoint)",
		len(lat), cur, q(0.5), q(0.99), q(1), len(bodies))
	rows = append(rows,
		Row{Name: fmt.Sprintf("tlog entry + inclusion proof p50 at %d entries", cur), Unit: "ms", Hallmark: q(0.5), Details: []string{detail}},
		Row{Name: fmt.Sprintf("tlog entry + inclusion proof p99 at %d entries", cur), Unit: "ms", Hallmark: q(0.99), Goal: Goal{Kind: goalAbsBelow, Value: 5}},
	)
	return rows, nil
}

// tlogGen makes validly signed hashedrekord entries, all distinct.
type tlogGen struct {
	seq atomic.Uint64
}

func newTlogGen() *tlogGen { return &tlogGen{} }

type tlogSigner struct {
	k      *ecdsa.PrivateKey
	keyB64 string
}

func newTlogSigner() *tlogSigner {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return &tlogSigner{k: k, keyB64: base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
}

func (s *tlogSigner) entry(n uint64) []byte {
	d := sha256.Sum256(fmt.Appendf(nil, "hallmark-bench tlog artifact %d %d", n, time.Now().UnixNano()))
	sig, _ := ecdsa.SignASN1(rand.Reader, s.k, d[:])
	return fmt.Appendf(nil, `{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{"data":{"hash":{"algorithm":"sha256","value":"%x"}},"signature":{"content":"%s","publicKey":{"content":"%s"}}}}`,
		d, base64.StdEncoding.EncodeToString(sig), s.keyB64)
}

// make signs n entries on all CPUs.
func (g *tlogGen) make(n int) [][]byte {
	out := make([][]byte, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := newTlogSigner()
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				out[i] = s.entry(g.seq.Add(1))
			}
		}()
	}
	wg.Wait()
	return out
}

func tlogPost(ctx context.Context, client *http.Client, base string, entry []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/log/entries", bytes.NewReader(entry))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("POST /api/v1/log/entries: %s %s", resp.Status, tail(string(b), 300))
	}
	return nil
}

type tlogResult struct {
	n         int
	elapsed   time.Duration
	rate      float64
	mean, p99 time.Duration
	note      string
}

// tlogLoad posts pool entries from conns clients; entries acknowledged in
// [warm-up end, warm-up end + dur) are counted.
// Client c posts to replica c of t.
func tlogLoad(ctx context.Context, client *http.Client, t Target, conns int, pool [][]byte, warmup, dur time.Duration) (tlogResult, error) {
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+dur)
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var lastAck time.Time
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := t.replica(c)
			for {
				i := next.Add(1) - 1
				if i >= int64(len(pool)) || time.Now().After(to) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := tlogPost(ctx, client, base, pool[i])
				t1 := time.Now()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil && !t1.Before(from) && t1.Before(to) {
					lat = append(lat, t1.Sub(t0))
					lastAck = t1
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return tlogResult{}, firstErr
	}
	if len(lat) == 0 {
		return tlogResult{}, errors.New("tlog: no append completed in the measurement window")
	}
	r := tlogResult{n: len(lat), elapsed: dur}
	if next.Load() >= int64(len(pool)) && lastAck.Before(to) {
		r.elapsed = lastAck.Sub(from)
		r.note = "; ran out of pre-signed entries, rate over the shorter window"
	}
	r.rate = float64(r.n) / r.elapsed.Seconds()
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	r.mean = sum / time.Duration(len(lat))
	slices.Sort(lat)
	r.p99 = lat[int(0.99*float64(len(lat)-1))]
	return r, nil
}

// tlogFill appends n more entries, signing them as it goes.
func tlogFill(ctx context.Context, client *http.Client, base string, conns int, g *tlogGen, n uint64) error {
	ch := make(chan []byte, 4096)
	var left atomic.Int64
	left.Store(int64(n))
	for w := 0; w < runtime.NumCPU(); w++ {
		go func() {
			s := newTlogSigner()
			for left.Add(-1) >= 0 {
				select {
				case ch <- s.entry(g.seq.Add(1)):
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var done atomic.Uint64
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done.Add(1) <= n {
				select {
				case e := <-ch:
					if err := tlogPost(ctx, client, base, e); err != nil {
						errc <- err
						return
					}
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func tlogGetJSON(ctx context.Context, u string, v any) ([]byte, error) {
	b, err := getOK(ctx, u)
	if err != nil || v == nil {
		return b, err
	}
	return b, json.Unmarshal(b, v)
}

// getOK returns the body of a GET of u, an error unless it answers 200.
func getOK(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %s", u, resp.Status, tail(string(b), 300))
	}
	return b, nil
}

func tlogTreeSize(ctx context.Context, base string) (uint64, error) {
	var info struct {
		TreeSize uint64 `json:"treeSize"`
	}
	_, err := tlogGetJSON(ctx, base+"/api/v1/log", &info)
	return info.TreeSize, err
}

func tlogServedKey(ctx context.Context, base string) (*ecdsa.PublicKey, error) {
	b, err := tlogGetJSON(ctx, base+"/api/v1/log/publicKey", nil)
	if err != nil {
		return nil, fmt.Errorf("tlog: %w (does this hallmark serve a transparency log?)", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("tlog: public key is not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("tlog: log key is %T, not ECDSA", k)
	}
	return ek, nil
}

// tlogProofLatency times GETs by random index on one keep-alive
// connection and keeps every 50th body for verification.
func tlogProofLatency(ctx context.Context, base string, size uint64, n int) ([]time.Duration, [][]byte, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	rnd := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	lat := make([]time.Duration, 0, n)
	var keep [][]byte
	for i := 0; i < n; i++ {
		idx := rnd.Uint64N(size)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", base, idx), nil)
		if err != nil {
			return nil, nil, err
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return nil, nil, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, nil, fmt.Errorf("GET entry %d: %v %s %s", idx, err, resp.Status, tail(string(b), 200))
		}
		lat = append(lat, d)
		if i%50 == 0 {
			keep = append(keep, b)
		}
	}
	return lat, keep, nil
}

// tlogVerifyEntry checks a Rekor LogEntry response as a client does
// (pkg/sign parses it, pkg/verify checks it): the entry ID is the leaf
// hash, and the SET, inclusion proof and checkpoint verify with the log key.
func tlogVerifyEntry(raw []byte, key *ecdsa.PublicKey) error {
	var ids map[string]json.RawMessage
	if err := json.Unmarshal(raw, &ids); err != nil || len(ids) != 1 {
		return fmt.Errorf("not a one-entry LogEntry: %v", err)
	}
	e, err := rekor.ParseEntryResponse(raw)
	if err != nil {
		return err
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(e.Body)
	for id := range ids {
		if !strings.HasSuffix(id, hex.EncodeToString(leaf)) {
			return fmt.Errorf("entry ID %s is not the leaf hash", id)
		}
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return err
	}
	id := sha256.Sum256(der)
	keys := map[string]root.LogKey{hex.EncodeToString(id[:]): {Key: key}}
	if err := verify.VerifySET(e, keys); err != nil {
		return err
	}
	return verify.VerifyInclusion(e, keys)
}
