package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/demo"
)

var consoleLoginCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleClient signs in to the console with the Basic credentials authz
// (a user and a personal access token, as the sign-in form takes them) and
// returns a client holding the session cookie; "" is an anonymous visitor.
func (b *searchBench) consoleClient(ctx context.Context, authz string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Timeout: time.Minute, Jar: jar, Transport: b.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if authz == "" {
		return c, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(authz, "Basic "))
	if err != nil {
		return nil, err
	}
	user, secret, _ := strings.Cut(string(raw), ":")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+"/ui/login", nil)
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := consoleLoginCSRF.FindSubmatch(page)
	if m == nil {
		return nil, errors.New("console: no sign-in form")
	}
	form := url.Values{"user": {user}, "password": {secret}, "csrf": {string(m[1])}}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, b.base+"/ui/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	if resp, err = c.Do(req); err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("console sign-in as %s: %s", user, resp.Status)
	}
	return c, nil
}

// consoleClients signs each caller in to the console.
func (b *searchBench) consoleClients(ctx context.Context, callers []string) (map[string]*http.Client, error) {
	clients := map[string]*http.Client{}
	for _, c := range callers {
		cl, err := b.consoleClient(ctx, b.creds[c])
		if err != nil {
			return nil, err
		}
		clients[c] = cl
	}
	return clients, nil
}

// consoleGet fetches the console page path with cl (the session of the
// caller who) and checks that it answers 200 with want in the page; it
// returns how long it took and the page's size.
func (b *searchBench) consoleGet(ctx context.Context, cl *http.Client, who, path, want string) (time.Duration, int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.base+path, nil)
	start := time.Now()
	resp, err := cl.Do(req)
	if err != nil {
		return 0, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return 0, 0, fmt.Errorf("console GET %s as %s: %s: %s", path, who, resp.Status, tail(string(body), 300))
	}
	return d, len(body), nil
}

// consoleImage measures the console's image page (/ui/image/<repo>@<digest>:
// the image's signatures with their status, signer, provenance and the CA's
// claims) of random images, each as a caller who may see it: p99 (target
// < 50 ms) and the largest page (target < 100 KB).
func (b *searchBench) consoleImage(ctx context.Context, clients map[string]*http.Client, caller func(k, i int) string, reps int) ([]Row, error) {
	var all []time.Duration
	maxBytes := 0
	for i := range reps + 10 {
		k := b.imageSample[b.rnd.IntN(len(b.imageSample))]
		c := caller(k, i)
		path := "/ui/image/" + b.spec.repo(k) + "@" + b.spec.subject(k).String()
		d, size, err := b.consoleGet(ctx, clients[c], c, path, b.spec.subject(k).String())
		if err != nil {
			return nil, err
		}
		if i < 10 {
			continue // warm-up
		}
		all = append(all, d)
		maxBytes = max(maxBytes, size)
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return []Row{
		{Name: fmt.Sprintf("console image page p99, %d pages (/ui/image, %d signatures each)", len(all), b.spec.perImage()), Unit: "ms",
			Hallmark: ms(demo.Percentile(all, 99)), Goal: Goal{Kind: goalAbsBelow, Value: 50},
			Details: []string{fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms; load average %s", ms(demo.Percentile(all, 50)),
				ms(demo.Percentile(all, 99)), ms(demo.Percentile(all, 100)), loadAvg())}},
		{Name: "largest console image page", Unit: "KB", Hallmark: float64(maxBytes) / 1000, Goal: Goal{Kind: goalAbsBelow, Value: 100}},
	}, nil
}

// consoleSearch measures the console's search page (/ui/search: the same
// search rendered as HTML, with the signed-in visitor's access) for every
// kind of query and caller: p99 (target < 20 ms, as the API's search) and
// the largest page (target < 100 KB) at the default page size.
func (b *searchBench) consoleSearch(ctx context.Context, clients map[string]*http.Client, callers []string, queries []searchQuery, reps int) ([]Row, error) {
	var all []time.Duration
	maxBytes, maxName := 0, ""
	for i := range reps + 1 {
		for _, q := range queries {
			for _, c := range callers {
				path := "/ui/search?" + q.q().Encode()
				if len(q.q()) == 0 {
					path = "/ui/search?limit=20"
				}
				d, size, err := b.consoleGet(ctx, clients[c], c, path, `id="results"`)
				if err != nil {
					return nil, err
				}
				if i == 0 {
					continue // warm-up
				}
				all = append(all, d)
				if size > maxBytes {
					maxBytes, maxName = size, q.name+" as "+c
				}
			}
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return []Row{
		{Name: fmt.Sprintf("console search page p99, all %d pages (/ui/search, signed-in session or anonymous)", len(all)), Unit: "ms",
			Hallmark: ms(demo.Percentile(all, 99)), Goal: Goal{Kind: goalAbsBelow, Value: 20},
			Details: []string{fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, max %.1f ms; load average %s", ms(demo.Percentile(all, 50)),
				ms(demo.Percentile(all, 99)), ms(demo.Percentile(all, 100)), loadAvg())}},
		{Name: "largest console search page (20 results)", Unit: "KB", Hallmark: float64(maxBytes) / 1000,
			Goal: Goal{Kind: goalAbsBelow, Value: 100}, Details: []string{"largest: " + maxName}},
	}, nil
}
