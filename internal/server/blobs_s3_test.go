package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// s3Keys lists the keys under prefix in the test bucket.
func s3Keys(t *testing.T, s3 *testenv.S3, prefix string) []string {
	t.Helper()
	out, err := s3.Client().ListObjectsV2(context.Background(), &s3api.ListObjectsV2Input{Bucket: &s3.Bucket, Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	return keys
}

func status(t *testing.T, u string) int {
	t.Helper()
	res, _, err := do(t, http.MethodGet, u, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode
}

// TestS3Outage runs the hallmark binary on S3 (versitygw) and takes the S3
// server away: at start (the server starts, not ready), and in the middle
// of a chunked upload. Requests that need the storage get a clear 503
// (UNAVAILABLE, Retry-After) and the log says why; once S3 is back
// everything works again, the interrupted upload included. The
// credentials never reach the log.
func TestS3Outage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	s3 := testenv.StartS3(t)
	s3.Stop()
	env := append(os.Environ(), s3.Env()...)
	p := testenv.StartServerProcess(t, testenv.HallmarkBinary(t), t.TempDir(), env,
		"--log-level", "debug", "--auth", "off", "--blob-url", s3.BlobURL("outage"))
	if c := status(t, p.URL+"/readyz"); c != http.StatusServiceUnavailable {
		t.Fatalf("readyz with S3 down at start: %d", c)
	}
	s3.Start()
	if c := status(t, p.URL+"/readyz"); c != http.StatusOK {
		t.Fatalf("readyz with S3 up: %d", c)
	}

	small := []byte("a blob stored before the outage")
	sd := digest.FromBytes(small)
	if res, _, err := do(t, http.MethodPost, p.URL+"/v2/app/blobs/uploads/?digest="+sd.String(), bytes.NewReader(small), int64(len(small))); err != nil || res.StatusCode != 201 {
		t.Fatalf("monolithic upload: %v %v", res, err)
	}
	data := make([]byte, 7<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	d := digest.FromBytes(data)
	res, _, err := do(t, http.MethodPost, p.URL+"/v2/app/blobs/uploads/", nil, 0)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("POST: %v %v", res, err)
	}
	loc := p.URL + res.Header.Get("Location")
	patch := func(from, to int) (*http.Response, []byte) {
		res, body, err := do(t, http.MethodPatch, loc, bytes.NewReader(data[from:to]), int64(to-from), "Content-Range", fmt.Sprintf("%d-%d", from, to-1))
		if err != nil {
			t.Fatal(err)
		}
		return res, body
	}
	if res, _ := patch(0, 1<<20); res.StatusCode != 202 {
		t.Fatalf("first PATCH: %d", res.StatusCode)
	}

	s3.Stop()
	if c := status(t, p.URL+"/readyz"); c != http.StatusServiceUnavailable {
		t.Errorf("readyz with S3 down: %d", c)
	}
	check503 := func(what string, res *http.Response, body []byte) {
		t.Helper()
		var e struct {
			Errors []struct{ Code, Message string }
		}
		json.Unmarshal(body, &e)
		if res.StatusCode != 503 || len(e.Errors) != 1 || e.Errors[0].Code != "UNAVAILABLE" || !strings.Contains(e.Errors[0].Message, "retry later") || res.Header.Get("Retry-After") == "" {
			t.Errorf("%s with S3 down: %d %s (Retry-After %q)", what, res.StatusCode, body, res.Header.Get("Retry-After"))
		}
	}
	res, body, err := do(t, http.MethodGet, p.URL+"/v2/app/blobs/"+sd.String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	check503("blob GET", res, body)
	res, body = patch(1<<20, 2<<20)
	check503("PATCH", res, body)
	res, body, _ = do(t, http.MethodPost, p.URL+"/v2/app/blobs/uploads/", nil, 0)
	check503("POST", res, body)
	res, body, _ = do(t, http.MethodPut, loc+"?digest="+d.String(), nil, 0)
	check503("PUT", res, body)
	// The manifest API does not need the blob store.
	if c := status(t, p.URL+"/v2/app/tags/list"); c != 200 {
		t.Errorf("tags list with S3 down: %d", c)
	}

	s3.Start()
	if c := status(t, p.URL+"/readyz"); c != http.StatusOK {
		t.Fatalf("readyz after S3 is back: %d", c)
	}
	if res, body, err := do(t, http.MethodGet, p.URL+"/v2/app/blobs/"+sd.String(), nil, 0); err != nil || res.StatusCode != 200 || !bytes.Equal(body, small) {
		t.Fatalf("blob GET after S3 is back: %v %v", res, err)
	}
	if res, _ := patch(1<<20, len(data)); res.StatusCode != 202 {
		t.Fatalf("PATCH after S3 is back: %d", res.StatusCode)
	}
	if res, _, err := do(t, http.MethodPut, loc+"?digest="+d.String(), nil, 0); err != nil || res.StatusCode != 201 {
		t.Fatalf("PUT after S3 is back: %v %v", res, err)
	}
	if res, body, err := do(t, http.MethodGet, p.URL+"/v2/app/blobs/"+d.String(), nil, 0); err != nil || res.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("interrupted upload's blob: %v %v", res, err)
	}
	logs := p.Logs.String()
	for _, want := range []string{"blob store does not answer yet", "storage unavailable", "readiness: blob store"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs, s3.SecretKey) {
		t.Error("the log contains the S3 secret key")
	}
}

// TestS3StartErrors: a blob URL that cannot work stops the start with a
// message that says what to fix, and never echoes a secret.
func TestS3StartErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	s3 := testenv.StartS3(t)
	bin := testenv.HallmarkBinary(t)
	for _, tc := range []struct {
		name, url string
		env       []string
		want      string
	}{
		{"missing bucket", strings.Replace(s3.BlobURL("x"), "s3://"+s3.Bucket, "s3://no-such-bucket", 1), s3.Env(), "no-such-bucket"},
		{"wrong secret", s3.BlobURL("x"), append(s3.Env(), "AWS_SECRET_ACCESS_KEY=wrong-secret-value"), "credentials"},
		{"secret in url", "s3://AKIDEXAMPLE:topsecretvalue@" + s3.Bucket + "/x", s3.Env(), "AWS_ACCESS_KEY_ID"},
		{"unknown parameter", s3.BlobURL("x") + "&acl=public", s3.Env(), "unknown parameter"},
		{"not s3", "gs://bucket/x", s3.Env(), "blob-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, "server", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--auth", "off", "--blob-url", tc.url)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("server started (or hung): %v\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("error does not mention %q:\n%s", tc.want, out)
			}
			for _, secret := range []string{"topsecretvalue", "wrong-secret-value", s3.SecretKey} {
				if strings.Contains(string(out), secret) {
					t.Errorf("output contains a secret:\n%s", out)
				}
			}
		})
	}
}

