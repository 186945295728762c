package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// authScenario measures what access control costs a registry read: the
// manifest GET of the manifest scenario (by tag, -conns keep-alive
// connections, its load generator, loadGET) against two `hallmark server`
// processes of the same build that the scenario starts side by side, one
// with auth on, where every request carries the bearer token the token
// endpoint issued to the admin for pull on the repository, and one with
// auth off. Both are loaded at the same time, each with its own -conns
// connections, for -rounds rounds (the median reported): they share the
// machine, so each gets about half of it, but whatever else runs on the
// machine slows both alike, and the ratio is what auth costs per request.
// Target: auth on >= 0.8x auth off. The peer column is Hallmark with auth
// off.
func authScenario(ctx context.Context, e *Env) ([]Row, error) {
	if err := e.needCLIs(false); err != nil {
		return nil, err
	}
	const repo, tag = "bench/auth", "v1"
	dir, err := os.MkdirTemp("", "hallmark-bench-auth-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	on, err := startAuthServer(ctx, e.HallmarkBin, filepath.Join(dir, "on"))
	if err != nil {
		return nil, err
	}
	defer on.stop()
	offProc, err := startServerProcess(ctx, e.HallmarkBin, filepath.Join(dir, "off", "hallmark-data"), "--auth", "off", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	defer offProc.stop()
	onT := Target{Name: "hallmark auth on", URL: on.url, PID: on.pid}
	offT := Target{Name: "hallmark auth off", URL: offProc.url, PID: offProc.pid}

	img, err := random.Image(4096, 1)
	if err != nil {
		return nil, err
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, err
	}
	admin := authn.FromConfig(authn.AuthConfig{Username: on.admin.Username, Password: on.admin.Password})
	for _, p := range []struct {
		t    Target
		auth authn.Authenticator
	}{{onT, admin}, {offT, authn.Anonymous}} {
		ref, err := name.NewTag(host(p.t)+"/"+repo+":"+tag, name.Insecure)
		if err != nil {
			return nil, err
		}
		if err := remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(p.auth)); err != nil {
			return nil, fmt.Errorf("%s: push: %w", p.t.Name, err)
		}
	}

	path := "/v2/" + repo + "/manifests/" + tag
	res := map[string][]loadResult{}
	for i := range e.Rounds {
		// A fresh token each round: it lives 5 minutes.
		tok, err := registryToken(ctx, on.url, on.admin.Username, on.admin.Password, "repository:"+repo+":pull")
		if err != nil {
			return nil, err
		}
		targets := []struct {
			t   Target
			hdr string
		}{{onT, "Authorization: Bearer " + tok + "\r\n"}, {offT, ""}}
		results := make([]loadResult, len(targets))
		errs := make([]error, len(targets))
		var wg sync.WaitGroup
		for j, x := range targets {
			wg.Go(func() {
				results[j], errs[j] = loadGETWith(ctx, x.t, path, x.hdr, manifest, e.Conns, e.Warmup, e.Duration)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for j, x := range targets {
			res[x.t.Name] = append(res[x.t.Name], results[j])
			if e.Verbose {
				e.Logf("auth: %s round %d: %s", x.t.Name, i+1, results[j])
			}
		}
	}
	row := Row{
		Name: fmt.Sprintf("manifest GET by tag, auth on (bearer) vs auth off, %d conns", e.Conns), Unit: "req/s", HigherIsBetter: true,
		Hallmark: median(rates(res[onT.Name])), Peer: median(rates(res[offT.Name])),
		Goal: Goal{Kind: goalRatioMin, Value: 0.8},
	}
	for _, t := range []Target{onT, offT} {
		for _, r := range res[t.Name] {
			row.Details = append(row.Details, fmt.Sprintf("%s: %s", t.Name, r))
		}
	}
	return []Row{row}, nil
}

// registryToken gets an access token for scope from the token endpoint of
// the server at base with Basic credentials.
func registryToken(ctx context.Context, base, user, password, scope string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := url.Values{"service": {u.Host}, "scope": {scope}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/auth/token?"+q.Encode(), nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(user, password)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint of %s: %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		return "", errors.Join(errors.New("token endpoint: no token in the reply"), err)
	}
	return out.Token, nil
}
