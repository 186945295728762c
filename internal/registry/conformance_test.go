package registry_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// conformanceSwitches are the OCI conformance suite's API and data
// switches, every one on (the suite's names; `OCI_VERSION=dev` defaults
// them the same, listed here so a newer suite's default cannot switch one
// off unnoticed). OCI_DATA_SPARSE is set per run.
var conformanceSwitches = []string{
	"OCI_API_PULL=true",
	"OCI_API_PUSH=true",
	"OCI_API_BLOBS_ATOMIC=true",
	"OCI_API_BLOBS_DELETE=true",
	"OCI_API_BLOBS_DIGEST_HEADER=true",
	"OCI_API_BLOBS_MOUNT_ANONYMOUS=true",
	"OCI_API_BLOBS_UPLOAD_CANCEL=true",
	"OCI_API_MANIFESTS_ATOMIC=true",
	"OCI_API_MANIFESTS_DELETE=true",
	"OCI_API_MANIFESTS_DIGEST_HEADER=true",
	"OCI_API_MANIFESTS_TAG_PARAM=true",
	"OCI_API_TAGS_ATOMIC=true",
	"OCI_API_TAGS_DELETE=true",
	"OCI_API_TAGS_LIST=true",
	"OCI_API_REFERRER=true",
	"OCI_DATA_IMAGE=true",
	"OCI_DATA_INDEX=true",
	"OCI_DATA_INDEX_LIST=true",
	"OCI_DATA_ARTIFACT=true",
	"OCI_DATA_SUBJECT=true",
	"OCI_DATA_SUBJECT_MISSING=true",
	"OCI_DATA_ARTIFACT_LIST=true",
	"OCI_DATA_SUBJECT_LIST=true",
	"OCI_DATA_DATA_FIELD=true",
	"OCI_DATA_NONDISTRIBUTABLE=true",
	"OCI_DATA_CUSTOM_FIELDS=true",
	"OCI_DATA_NO_LAYERS=true",
	"OCI_DATA_EMPTY_BLOB=true",
	"OCI_DATA_SHA512=true",
}

// TestOCIConformance runs the official OCI distribution-spec conformance
// suite (installed as the peer "oci-conformance" by scripts/install-peers)
// against a real Hallmark server with every API and data switch of the
// suite on, on each metadata database: once as configured by default
// (sparse manifests refused, so the suite's sparse data is off) and once
// with --sparse-manifests and the suite's sparse data (an image with an
// absent layer, an index with an absent platform).
func TestOCIConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped with -short")
	}
	t.Run("sqlite", func(t *testing.T) { conformance(t, nil) })
	t.Run("postgres", func(t *testing.T) {
		url := testenv.Postgres(t)
		conformance(t, func(c *config.Server) { c.DatabaseURL = url })
	})
}

func conformance(t *testing.T, mod func(*config.Server)) {
	bin := testenv.Peer(t, "oci-conformance")
	for _, sparse := range []bool{false, true} {
		name := "default"
		if sparse {
			name = "sparse-manifests"
		}
		t.Run(name, func(t *testing.T) {
			srv := testenv.StartServer(t, func(c *config.Server) {
				if mod != nil {
					mod(c)
				}
				c.SparseManifests = sparse
			})
			runConformance(t, bin, srv.Addr, append(conformanceSwitches, "OCI_DATA_SPARSE="+strconv.FormatBool(sparse)))
		})
	}
}

// TestOCIConformanceS3 runs the suite against a server whose blobs are in
// S3 (versitygw): chunked uploads in small chunks, monolithic uploads,
// range requests, cancel and delete go through the S3 driver.
func TestOCIConformanceS3(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped with -short")
	}
	bin := testenv.Peer(t, "oci-conformance")
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	srv := testenv.StartServer(t, func(c *config.Server) { c.BlobURL = s3.BlobURL("conformance") })
	runConformance(t, bin, srv.Addr, append(conformanceSwitches, "OCI_DATA_SPARSE=false"))
	// The blobs went to the bucket, not the data dir.
	out, err := s3.Client().ListObjectsV2(context.Background(), &s3api.ListObjectsV2Input{Bucket: &s3.Bucket, Prefix: aws.String("conformance/blobs/")})
	if err != nil || len(out.Contents) == 0 {
		t.Errorf("no blobs in the bucket after the suite: %v", err)
	}
	if _, err := os.Stat(filepath.Join(srv.DataDir, "blobs")); !os.IsNotExist(err) {
		t.Errorf("the data dir has a blobs directory: %v", err)
	}
}

// TestOCIConformanceReplicas runs the suite against two replicas on one
// PostgreSQL database and one bucket, behind a balancer that sends each
// request to the other replica than the one before: an upload's POST,
// PATCHes and PUT, a push and the pull after it, land on different servers.
func TestOCIConformanceReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite skipped with -short")
	}
	bin := testenv.Peer(t, "oci-conformance")
	db := testenv.Postgres(t)
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	var backends []string
	for range 2 {
		srv := testenv.StartServer(t, func(c *config.Server) {
			c.DatabaseURL, c.BlobURL = db, s3.BlobURL("replicas")
		})
		backends = append(backends, srv.URL)
	}
	lb := testenv.StartBalancer(t, testenv.RoundRobin(2), backends...)
	runConformance(t, bin, lb.Addr, append(conformanceSwitches, "OCI_DATA_SPARSE=false"))
	for i := range 2 {
		if n := lb.Hits[i].Load(); n < 100 {
			t.Errorf("replica %d served %d requests only", i, n)
		}
	}
}

// runConformance runs the suite against addr with the given switches and
// fails the test on any failed check.
func runConformance(t *testing.T, bin, addr string, switches []string) {
	t.Helper()
	results := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Dir = t.TempDir() // no oci-conformance.yaml here: environment only
	cmd.Env = append(append(os.Environ(),
		"OCI_REGISTRY="+addr,
		"OCI_TLS=disabled",
		"OCI_VERSION=dev",
		"OCI_RESULTS_DIR="+results,
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_LOG=warn",
	), switches...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	summary := out.String()
	if i := strings.Index(summary, "API conformance:"); i >= 0 {
		t.Logf("conformance summary:\n%s", summary[max(0, strings.LastIndex(summary[:i], "\n\n")):])
	}
	if err != nil {
		var failed []string
		for _, l := range strings.Split(summary, "\n") {
			if strings.Contains(l, "failed test") {
				failed = append(failed, l)
			}
		}
		t.Fatalf("OCI conformance suite failed (%v); results in %s:\n%s", err, filepath.Join(results, "report.html"), strings.Join(failed, "\n"))
	}
	if !strings.Contains(summary, "FAIL..........................:          0") {
		t.Fatalf("conformance suite reported failures:\n%s", summary)
	}
}