// TestS3PatchFloodBounded: a client sends one upload as a flood of 1 KiB
// PATCHes. What the server sends to S3 per PATCH stays bounded (small
// chunks are merged like a binary counter, not rewritten as one growing
// tail), the session keeps a logarithmic number of objects, and the blob
// is right.
func TestS3PatchFloodBounded(t *testing.T) {
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	endpoint, traffic := s3.CountingProxy(t)
	srv := testenv.StartServer(t, func(c *config.Server) {
		c.BlobURL = fmt.Sprintf("s3://%s/flood?endpoint=%s&region=%s&path-style=true", s3.Bucket, endpoint, s3.Region)
	})
	res, _, err := do(t, http.MethodPost, srv.URL+"/v2/app/blobs/uploads/", nil, 0)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("POST: %v %v", res, err)
	}
	loc := srv.URL + res.Header.Get("Location")
	id := res.Header.Get("Docker-Upload-UUID")
	const n, chunk = 256, 1024
	data := make([]byte, n*chunk)
	for i := range data {
		data[i] = byte(i*31 + i/chunk)
	}
	reqs0, bytes0 := traffic.Requests.Load(), traffic.Sent.Load()
	maxSegments := 0
	for i := range n {
		from, to := i*chunk, (i+1)*chunk
		res, _, err := do(t, http.MethodPatch, loc, bytes.NewReader(data[from:to]), chunk, "Content-Range", strconv.Itoa(from)+"-"+strconv.Itoa(to-1))
		if err != nil || res.StatusCode != 202 {
			t.Fatalf("PATCH %d: %v %v", i, res, err)
		}
		maxSegments = max(maxSegments, len(s3Keys(t, s3, "flood/uploads/"+id+"/"))-1)
	}
	reqs, up := traffic.Requests.Load()-reqs0, traffic.Sent.Load()-bytes0
	t.Logf("%d PATCHes of %d bytes: %d S3 requests, %d bytes uploaded to S3, at most %d segments", n, chunk, reqs, up, maxSegments)
	// Rewriting the whole tail on every PATCH would upload n*n/2 KiB
	// (32 MiB) here.
	if up > 4<<20 {
		t.Errorf("%d bytes uploaded to S3 for %d bytes of chunks", up, len(data))
	}
	if reqs > 12*n {
		t.Errorf("%d S3 requests for %d PATCHes", reqs, n)
	}
	if maxSegments > 10 {
		t.Errorf("the session had %d segment objects", maxSegments)
	}
	d := digest.FromBytes(data)
	if res, _, err := do(t, http.MethodPut, loc+"?digest="+d.String(), nil, 0); err != nil || res.StatusCode != 201 {
		t.Fatalf("PUT: %v %v", res, err)
	}
	if res, body, err := do(t, http.MethodGet, srv.URL+"/v2/app/blobs/"+d.String(), nil, 0); err != nil || res.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET: %v %v", res, err)
	}
	if keys := s3Keys(t, s3, "flood/uploads/"); len(keys) != 0 {
		t.Errorf("upload objects left after commit: %v", keys)
	}
}

