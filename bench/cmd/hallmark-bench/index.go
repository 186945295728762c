package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// indexScenario measures the signature index with full verification: N
// real keyless signatures (default 100,000; HALLMARK_BENCH_INDEX_SIGNATURES;
// 2,000 with -quick), each with its own ephemeral key and certificate from
// the server's CA (with its embedded SCT) and its own entry in the
// server's transparency log, as cosign signs, with the eleven GitLab CI
// annotations of the tutorial. Making them takes a while, so they are made
// once into bench/out/index-cache/v2-<N> (the server's data dir, which holds
// its CA, CT log and transparency log, and the signatures) and reused.
//
// A run copies that data dir, starts a server on it that runs no index
// workers (--index-workers -1) and pushes every signature (its payload
// blob and a signature manifest tagged sha256-<subject>.sig, 32 clients),
// so that the queue holds N jobs; then restarts the server with its
// default workers (two per CPU) and times until the queue is empty: the
// signatures indexed per second, each one's certificate chain, SCT, SET,
// signature, payload digest and identity checked under the project's
// default trust policy and its record written. Then `hallmark index
// rebuild` judges all N again and is timed the same way. Target for both:
// >= 1,000 signatures/s (expressed as < 1,000 µs per signature). Samples
// are checked to be verified. HALLMARK_BENCH_INDEX_PROFILE=FILE saves the
// server's CPU profile of 20 s of the first index (go tool pprof FILE).
func indexScenario(ctx context.Context, e *Env) ([]Row, error) {
	if err := e.needCLIs(false); err != nil {
		return nil, err
	}
	n := envInt("HALLMARK_BENCH_INDEX_SIGNATURES", 100_000)
	if e.Quick {
		n = min(n, 2000)
	}
	out, err := filepath.Abs(filepath.Dir(e.DataDir)) // the CLIs run in other directories
	if err != nil {
		return nil, err
	}
	// The cache's CA is the server's default (P-256 since index-cache
	// version 2; version 1 caches had a P-384 CA).
	cache := filepath.Join(out, "index-cache", fmt.Sprintf("v2-%d", n))
	if err := makeIndexCache(ctx, e, cache, n); err != nil {
		return nil, err
	}
	run, err := os.MkdirTemp(out, "index-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(run)
	data := filepath.Join(run, "data")
	if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(cache, "data"), data).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("copying the cached data dir: %v: %s", err, out)
	}

	// Push with no worker running: the queue fills.
	srv, err := startServerProcess(ctx, e.HallmarkBin, data, "--auth", "off", "--external-url", indexURL, "--index-workers", "-1", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	e.Logf("index: pushing %d signature manifests (no index workers), load average %s", n, loadAvg())
	pushTime, err := pushIndexSignatures(ctx, Target{Name: "hallmark-index", URL: srv.url}, filepath.Join(cache, "signatures.jsonl"), n)
	srv.stop()
	if err != nil {
		return nil, err
	}

	// Index them.
	loadStart := loadAvg()
	args := []string{"--auth", "off", "--external-url", indexURL, "--log-level", "warn"}
	profile := os.Getenv("HALLMARK_BENCH_INDEX_PROFILE") // a file: the server's CPU profile of 20 s of the first index
	if profile != "" {
		args = append(args, "--debug-addr", indexDebugAddr)
	}
	srv, err = startServerProcess(ctx, e.HallmarkBin, data, args...)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cpu0 := procCPUSeconds(srv.pid)
	e.Logf("index: %d jobs queued; indexing with the server's workers, load average %s", n, loadStart)
	profiled := make(chan error, 1)
	if profile != "" {
		go func() {
			profiled <- saveProfile(ctx, "http://"+indexDebugAddr+"/debug/pprof/profile?seconds=20", profile)
		}()
	} else {
		profiled <- nil
	}
	indexTime, err := waitQueueEmpty(ctx, srv.url, time.Now())
	if err != nil {
		return nil, err
	}
	if err := <-profiled; err != nil {
		return nil, fmt.Errorf("server CPU profile: %w", err)
	}
	indexCPU := procCPUSeconds(srv.pid) - cpu0
	loadIndexed := loadAvg()
	if err := checkIndexed(ctx, srv.url, cache, n, 0); err != nil {
		return nil, err
	}

	// Rebuild them.
	env, err := cliEnv(run)
	if err != nil {
		return nil, err
	}
	cpu0 = procCPUSeconds(srv.pid)
	start := time.Now()
	if _, _, err := runCLI(ctx, run, env, e.HallmarkBin, "index", "rebuild", "--data-dir", data); err != nil {
		return nil, err
	}
	rebuildTime, err := waitQueueEmpty(ctx, srv.url, start)
	if err != nil {
		return nil, err
	}
	rebuildCPU := procCPUSeconds(srv.pid) - cpu0
	loadRebuilt := loadAvg()
	if err := checkIndexed(ctx, srv.url, cache, n, 1); err != nil {
		return nil, err
	}
	limit, perCore := ecdsaVerifyLimit()

	rate := float64(n) / indexTime.Seconds()
	rrate := float64(n) / rebuildTime.Seconds()
	detail := func(what string, d time.Duration, cpu float64, load0, load1 string) string {
		return fmt.Sprintf("%s: %d signatures in %s = %.0f/s; server CPU %.1f s = %.2f ms per signature; load average %s at the start, %s at the end",
			what, n, d.Round(time.Millisecond), float64(n)/d.Seconds(), cpu, cpu*1000/float64(n), load0, load1)
	}
	return []Row{
		{Name: fmt.Sprintf("signature index: %d keyless signatures indexed with full verification (chain, SCT, SET, signature, policy)", n), Unit: "signatures/s",
			Hallmark: rate, HigherIsBetter: true, Details: []string{
				detail("index", indexTime, indexCPU, loadStart, loadIndexed),
				fmt.Sprintf("push of the %d signature manifests beforehand (no workers): %s = %.0f/s", n, pushTime.Round(time.Millisecond), float64(n)/pushTime.Seconds()),
				fmt.Sprintf("ECDSA P-256 verify limit of this machine: %.0f/s on all CPUs, %.0f/s on one", limit, perCore)}},
		{Name: "signature index: time per signature (>= 1,000 signatures/s)", Unit: "µs", Hallmark: 1e6 / rate, Goal: Goal{Kind: goalAbsBelow, Value: 1000}},
		{Name: fmt.Sprintf("signature index: rebuild of %d signatures (hallmark index rebuild)", n), Unit: "s", Hallmark: rebuildTime.Seconds(),
			Details: []string{detail("rebuild", rebuildTime, rebuildCPU, loadIndexed, loadRebuilt)}},
		{Name: "signature index: rebuild time per signature (>= 1,000 signatures/s)", Unit: "µs", Hallmark: 1e6 / rrate, Goal: Goal{Kind: goalAbsBelow, Value: 1000}},
	}, nil
}

