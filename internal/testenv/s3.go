package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a real S3 server (versitygw with its POSIX backend) on a loopback
// port, holding one bucket, for the S3 blob store's tests and benchmarks.
type S3 struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	// Dir is the POSIX backend directory: object <key> of the bucket is
	// the file Dir/<Bucket>/<key>.
	Dir string

	tb   testing.TB
	bin  string
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	logs *SyncBuffer
}

// StartS3 starts versitygw (the peer "versitygw", see scripts/install-peers)
// on a random loopback port over a temporary directory and creates the
// bucket "hallmark". It is stopped when the test ends. Without versitygw
// the test is skipped, or fails under HALLMARK_REQUIRE_PEERS=1.
func StartS3(tb testing.TB) *S3 {
	tb.Helper()
	bin := Peer(tb, "versitygw")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &S3{Endpoint: "http://" + addr, Bucket: "hallmark", Region: "us-east-1",
		AccessKey: "hallmark-test", SecretKey: "hallmark-test-secret", Dir: tb.TempDir(),
		tb: tb, bin: bin, addr: addr, logs: &SyncBuffer{}}
	tb.Cleanup(func() {
		s.Stop()
		if tb.Failed() {
			tb.Logf("versitygw log:\n%s", s.logs)
		}
	})
	s.Start()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3api.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		tb.Fatalf("testenv: create bucket: %v", err)
	}
	return s
}

// BlobURL is the --blob-url for the bucket, keys under prefix.
func (s *S3) BlobURL(prefix string) string {
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=%s&path-style=true", s.Bucket, prefix, s.Endpoint, s.Region)
}

// Env is the environment entries that give an AWS SDK client the
// server's credentials (for a child process, or t.Setenv).
func (s *S3) Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=" + s.Region,
		// No shared config or credentials file of whoever runs the tests.
		"AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull, "AWS_EC2_METADATA_DISABLED=true"}
}

// Client is an S3 client for the server (to look at or tamper with what a
// store wrote).
func (s *S3) Client() *s3api.Client {
	return s3api.New(s3api.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// DistributionStorage is the storage section of a distribution registry
// configuration (YAML) that keeps its data in this bucket under prefix
// (distribution's s3 driver; see reference/peers.md).
func (s *S3) DistributionStorage(prefix string) string {
	return fmt.Sprintf("storage:\n  s3: {accesskey: %s, secretkey: %s, region: %s, regionendpoint: %s, bucket: %s, rootdirectory: /%s, forcepathstyle: true, secure: false, v4auth: true}\n  delete: {enabled: true}\n",
		s.AccessKey, s.SecretKey, s.Region, s.Endpoint, s.Bucket, prefix)
}

// Start (re)starts the server on its address and waits until it answers.
func (s *S3) Start() {
	s.tb.Helper()
	cmd := exec.Command(s.bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", s.addr, "--keep-alive", "--quiet", "posix", s.Dir)
	cmd.Env = []string{"HOME=" + s.Dir, "PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("testenv: start versitygw: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.done:
			s.tb.Fatalf("testenv: versitygw exited before listening on %s:\n%s", s.addr, s.logs)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("testenv: versitygw did not listen on %s:\n%s", s.addr, s.logs)
		}
	}
}

// Stop stops the server (SIGTERM, SIGKILL after 10 s) and waits until it
// is gone: requests to it fail until Start.
func (s *S3) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// ObjectPath is the backend file of object key.
func (s *S3) ObjectPath(key string) string {
	return filepath.Join(s.Dir, s.Bucket, filepath.FromSlash(key))
}

// SetEnv sets Env in the test process (for a server running in it), for
// the rest of the test.
func (s *S3) SetEnv(t *testing.T) {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// S3Traffic counts what went through a proxy of CountingProxy.
type S3Traffic struct {
	Requests atomic.Int64
	Sent     atomic.Int64 // request body bytes (uploads)
	Received atomic.Int64 // response body bytes (downloads)

	mu     sync.Mutex
	ranges []string
}

// Ranges returns the Range headers of the GETs so far ("" for none).
func (t *S3Traffic) Ranges() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.ranges)
}

// CountingProxy starts a reverse proxy to the server on another loopback
// port and returns its endpoint URL (use it in a blob URL instead of
// Endpoint) and its traffic counters. Requests keep the Host header the
// client signed, so signatures stay valid.
func (s *S3) CountingProxy(tb testing.TB) (string, *S3Traffic) {
	tb.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		tb.Fatal(err)
	}
	tr := &S3Traffic{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.Requests.Add(1)
		if r.ContentLength > 0 {
			tr.Sent.Add(r.ContentLength)
		}
		if r.Method == http.MethodGet {
			tr.mu.Lock()
			tr.ranges = append(tr.ranges, r.Header.Get("Range"))
			tr.mu.Unlock()
		}
		rp.ServeHTTP(countingWriter{w, &tr.Received}, r)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL, tr
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