// TestS3BrokenPatchLeavesNothing: a client that breaks off a PATCH in the
// middle of its body (after S3 parts were sent) and then abandons the
// upload: no blob becomes visible, the broken chunk is dropped (the
// upload's offset stays where it was), no multipart upload stays open.
func TestS3BrokenPatchLeavesNothing(t *testing.T) {
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	srv := testenv.StartServer(t, func(c *config.Server) { c.BlobURL = s3.BlobURL("broken") })
	res, _, err := do(t, http.MethodPost, srv.URL+"/v2/app/blobs/uploads/", nil, 0)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("POST: %v %v", res, err)
	}
	path := res.Header.Get("Location")
	first := bytes.Repeat([]byte("a"), 1<<20)
	if res, _, err := do(t, http.MethodPatch, srv.URL+path, bytes.NewReader(first), int64(len(first)), "Content-Range", "0-1048575"); err != nil || res.StatusCode != 202 {
		t.Fatalf("PATCH: %v %v", res, err)
	}
	// 40 MiB announced, 20 MiB sent, then the connection closes.
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Range: 1048576-%d\r\nContent-Length: %d\r\n\r\n", path, srv.Addr, 1<<20+40<<20-1, 40<<20)
	chunk := bytes.Repeat([]byte("b"), 1<<20)
	for range 20 {
		if _, err := conn.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	// The status request waits for the broken PATCH (one session, one lock).
	res, _, err = do(t, http.MethodGet, srv.URL+path, nil, 0)
	if err != nil || res.StatusCode != 204 || res.Header.Get("Range") != "0-1048575" {
		t.Fatalf("upload status after the broken PATCH: %v %v (Range %q)", res, err, res.Header.Get("Range"))
	}
	if keys := s3Keys(t, s3, "broken/blobs/"); len(keys) != 0 {
		t.Errorf("blobs visible: %v", keys)
	}
	mpus, err := s3.Client().ListMultipartUploads(context.Background(), &s3api.ListMultipartUploadsInput{Bucket: &s3.Bucket})
	if err != nil {
		t.Fatal(err)
	}
	if len(mpus.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(mpus.Uploads))
	}
	for _, d := range []digest.Digest{digest.FromBytes(first), digest.FromBytes(append(first, bytes.Repeat([]byte("b"), 20<<20)...))} {
		if c := status(t, srv.URL+"/v2/app/blobs/"+d.String()); c != 404 {
			t.Errorf("GET %s: %d", d, c)
		}
	}
}

// TestS3BlobGets: a blob on S3 pulled whole (copied in large writes),
// by range, and conditionally, as the filesystem serves it.
func TestS3BlobGets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server binary")
	}
	s3 := testenv.StartS3(t)
	p := testenv.StartServerProcess(t, testenv.HallmarkBinary(t), t.TempDir(), append(os.Environ(), s3.Env()...),
		"--auth", "off", "--blob-url", s3.BlobURL("gets"))
	data := make([]byte, 3<<20+12345) // more than one copy buffer, not a multiple of it
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	d := digest.FromBytes(data)
	if res, _, err := do(t, http.MethodPost, p.URL+"/v2/app/blobs/uploads/?digest="+d.String(), bytes.NewReader(data), int64(len(data))); err != nil || res.StatusCode != 201 {
		t.Fatalf("upload: %v %v", res, err)
	}
	u := p.URL + "/v2/app/blobs/" + d.String()
	res, body, err := do(t, http.MethodGet, u, nil, 0)
	if err != nil || res.StatusCode != 200 || !bytes.Equal(body, data) || res.Header.Get("Content-Length") != strconv.Itoa(len(data)) ||
		res.Header.Get("Docker-Content-Digest") != d.String() || res.Header.Get("ETag") != `"`+d.String()+`"` {
		t.Fatalf("GET: %v %v (%d bytes, equal %v)", res, err, len(body), bytes.Equal(body, data))
	}
	res, body, err = do(t, http.MethodGet, u, nil, 0, "Range", "bytes=1000000-1000099")
	if err != nil || res.StatusCode != 206 || !bytes.Equal(body, data[1000000:1000100]) {
		t.Fatalf("Range GET: %v %v", res, err)
	}
	res, body, err = do(t, http.MethodGet, u, nil, 0, "If-None-Match", `"`+d.String()+`"`)
	if err != nil || res.StatusCode != 304 || len(body) != 0 {
		t.Fatalf("conditional GET: %v %v", res, err)
	}
	res, body, err = do(t, http.MethodHead, u, nil, 0)
	if err != nil || res.StatusCode != 200 || len(body) != 0 || res.Header.Get("Content-Length") != strconv.Itoa(len(data)) {
		t.Fatalf("HEAD: %v %v", res, err)
	}
}
