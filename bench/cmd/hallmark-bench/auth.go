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
// auth off; -rounds rounds alternating between them, the median reported.
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
		targets := []Target{onT, offT}
		if i%2 == 1 {
			targets = []Target{offT, onT}
		}
		for _, t := range targets {
			hdr := ""
			if t == onT {
				// A fresh token each round: it lives 5 minutes.
				tok, err := registryToken(ctx, on.url, on.admin.Username, on.admin.Password, "repository:"+repo+":pull")
				if err != nil {
					return nil, err
				}
				hdr = "Authorization: Bearer " + tok + "\r\n"
			}
			r, err := loadGETWith(ctx, t, path, hdr, manifest, e.Conns, e.Warmup, e.Duration)
			if err != nil {
				return nil, err
			}
			res[t.Name] = append(res[t.Name], r)
			if e.Verbose {
				e.Logf("auth: %s round %d: %s", t.Name, i+1, r)
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