// indexDebugAddr is where the index scenario's server serves its profiler
// (HALLMARK_BENCH_INDEX_PROFILE).
const indexDebugAddr = "127.0.0.1:16060"

// saveProfile fetches a profile from url into the file path.
func saveProfile(ctx context.Context, url, path string) error {
	b, err := getOK(ctx, url)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// indexSignature is one cached signature: its image, payload and layer
// annotations (signature, certificate, chain, log bundle).
type indexSignature struct {
	Subject     string            `json:"subject"`
	Payload     []byte            `json:"payload"`
	Annotations map[string]string `json:"annotations"`
}

const indexRepo = "bench/app"

// indexURL is the external URL of the index scenario's servers, fixed
// while their ports are not: it is the built-in issuer in the signatures'
// certificates, and the issuer of the project's default trust policy.
const indexURL = "http://hallmark-bench.invalid"

// makeIndexCache makes n keyless signatures through a server of its own
// in cache/data, unless cache/complete says they are there.
func makeIndexCache(ctx context.Context, e *Env, cache string, n int) error {
	if _, err := os.Stat(filepath.Join(cache, "complete")); err == nil {
		e.Logf("index: reusing the %d signatures in %s", n, cache)
		return nil
	}
	if err := os.RemoveAll(cache); err != nil {
		return err
	}
	data := filepath.Join(cache, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	srv, err := startServerProcess(ctx, e.HallmarkBin, data, "--auth", "off", "--external-url", indexURL, "--index-workers", "-1", "--log-level", "warn")
	if err != nil {
		return err
	}
	defer srv.stop()
	raw, err := os.ReadFile(filepath.Join(data, "trust", root.TrustedRootFile))
	if err != nil {
		return err
	}
	tr, err := root.Parse(raw)
	if err != nil {
		return err
	}
	trust, err := tr.Material()
	if err != nil {
		return err
	}
	env, err := cliEnv(cache)
	if err != nil {
		return err
	}
	var tokMu sync.Mutex
	var tok string
	var tokAt time.Time
	token := func() (string, error) {
		tokMu.Lock()
		defer tokMu.Unlock()
		if time.Since(tokAt) < 20*time.Minute {
			return tok, nil
		}
		_, out, err := runCLI(ctx, cache, env, e.HallmarkBin, "token", "issue", "--server", srv.url, "--data-dir", data,
			"--project", indexRepo, "--ref", "main", "--ttl", "1h")
		if err != nil {
			return "", err
		}
		tok, tokAt = strings.TrimSpace(string(out)), time.Now()
		return tok, nil
	}
	f, err := os.Create(filepath.Join(cache, "signatures.jsonl"))
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	var mu sync.Mutex
	var next, done atomic.Int64
	start := time.Now()
	e.Logf("index: making %d keyless signatures into %s (once; reused by later runs)", n, cache)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				s, err := makeIndexSignature(ctx, srv.url, client, trust, token, i)
				if err != nil {
					errc <- err
					return
				}
				line, _ := json.Marshal(s)
				mu.Lock()
				w.Write(append(line, '\n'))
				mu.Unlock()
				if d := done.Add(1); d%5000 == 0 {
					e.Logf("index: %d of %d signatures made (%.0f/s)", d, n, float64(d)/time.Since(start).Seconds())
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	e.Logf("index: %d signatures made in %s", n, time.Since(start).Round(time.Second))
	srv.stop()
	return os.WriteFile(filepath.Join(cache, "complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600)
}

// indexSubject is the image digest signature i is about.
func indexSubject(i int64) string {
	sum := sha256.Sum256([]byte(fmt.Sprint("bench image ", i)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// makeIndexSignature signs image i as a GitLab job of indexRepo does with
// cosign: an ephemeral key, its certificate (SCT checked) and a log entry
// (SET and inclusion proof checked).
func makeIndexSignature(ctx context.Context, base string, client *http.Client, trust *root.Material, token func() (string, error), i int64) (*indexSignature, error) {
	tok, err := token()
	if err != nil {
		return nil, err
	}
	signer, err := sign.NewKeylessSigner(ctx, sign.KeylessConfig{CA: &sign.Fulcio{URL: base, HTTPClient: client}, Token: tok, Trust: trust,
		Log: &sign.TransparencyLog{URL: base, Keys: trust.TlogKeys, HTTPClient: client}})
	if err != nil {
		return nil, err
	}
	subject := indexSubject(i)
	sha := fmt.Sprintf("%040x", rand.Uint64())
	pu := indexURL + "/" + indexRepo
	optional := map[string]string{
		"com.gitlab.ci.user.name": "bench", "com.gitlab.ci.pipeline.id": strconv.FormatInt(1000+i, 10),
		"com.gitlab.ci.pipeline.url": pu + "/-/pipelines/" + strconv.FormatInt(1000+i, 10), "com.gitlab.ci.job.id": strconv.FormatInt(5000+i, 10),
		"com.gitlab.ci.job.url": pu + "/-/jobs/" + strconv.FormatInt(5000+i, 10), "com.gitlab.ci.commit.sha": sha,
		"com.gitlab.ci.commit.ref.name": "main", "com.gitlab.ci.project.path": indexRepo, "org.opencontainers.image.source": pu,
		"org.opencontainers.image.revision": sha, "tag": "v" + strconv.FormatInt(i, 10),
	}
	opt, _ := json.Marshal(optional)
	p := []byte(`{"critical":{"identity":{"docker-reference":"` + strings.TrimPrefix(indexURL, "http://") + "/" + indexRepo +
		`"},"image":{"docker-manifest-digest":"` + subject + `"},"type":"cosign container image signature"},"optional":` + string(opt) + `}`)
	s, err := signer.Sign(ctx, p)
	if err != nil {
		return nil, err
	}
	return &indexSignature{Subject: subject, Payload: p, Annotations: map[string]string{
		sign.AnnotationSignature: base64.StdEncoding.EncodeToString(s.Signature), sign.AnnotationCertificate: string(s.Certificate),
		sign.AnnotationChain: string(s.Chain), sign.AnnotationBundle: string(s.Bundle)}}, nil
}

// pushIndexSignatures pushes the first n cached signatures, each as a
// signature manifest of its image, with 32 clients.
func pushIndexSignatures(ctx context.Context, t Target, path string, n int) (time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cfg, err := pushSmallBlob(ctx, t, indexRepo, []byte(`{}`))
	if err != nil {
		return 0, err
	}
	sigs := make(chan indexSignature, 256)
	errc := make(chan error, 32)
	start := time.Now()
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for s := range sigs {
				if err := pushIndexSignature(ctx, t, cfg, s); err != nil {
					errc <- err
					for range sigs {
					}
					return
				}
			}
		})
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	read := 0
	for read < n && sc.Scan() {
		var s indexSignature
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			close(sigs)
			wg.Wait()
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		sigs <- s
		read++
	}
	close(sigs)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	if read < n {
		return 0, fmt.Errorf("%s holds %d signatures, want %d (remove the directory to make them again)", path, read, n)
	}
	return time.Since(start), sc.Err()
}

func pushIndexSignature(ctx context.Context, t Target, cfg string, s indexSignature) error {
	d, err := pushSmallBlob(ctx, t, indexRepo, s.Payload)
	if err != nil {
		return err
	}
	m, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": oci.MediaTypeOCIManifest,
		"config": map[string]any{"mediaType": oci.MediaTypeOCIConfig, "digest": cfg, "size": 2},
		"layers": []map[string]any{{"mediaType": sign.SimpleSigningMediaType, "digest": d, "size": len(s.Payload), "annotations": s.Annotations}}})
	return pushManifest(ctx, t, indexRepo, strings.Replace(s.Subject, ":", "-", 1)+".sig", oci.MediaTypeOCIManifest, m)
}

// waitQueueEmpty polls the server's index queue until it is empty and
// returns the time since start.
func waitQueueEmpty(ctx context.Context, base string, start time.Time) (time.Duration, error) {
	wctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	if err := demo.WaitIndexed(wctx, nil, base); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// checkIndexed checks 50 random signatures of the first n: one record
// each, verified, decided in generation gen or later.
func checkIndexed(ctx context.Context, base, cache string, n int, gen int) error {
	for range 50 {
		i := rand.Int64N(int64(n))
		u := base + "/api/v1/images/" + indexRepo + "/signatures?digest=" + indexSubject(i)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var body struct {
			IndexState string `json:"indexState"`
			Signatures []struct {
				Status, StatusDetail string
			} `json:"signatures"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if body.IndexState != "indexed" || len(body.Signatures) != 1 || body.Signatures[0].Status != "verified" {
			return fmt.Errorf("index: signature %d of %s (generation %d) indexed as %+v", i, cache, gen, body)
		}
	}
	return nil
}
