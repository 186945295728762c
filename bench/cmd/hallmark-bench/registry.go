package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client is the one HTTP client used against both servers.
var client = &http.Client{
	Transport: &http.Transport{
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		DisableCompression:  true,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
		ForceAttemptHTTP2:   false,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (e *Env) dataset() (*dataset, error) {
	if e.data != nil {
		return e.data, nil
	}
	d, err := loadData(e, append(append([]int64{}, e.Sizes...), e.RSSSize))
	if err != nil {
		return nil, err
	}
	e.data = d
	return d, nil
}

func waitReady(ctx context.Context, t Target, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t.URL+"/v2/", nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s at %s did not answer within %s: %v", t.Name, t.URL, wait, last)
}

func do(ctx context.Context, method, u string, body io.Reader, length int64, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = length
	if body == nil {
		req.ContentLength = 0
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return client.Do(req)
}

// call sends a request and checks the status; the body is drained and
// closed.
func call(ctx context.Context, method, u string, body io.Reader, length int64, hdr map[string]string, status int, what string) (*http.Response, error) {
	resp, err := do(ctx, method, u, body, length, hdr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != status {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s (want %d): %s", what, resp.Status, status, strings.TrimSpace(string(b)))
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// location resolves a Location header against base and adds query values.
func location(base string, resp *http.Response, add url.Values) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: no Location header", resp.Request.Method, resp.Request.URL.Path)
	}
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	l, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	u := b.ResolveReference(l)
	q := u.Query()
	for k, vs := range add {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

type uploadMode string

const (
	modeMonolithic uploadMode = "monolithic" // POST, then PUT ?digest= with the whole body
	modeStreamed   uploadMode = "streamed"   // POST, PATCH with a chunked body of unknown length, PUT ?digest=
)

// pushBlob uploads body (size bytes, digest dg) to repo and returns the
// time from the POST to the 201 of the final PUT.
func pushBlob(ctx context.Context, t Target, repo string, body io.Reader, size int64, dg string, mode uploadMode) (time.Duration, error) {
	start := time.Now()
	resp, err := call(ctx, http.MethodPost, t.URL+"/v2/"+repo+"/blobs/uploads/", nil, 0, nil, http.StatusAccepted, t.Name+" POST upload")
	if err != nil {
		return 0, err
	}
	octet := map[string]string{"Content-Type": "application/octet-stream"}
	switch mode {
	case modeMonolithic:
		u, err := location(t.URL, resp, url.Values{"digest": {dg}})
		if err != nil {
			return 0, err
		}
		if _, err := call(ctx, http.MethodPut, u, body, size, octet, http.StatusCreated, t.Name+" PUT"); err != nil {
			return 0, err
		}
	case modeStreamed:
		u, err := location(t.URL, resp, nil)
		if err != nil {
			return 0, err
		}
		// Hide the length so the body goes out chunked, as docker does.
		resp, err = call(ctx, http.MethodPatch, u, io.MultiReader(body), -1, octet, http.StatusAccepted, t.Name+" PATCH")
		if err != nil {
			return 0, err
		}
		if u, err = location(t.URL, resp, url.Values{"digest": {dg}}); err != nil {
			return 0, err
		}
		if _, err := call(ctx, http.MethodPut, u, nil, 0, nil, http.StatusCreated, t.Name+" PUT"); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("unknown upload mode %q", mode)
	}
	return time.Since(start), nil
}

// pullBlob GETs a blob, reading it with a 1 MiB buffer; it checks the
// length, and the digest when verify is set.
func pullBlob(ctx context.Context, t Target, repo, dg string, size int64, verify bool) (time.Duration, error) {
	start := time.Now()
	resp, err := do(ctx, http.MethodGet, t.URL+"/v2/"+repo+"/blobs/"+dg, nil, 0, nil)
	if err != nil {
		return 0, fmt.Errorf("%s GET blob: %w", t.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s GET blob: %s", t.Name, resp.Status)
	}
	buf := bufPool.Get().(*[]byte)
	defer bufPool.Put(buf)
	var n int64
	h := sha256.New()
	for {
		k, err := resp.Body.Read(*buf)
		n += int64(k)
		if verify {
			h.Write((*buf)[:k])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s GET blob: %w", t.Name, err)
		}
	}
	d := time.Since(start)
	if n != size {
		return 0, fmt.Errorf("%s GET blob: got %d bytes, want %d", t.Name, n, size)
	}
	if verify {
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != dg {
			return 0, fmt.Errorf("%s GET blob: content has digest %s, want %s", t.Name, got, dg)
		}
	}
	return d, nil
}

// pushSmallBlob uploads an in-memory blob monolithically.
func pushSmallBlob(ctx context.Context, t Target, repo string, b []byte) (string, error) {
	sum := sha256.Sum256(b)
	dg := "sha256:" + hex.EncodeToString(sum[:])
	_, err := pushBlob(ctx, t, repo, bytes.NewReader(b), int64(len(b)), dg, modeMonolithic)
	return dg, err
}

func pushManifest(ctx context.Context, t Target, repo, ref, mediaType string, body []byte) error {
	_, err := call(ctx, http.MethodPut, t.URL+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body), int64(len(body)),
		map[string]string{"Content-Type": mediaType}, http.StatusCreated, t.Name+" PUT manifest")
	return err
}
