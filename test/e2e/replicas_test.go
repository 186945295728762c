package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// Replicas behind the balancer of TestReferencePipelineReplicas.
const (
	replicaA = 0 // logins and tokens, the CA, the log, the CI job API
	replicaB = 1 // the registry's writes (pushes) and every read (verify)
)

// replicaRouter sends logins and signing to A, pushes and reads to B, and
// remembers which replica got what ("A POST /api/v2/signingCert").
type replicaRouter struct {
	mu     sync.Mutex
	served []string
}

func (rr *replicaRouter) route(r *http.Request, _ int64) int {
	i := replicaA // POSTs to the CA, the log, the CI job and token APIs
	switch {
	case r.URL.Path == "/auth/token":
	case strings.HasPrefix(r.URL.Path, "/v2/"), r.Method == http.MethodGet, r.Method == http.MethodHead:
		i = replicaB
	}
	rr.mu.Lock()
	rr.served = append(rr.served, fmt.Sprintf("%c %s %s", 'A'+i, r.Method, r.URL.Path))
	rr.mu.Unlock()
	return i
}

// saw reports whether a request starting with prefix and containing part
// was routed.
func (rr *replicaRouter) saw(prefix, part string) bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return slices.ContainsFunc(rr.served, func(s string) bool { return strings.HasPrefix(s, prefix) && strings.Contains(s, part) })
}

// TestReferencePipelineReplicas runs the reference pipeline (real docker
// and cosign v2) against two `hallmark server` replicas (auth on) on one
// PostgreSQL database and one S3 bucket, behind a balancer: docker login
// and every token come from replica A, the push lands on B, the
// certificate and the log entry come from A, and verify reads from B. The
// external URL is the balancer's, as in a deployment.
func TestReferencePipelineReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end pipeline test skipped in -short mode")
	}
	dockerHost := testenv.DockerHost(t, "THE REFERENCE PIPELINE ON TWO REPLICAS")
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	job, ok := loadPipeline(t, filepath.Join(root, pipelineFile))["sign-with-cosign"]
	if !ok {
		t.Fatalf("%s has no job sign-with-cosign", pipelineFile)
	}
	tools := map[string]string{
		"jq": testenv.Peer(t, "jq"), "wget": lookTool(t, "wget"), "sha256sum": lookTool(t, "sha256sum"),
		"docker": lookTool(t, "docker"), "hallmark": testenv.HallmarkBinary(t), "cosign": testenv.Peer(t, "cosign"),
	}
	db := testenv.Postgres(t)
	s3 := testenv.StartS3(t)
	router := &replicaRouter{}
	lb := testenv.StartBalancer(t, router.route)
	env := append(append(os.Environ(), s3.Env()...), "HOME="+t.TempDir(), "HALLMARK_KEY_ENCRYPTION_KEY="+testenv.TestKEK)
	var reps []*testenv.ServerProcess
	for range 2 { // A first: it creates the keys and the admin account
		p := testenv.StartServerProcess(t, tools["hallmark"], t.TempDir(), env, "--log-level", "debug",
			"--database-url", db, "--blob-url", s3.BlobURL("pipeline"), "--external-url", lb.URL)
		lb.Add(t, p.URL)
		reps = append(reps, p)
	}
	// The pipeline sees one server: the balancer's address, A's data dir
	// (the admin token `hallmark ci job` uses and the trusted root the
	// job pins out of band).
	srv := &hallmarkProc{ServerProcess: &testenv.ServerProcess{Addr: lb.Addr, URL: lb.URL, DataDir: reps[replicaA].DataDir, Logs: reps[replicaA].Logs}}
	run := newPipelineRun(t, srv, dockerHost, tools, "e2e/replicas")
	run.execute(t, job)
	run.check(t, srv, true)

	// Requests the pipeline must have made, on the replica named first.
	for _, want := range [][2]string{
		{"A GET /auth/token", ""}, {"A POST /api/v", "/signingCert"}, {"A POST /api/v1/log/entries", ""},
		{"B PUT /v2/e2e/replicas/manifests/", ""}, {"B ", "/v2/e2e/replicas/blobs/uploads/"}, {"B GET /v2/e2e/replicas/manifests/", ""},
	} {
		if !router.saw(want[0], want[1]) {
			t.Errorf("no request %s...%s", want[0], want[1])
		}
	}
	for i, p := range reps {
		for _, s := range srv.secrets() {
			if strings.Contains(p.Logs.String(), s) {
				t.Errorf("a token handed to the pipeline appears in replica %c's log", 'A'+i)
			}
		}
	}
}
