package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// keylessScenario compares keyless signing end to end: the hallmark CLI
// against the real cosign v2.6.5 CLI, both talking to the same Hallmark
// server as registry, certificate authority (Fulcio v1 API) and
// transparency log (Rekor v1 API), with the same ID token of the server's
// built-in issuer and the same trusted root file:
//
//	hallmark|cosign sign -y --identity-token T --fulcio-url U --rekor-url U --trusted-root TR -a run=N IMAGE
//	hallmark|cosign verify --trusted-root TR --certificate-identity ID --certificate-oidc-issuer U IMAGE
//
// Each sign is a fresh ephemeral key, certificate (SCT checked), log entry
// (hallmark also checks its SET and inclusion proof) and push. Runs
// alternate between the tools; the median wall time is reported; target
// hallmark <= 0.5x cosign. The scenario starts its own Hallmark server
// (auth off, temp data dir) so that it can mint tokens with the data dir's
// admin token; the peer column is cosign.
func keylessScenario(ctx context.Context, e *Env) ([]Row, error) {
	if err := e.needCLIs(true); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hallmark-bench-keyless-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	k := &keylessBench{e: e, dir: dir}
	stop, err := k.startServer(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := k.setup(ctx); err != nil {
		return nil, err
	}
	reps := e.SignReps
	if e.Quick {
		reps = min(reps, 3)
	}
	return k.rows(ctx, reps)
}

type keylessBench struct {
	e        *Env
	dir      string
	env      []string
	url      string // the bench's own Hallmark server
	target   Target
	token    string
	trust    string // trusted_root.json
	identity string
}

// startServer runs `hallmark server` (auth off) on a free loopback port
// with its own data dir until stop is called.
func (k *keylessBench) startServer(ctx context.Context) (stop func(), err error) {
	p, err := startServerProcess(ctx, k.e.HallmarkBin, filepath.Join(k.dir, "hallmark-data"), "--auth", "off", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	k.url = p.url
	k.target = Target{Name: "hallmark-keyless", URL: k.url, PID: p.pid}
	return p.stop, nil
}

// setup exports the trust, mints one ID token for the whole run and warms
// both binaries.
func (k *keylessBench) setup(ctx context.Context) error {
	// No SIGSTORE_* variable; a dead proxy keeps cosign off the public TUF
	// repository (loopback is never proxied).
	env, err := cliEnv(k.dir, "HTTPS_PROXY=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9")
	if err != nil {
		return err
	}
	k.env = env
	data := filepath.Join(k.dir, "hallmark-data")
	if _, _, err := k.run(ctx, k.e.HallmarkBin, "trust", "export", "--data-dir", data, "--out-dir", filepath.Join(k.dir, "trust")); err != nil {
		return err
	}
	k.trust = filepath.Join(k.dir, "trust", "trusted_root.json")
	_, out, err := k.run(ctx, k.e.HallmarkBin, "token", "issue", "--server", k.url, "--data-dir", data, "--project", "bench/app",
		"--ref", "main", "--ttl", "1h")
	if err != nil {
		return err
	}
	k.token = strings.TrimSpace(out)
	k.identity = k.url + "/bench/app//.gitlab-ci.yml@refs/heads/main"
	return nil
}

// run runs a tool and returns its wall time and stdout.
func (k *keylessBench) run(ctx context.Context, bin string, args ...string) (time.Duration, string, error) {
	d, out, err := runCLI(ctx, k.dir, k.env, bin, args...)
	return d, string(out), err
}

func (k *keylessBench) signArgs(run int, img string) []string {
	return []string{"sign", "-y", "--new-bundle-format=false", "--identity-token", k.token, "--fulcio-url", k.url, "--rekor-url", k.url,
		"--trusted-root", k.trust, "-a", fmt.Sprintf("run=%d", run), img}
}

func (k *keylessBench) verifyArgs(img string) []string {
	return []string{"verify", "--trusted-root", k.trust, "--certificate-identity", k.identity, "--certificate-oidc-issuer", k.url, img}
}

func (k *keylessBench) rows(ctx context.Context, reps int) ([]Row, error) {
	imgs, err := pushImages(ctx, k.target, "bench/app", 2*reps+2)
	if err != nil {
		return nil, err
	}
	tools := map[string]string{"hallmark": k.e.HallmarkBin, "cosign": k.e.CosignBin}
	signT := map[string][]float64{}
	// One untimed round first: both binaries and the server warm up.
	for i := -1; i < reps; i++ {
		order := []string{"hallmark", "cosign"}
		if i%2 != 0 {
			order = []string{"cosign", "hallmark"}
		}
		for j, tool := range order {
			img := imgs[2*(i+1)+j]
			d, _, err := k.run(ctx, tools[tool], k.signArgs(i, img)...)
			if err != nil {
				return nil, err
			}
			if i >= 0 {
				signT[tool] = append(signT[tool], d.Seconds()*1000)
			}
		}
	}
	// Verify one image signed by hallmark and one signed by cosign, each
	// with both tools (the same bytes for both), alternating.
	verifyT := map[string][]float64{}
	for i := -1; i < reps; i++ {
		order := []string{"hallmark", "cosign"}
		if i%2 != 0 {
			order = []string{"cosign", "hallmark"}
		}
		for _, tool := range order {
			img := imgs[(i+1)%2] // the two images signed in the warm-up round, one by each tool
			d, out, err := k.run(ctx, tools[tool], k.verifyArgs(img)...)
			if err != nil {
				return nil, err
			}
			if !strings.Contains(out, `"Subject":"`+k.identity+`"`) {
				return nil, fmt.Errorf("%s verify printed no keyless result: %s", tool, tail(out, 500))
			}
			if i >= 0 {
				verifyT[tool] = append(verifyT[tool], d.Seconds()*1000)
			}
		}
	}
	on := "same Hallmark server as registry, CA and log; peer column = cosign v2.6.5"
	return []Row{
		{Name: "keyless `sign` wall time (ephemeral key, certificate + SCT check, log entry, push), " + on, Unit: "ms",
			Hallmark: median(signT["hallmark"]), Peer: median(signT["cosign"]), Goal: Goal{Kind: goalRatioMax, Value: 0.5},
			Details: []string{"keyless sign: hallmark " + fmtRuns(signT["hallmark"]) + " ms", "keyless sign: cosign " + fmtRuns(signT["cosign"]) + " ms"}},
		{Name: "keyless `verify` wall time (--trusted-root, identity + issuer, offline bundle), " + on, Unit: "ms",
			Hallmark: median(verifyT["hallmark"]), Peer: median(verifyT["cosign"]), Goal: Goal{Kind: goalRatioMax, Value: 0.5},
			Details: []string{"keyless verify: hallmark " + fmtRuns(verifyT["hallmark"]) + " ms", "keyless verify: cosign " + fmtRuns(verifyT["cosign"]) + " ms"}},
	}, nil
}
