package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// startReplicas runs n `hallmark server` processes on one PostgreSQL
// database and one S3 bucket (auth off), as a deployment behind a load
// balancer would.
func startReplicas(t *testing.T, n int, s3 *testenv.S3, dbURL string) []*testenv.ServerProcess {
	t.Helper()
	bin := testenv.HallmarkBinary(t)
	env := append(append(os.Environ(), s3.Env()...), "HALLMARK_KEY_ENCRYPTION_KEY="+testenv.TestKEK)
	var ps []*testenv.ServerProcess
	for range n {
		ps = append(ps, testenv.StartServerProcess(t, bin, t.TempDir(), env,
			"--auth", "off", "--database-url", dbURL, "--blob-url", s3.BlobURL("replicas")))
	}
	return ps
}

// TestReplicaFaults runs two replicas on one PostgreSQL and one bucket.
// An upload is started on A and A is killed (kill -9) while a chunk is on
// the wire: B tells the client how much it has, takes the rest and commits
// the blob intact. With S3 stopped, B is not ready (saying it is the blob
// store) and blob requests get a clear 503; once S3 is back B serves the
// blob again.
func TestReplicaFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two server binaries, PostgreSQL and S3")
	}
	db := testenv.Postgres(t)
	s3 := testenv.StartS3(t)
	reps := startReplicas(t, 2, s3, db)
	a, b := reps[0], reps[1]

	data := randBytes(13 << 20)
	d := digest.FromBytes(data)
	res, _, err := do(t, http.MethodPost, a.URL+"/v2/team/app/blobs/uploads/", nil, 0)
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST on A: %v %v", res, err)
	}
	loc := res.Header.Get("Location")
	first := 6 << 20
	if res, _, err := do(t, http.MethodPatch, a.URL+loc, bytes.NewReader(data[:first]), int64(first), "Content-Range", fmt.Sprintf("0-%d", first-1)); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("first PATCH on A: %v %v", res, err)
	}

	// The second chunk: half of it sent, then A dies mid-request.
	pr, pw := io.Pipe()
	patchDone := make(chan error, 1)
	go func() {
		res, _, err := do(t, http.MethodPatch, a.URL+loc, pr, int64(len(data)-first), "Content-Range", fmt.Sprintf("%d-%d", first, len(data)-1))
		if err == nil && res.StatusCode == http.StatusAccepted {
			err = fmt.Errorf("PATCH on A completed although A was killed")
		}
		patchDone <- err
	}()
	if _, err := pw.Write(data[first : first+(3<<20)]); err != nil {
		t.Fatal(err)
	}
	a.Kill()
	pw.CloseWithError(io.ErrClosedPipe)
	if err := <-patchDone; err == nil {
		t.Fatal("the PATCH to the killed replica succeeded")
	}

	// The client resumes on B from the offset B reports.
	res, _, err = do(t, http.MethodGet, b.URL+loc, nil, 0)
	if err != nil || res.StatusCode != http.StatusNoContent {
		t.Fatalf("upload status on B after A was killed: %v %v", res, err)
	}
	rng := res.Header.Get("Range")
	end, err := strconv.Atoi(strings.TrimPrefix(rng, "0-"))
	if err != nil || end+1 != first {
		t.Fatalf("B reports Range %q, want 0-%d (what A acknowledged)", rng, first-1)
	}
	rest := data[end+1:]
	if res, body, err := do(t, http.MethodPatch, b.URL+loc, bytes.NewReader(rest), int64(len(rest)), "Content-Range", fmt.Sprintf("%d-%d", end+1, len(data)-1)); err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH on B: %v %s %v", res, body, err)
	}
	mustDo(t, http.StatusCreated, http.MethodPut, b.URL+loc+"?digest="+d.String(), nil)
	if _, body := mustDo(t, http.StatusOK, http.MethodGet, b.URL+"/v2/team/app/blobs/"+d.String(), nil); !bytes.Equal(body, data) {
		t.Fatalf("blob committed on B differs from what was uploaded (%d bytes, want %d)", len(body), len(data))
	}

	// S3 goes away: B is not ready and says why; blob requests get 503.
	s3.Stop()
	res, body, err := do(t, http.MethodGet, b.URL+"/readyz", nil, 0)
	if err != nil || res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "blob store") {
		t.Errorf("readyz with S3 down: %v %q %v", res, body, err)
	}
	res, body, err = do(t, http.MethodGet, b.URL+"/v2/team/app/blobs/"+d.String(), nil, 0)
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err != nil || res.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil || len(e.Errors) != 1 ||
		e.Errors[0].Code != "UNAVAILABLE" || res.Header.Get("Retry-After") == "" {
		t.Errorf("blob GET with S3 down: %v %s %v", res, body, err)
	}
	s3.Start()
	mustDo(t, http.StatusOK, http.MethodGet, b.URL+"/readyz", nil)
	if _, body := mustDo(t, http.StatusOK, http.MethodGet, b.URL+"/v2/team/app/blobs/"+d.String(), nil); !bytes.Equal(body, data) {
		t.Fatal("blob differs after S3 came back")
	}
}
