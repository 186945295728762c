package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// status is the status code of one request to the server.
func status(t *testing.T, method, u string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(method, u, bytes.NewReader(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestGCCommand: hallmark gc --dry-run reports what a sweep would free
// and changes nothing; hallmark gc frees it, on a running server's data
// dir.
func TestGCCommand(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.GCInterval = 0 })
	img := pushImage(t, srv.Addr, "gc/app", "v1")
	var garbage []digest.Digest
	var size int
	for i := range 3 {
		b := []byte(fmt.Sprint("garbage blob ", i, strings.Repeat("x", i*100)))
		size += len(b)
		d := digest.FromBytes(b)
		if st := status(t, http.MethodPost, srv.URL+"/v2/gc/junk/blobs/uploads/?digest="+d.String(), b); st != http.StatusCreated {
			t.Fatal(st)
		}
		garbage = append(garbage, d)
	}
	time.Sleep(1100 * time.Millisecond)
	dd := []string{"--data-dir", srv.DataDir, "--grace", "1s"}
	out, errOut, code := runTrustCLI(t, append([]string{"gc", "--dry-run"}, dd...)...)
	if code != 0 || !strings.Contains(out, "dry run: nothing was changed") || !strings.Contains(out, fmt.Sprintf("blobs: would delete 3, freeing %d bytes", size)) {
		t.Fatalf("gc --dry-run: exit %d\n%s%s", code, out, errOut)
	}
	for _, d := range garbage {
		if !strings.Contains(out, d.String()) {
			t.Errorf("the dry run does not list %s", d)
		}
		if st := status(t, http.MethodHead, srv.URL+"/v2/gc/junk/blobs/"+d.String(), nil); st != http.StatusOK {
			t.Errorf("the dry run deleted %s: %d", d, st)
		}
	}
	out, errOut, code = runTrustCLI(t, append([]string{"gc", "-o", "json"}, dd...)...)
	var r struct {
		DryRun       bool  `json:"dryRun"`
		BlobsDeleted int   `json:"blobsDeleted"`
		BytesFreed   int64 `json:"bytesFreed"`
	}
	if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil || r.DryRun || r.BlobsDeleted != 3 || r.BytesFreed != int64(size) {
		t.Fatalf("gc: exit %d, %+v %v\n%s%s", code, r, err, out, errOut)
	}
	for _, d := range garbage {
		if st := status(t, http.MethodHead, srv.URL+"/v2/gc/junk/blobs/"+d.String(), nil); st != http.StatusNotFound {
			t.Errorf("%s after gc: %d", d, st)
		}
	}
	if _, err := remote.Image(img); err != nil {
		t.Errorf("the referenced image after gc: %v", err)
	}
	// An orphan scan on a clean store finds nothing.
	if out, _, code := runTrustCLI(t, append([]string{"gc", "--orphans", "--dry-run"}, dd...)...); code != 0 || !strings.Contains(out, "orphan objects: 0") {
		t.Errorf("gc --orphans: %d %s", code, out)
	}
	for _, bad := range [][]string{{"gc", "--grace", "0s", "--data-dir", srv.DataDir}, {"gc", "--data-dir", t.TempDir() + "/none"}, {"gc", "-o", "yaml", "--data-dir", srv.DataDir}} {
		if _, errOut, code := runTrustCLI(t, bad...); code == 0 || errOut == "" {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
}

// TestRetentionCommands: set-retention is a dry run unless --apply, then
// stores the policy and removes the tags; project retention shows it.
func TestRetentionCommands(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.GCInterval = 0 })
	dd := []string{"--data-dir", srv.DataDir}
	if _, errOut, code := runTrustCLI(t, append([]string{"project", "add", "group/app"}, dd...)...); code != 0 {
		t.Fatal(errOut)
	}
	img, err := random.Image(128, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"dev-1", "dev-2", "dev-3", "release"} {
		ref, _ := name.NewTag(srv.Addr + "/group/app/svc:" + tag)
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	set := append([]string{"project", "set-retention", "group/app", "--keep-n", "1", "--tag-regex", "dev-.*"}, dd...)
	out, errOut, code := runTrustCLI(t, set...)
	if code != 0 || !strings.Contains(out, "dry run: would remove 2 tags") || !strings.Contains(out, "group/app/svc:dev-2") || !strings.Contains(out, "group/app/svc:dev-1") {
		t.Fatalf("set-retention (dry run): %d\n%s%s", code, out, errOut)
	}
	if _, _, code := runTrustCLI(t, append([]string{"project", "retention", "group/app"}, dd...)...); code == 0 {
		t.Error("the dry run stored the policy")
	}
	for _, tag := range []string{"dev-1", "dev-2"} {
		if st := status(t, http.MethodHead, srv.URL+"/v2/group/app/svc/manifests/"+tag, nil); st != http.StatusOK {
			t.Errorf("the dry run removed %s: %d", tag, st)
		}
	}
	out, errOut, code = runTrustCLI(t, append(set, "--apply")...)
	if code != 0 || !strings.Contains(out, "removed 2 tags") {
		t.Fatalf("set-retention --apply: %d\n%s%s", code, out, errOut)
	}
	for tag, want := range map[string]int{"dev-1": 404, "dev-2": 404, "dev-3": 200, "release": 200} {
		if st := status(t, http.MethodHead, srv.URL+"/v2/group/app/svc/manifests/"+tag, nil); st != want {
			t.Errorf("%s after --apply: %d, want %d", tag, st, want)
		}
	}
	out, _, code = runTrustCLI(t, append([]string{"project", "retention", "group/app"}, dd...)...)
	if code != 0 || !strings.Contains(out, `{"keep_n":1,"tag_regex":"dev-.*"}`) || !strings.Contains(out, "would remove 0 tags") {
		t.Errorf("project retention: %d %s", code, out)
	}
	for _, bad := range [][]string{
		{"project", "set-retention", "group/app"},                                      // neither keep-n nor older-than
		{"project", "set-retention", "group/app", "--keep-n", "1", "--tag-regex", "("}, // bad expression
		{"project", "set-retention", "group/app", "--older-than", "soon"},
		{"project", "set-retention", "nope", "--keep-n", "1"},
	} {
		if _, errOut, code := runTrustCLI(t, append(bad, dd...)...); code == 0 || errOut == "" {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
	if out, _, code := runTrustCLI(t, append([]string{"project", "set-retention", "group/app", "--clear", "--apply"}, dd...)...); code != 0 || !strings.Contains(out, "removed the retention policy") {
		t.Errorf("--clear --apply: %d %s", code, out)
	}
	if _, _, code := runTrustCLI(t, append([]string{"project", "retention", "group/app"}, dd...)...); code == 0 {
		t.Error("the policy survived --clear")
	}
}
