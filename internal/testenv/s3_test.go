package testenv_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// TestS3ServesDistribution: the peer registry (distribution) stores an
// image in the versitygw bucket with the configuration DistributionStorage
// gives, so benchmarks can compare both registries on the same S3.
func TestS3ServesDistribution(t *testing.T) {
	bin := testenv.Peer(t, "registry")
	s3 := testenv.StartS3(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(t.TempDir(), "config.yml")
	conf := "version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\n" + s3.DistributionStorage("distribution") + "http: {addr: " + addr + "}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	var logs testenv.SyncBuffer
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(time.Minute)
	for {
		res, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			res.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("distribution did not start:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	img, err := random.Image(6<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(addr+"/bench/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push to distribution on S3: %v\n%s", err, logs.String())
	}
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		pl, err := got.LayerByDigest(d)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := pl.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		want, _ := l.Compressed()
		var wbuf bytes.Buffer
		wbuf.ReadFrom(want)
		if !bytes.Equal(buf.Bytes(), wbuf.Bytes()) {
			t.Errorf("layer %s differs", d)
		}
	}
	out, err := s3.Client().ListObjectsV2(context.Background(), &s3api.ListObjectsV2Input{Bucket: &s3.Bucket, Prefix: aws.String("distribution/docker/registry/v2/blobs/")})
	if err != nil || len(out.Contents) == 0 {
		t.Fatalf("no blobs in the bucket: %v", err)
	}
}
