package registry_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/stream"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// startS3Server runs a server whose blobs are in a fresh versitygw bucket
// under prefix; mod adjusts the configuration further.
func startS3Server(t *testing.T, s3 *testenv.S3, prefix string, mod func(*config.Server)) *testenv.Server {
	t.Helper()
	return testenv.StartServer(t, func(c *config.Server) {
		c.BlobURL = s3.BlobURL(prefix)
		if mod != nil {
			mod(c)
		}
	})
}

// TestInteropS3 pushes and pulls with real clients through a server whose
// blobs are in S3: crane (monolithic uploads of 8 MiB layers, which take
// more than one S3 part), regctl (1 MiB PATCH chunks, below S3's part
// minimum) and a streamed go-containerregistry layer (one PATCH).
func TestInteropS3(t *testing.T) {
	crane := testenv.Peer(t, "crane")
	regctl := testenv.Peer(t, "regctl")
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	srv := startS3Server(t, s3, "interop", nil)
	env := peerEnv(t)
	host := srv.Addr

	idx := multiArchSized(t, false, 8<<20)
	dir := writeLayout(t, idx, "multi")
	run(t, env, crane, "push", "--insecure", dir, host+"/s3/crane:multi")
	checkIndexServed(t, srv.URL, "s3/crane", "multi", idx)
	out := filepath.Join(t.TempDir(), "pulled")
	run(t, env, crane, "pull", "--insecure", "--format", "oci", host+"/s3/crane:multi", out)
	want, got := layoutBlobs(t, dir), layoutBlobs(t, out)
	for d, b := range want {
		if !bytes.Equal(got[d], b) {
			t.Errorf("pulled blob %s differs (%d bytes, want %d)", d, len(got[d]), len(b))
		}
	}

	run(t, env, regctl, "registry", "set", "--tls", "disabled", "--blob-chunk", "1048576", "--blob-max", "1048576", host)
	data := randBytes(t, 7<<20+123)
	cmd := exec.Command(regctl, "blob", "put", host+"/s3/regctl")
	cmd.Env, cmd.Stdin = env, bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("regctl blob put: %v\n%s", err, out)
	}
	if code, _, body := httpGet(t, srv.URL+"/v2/s3/regctl/blobs/"+digest.FromBytes(data).String()); code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("chunked blob: %d, bytes equal %v", code, bytes.Equal(body, data))
	}

	ref, err := name.ParseReference(host+"/s3/stream:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	l := stream.NewLayer(io.NopCloser(bytes.NewReader(randBytes(t, 6<<20))))
	if err := remote.WriteLayer(ref.Context(), l); err != nil {
		t.Fatal(err)
	}
	ld, _ := l.Digest()
	if code, _, body := httpGet(t, srv.URL+"/v2/s3/stream/blobs/"+ld.String()); code != 200 || digest.FromBytes(body).String() != ld.String() {
		t.Fatalf("streamed layer: %d", code)
	}
}

// TestUploadAcrossReplicasS3: two servers share the bucket (not the
// metadata database); the chunks of one upload alternate between them and
// the upload finishes on the first. The session lives in S3 only.
func TestUploadAcrossReplicasS3(t *testing.T) {
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	a := startS3Server(t, s3, "replicas", nil)
	b := startS3Server(t, s3, "replicas", nil)
	data := randBytes(t, 13<<20+7)
	d := digest.FromBytes(data)
	res := do(t, http.MethodPost, a.URL+"/v2/app/blobs/uploads/", nil)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	chunks := []int{1 << 20, 6 << 20, 100, 6<<20 - 100 + 7}
	off := 0
	for i, n := range chunks {
		base := []string{a.URL, b.URL}[(i+1)%2] // b first
		res := do(t, http.MethodPatch, base+loc, data[off:off+n], "Content-Range", strconv.Itoa(off)+"-"+strconv.Itoa(off+n-1))
		if res.StatusCode != http.StatusAccepted || res.Header.Get("Range") != "0-"+strconv.Itoa(off+n-1) {
			t.Fatalf("PATCH %d on %s: %d, Range %q", i, base, res.StatusCode, res.Header.Get("Range"))
		}
		loc = res.Header.Get("Location")
		off += n
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if res := do(t, http.MethodPut, a.URL+loc+sep+"digest="+d.String(), nil); res.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", res.StatusCode)
	}
	if code, _, body := httpGet(t, a.URL+"/v2/app/blobs/"+d.String()); code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET: %d, bytes equal %v", code, bytes.Equal(body, data))
	}
}

// TestBlobRedirectS3: with --blob-redirect a blob GET is a 307 to a
// presigned URL of the S3 server that serves the bytes (and ranges); HEAD
// is still answered by the registry; the redirect is not cacheable.
func TestBlobRedirectS3(t *testing.T) {
	crane := testenv.Peer(t, "crane")
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	srv := startS3Server(t, s3, "redirect", func(c *config.Server) { c.BlobRedirect = true })
	data := randBytes(t, 100000)
	d := digest.FromBytes(data)
	if res := do(t, http.MethodPost, srv.URL+"/v2/app/blobs/uploads/?digest="+d.String(), data); res.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic upload: %d", res.StatusCode)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(srv.URL + "/v2/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, s3.Endpoint+"/") || !strings.Contains(loc, "X-Amz-Signature=") ||
		!strings.Contains(loc, "X-Amz-Expires=900") || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET: %d, Location %q, Cache-Control %q", res.StatusCode, loc, res.Header.Get("Cache-Control"))
	}
	if strings.Contains(loc, s3.SecretKey) {
		t.Fatal("the redirect URL contains the secret key")
	}
	if code, _, body := httpGet(t, srv.URL+"/v2/app/blobs/"+d.String()); code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET following the redirect: %d, bytes equal %v", code, bytes.Equal(body, data))
	}
	if code, _, body := httpGet(t, srv.URL+"/v2/app/blobs/"+d.String(), "Range", "bytes=10-19"); code != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("Range GET following the redirect: %d", code)
	}
	head, err := noFollow.Head(srv.URL + "/v2/app/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.ContentLength != int64(len(data)) {
		t.Fatalf("HEAD: %d, length %d", head.StatusCode, head.ContentLength)
	}
	// A tampered signature is refused by S3.
	bad := strings.Replace(loc, "X-Amz-Signature=", "X-Amz-Signature=0", 1)
	if res, err := http.Get(bad); err != nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("tampered presigned URL: %v %v", res.StatusCode, err)
	}
	// A real client follows the redirect.
	env := peerEnv(t)
	img := multiArchSized(t, false, 3000)
	dir := writeLayout(t, img, "v1")
	run(t, env, crane, "push", "--insecure", dir, srv.Addr+"/app:v1")
	out := filepath.Join(t.TempDir(), "pulled")
	run(t, env, crane, "pull", "--insecure", "--format", "oci", srv.Addr+"/app:v1", out)
	want, got := layoutBlobs(t, dir), layoutBlobs(t, out)
	for d, b := range want {
		if !bytes.Equal(got[d], b) {
			t.Errorf("pulled blob %s differs", d)
		}
	}
}

// TestBlobCacheS3: with --blob-cache-size a replica keeps the S3 blobs it
// served on its disk: the second pull is answered from there (even with the
// object gone from the bucket), ranges too; the metadata database still
// decides who may read a blob; a real client pulls through the cache.
func TestBlobCacheS3(t *testing.T) {
	crane := testenv.Peer(t, "crane")
	s3 := testenv.StartS3(t)
	s3.SetEnv(t)
	srv := startS3Server(t, s3, "cache", func(c *config.Server) { c.BlobCacheSize = "64MiB" })
	data := randBytes(t, 3<<20+99)
	d := digest.FromBytes(data)
	if res := do(t, http.MethodPost, srv.URL+"/v2/app/blobs/uploads/?digest="+d.String(), data); res.StatusCode != http.StatusCreated {
		t.Fatalf("monolithic upload: %d", res.StatusCode)
	}
	metric := func(name string) string {
		_, _, body := httpGet(t, srv.URL+"/metrics")
		for l := range strings.Lines(string(body)) {
			if strings.HasPrefix(l, name+" ") {
				return strings.TrimSpace(strings.TrimPrefix(l, name+" "))
			}
		}
		return ""
	}
	// waitFills waits (bounded) until the background copies made n.
	waitFills := func(n string) {
		t.Helper()
		for range 500 {
			if metric("hallmark_blob_cache_fills_total") == n {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("fills: %q, want %s", metric("hallmark_blob_cache_fills_total"), n)
	}
	for i := range 2 {
		if code, _, body := httpGet(t, srv.URL+"/v2/app/blobs/"+d.String()); code != 200 || !bytes.Equal(body, data) {
			t.Fatalf("GET %d: %d, bytes equal %v", i, code, bytes.Equal(body, data))
		}
		waitFills("1")
	}
	if h := metric("hallmark_blob_cache_hits_total"); h != "1" {
		t.Fatalf("hits %q, want 1", h)
	}
	if err := os.Remove(s3.ObjectPath("cache/blobs/" + blob.BlobPath(d))); err != nil {
		t.Fatal(err)
	}
	if code, _, body := httpGet(t, srv.URL+"/v2/app/blobs/"+d.String()); code != 200 || !bytes.Equal(body, data) {
		t.Fatalf("GET with the object gone from S3: %d", code)
	}
	if code, _, body := httpGet(t, srv.URL+"/v2/app/blobs/"+d.String(), "Range", "bytes=10-19"); code != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("Range GET from the cache: %d", code)
	}
	// Another repository has no link to the blob: the cache is not asked.
	if code, _, _ := httpGet(t, srv.URL+"/v2/other/blobs/"+d.String()); code != http.StatusNotFound {
		t.Fatalf("GET through another repository: %d", code)
	}
	if res := do(t, http.MethodDelete, srv.URL+"/v2/app/blobs/"+d.String(), nil); res.StatusCode != http.StatusAccepted {
		t.Fatalf("DELETE: %d", res.StatusCode)
	}
	if code, _, _ := httpGet(t, srv.URL+"/v2/app/blobs/"+d.String()); code != http.StatusNotFound {
		t.Fatalf("GET of a deleted blob: %d", code)
	}

	env := peerEnv(t)
	img := multiArchSized(t, false, 2<<20)
	dir := writeLayout(t, img, "v1")
	run(t, env, crane, "push", "--insecure", dir, srv.Addr+"/app:v1")
	hitsBefore := metric("hallmark_blob_cache_hits_total")
	for i := range 2 {
		if i == 1 {
			// At least one of the first pull's blobs was copied (at most
			// two copies run at once; others are skipped).
			for j := 0; metric("hallmark_blob_cache_fills_total") == "1"; j++ {
				if j == 500 {
					t.Fatal("no blob of the first crane pull was copied")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		out := filepath.Join(t.TempDir(), "pulled")
		run(t, env, crane, "pull", "--insecure", "--format", "oci", srv.Addr+"/app:v1", out)
		want, got := layoutBlobs(t, dir), layoutBlobs(t, out)
		for d, b := range want {
			if !bytes.Equal(got[d], b) {
				t.Errorf("pull %d: blob %s differs", i, d)
			}
		}
	}
	if h := metric("hallmark_blob_cache_hits_total"); hitsBefore != "3" || h == hitsBefore {
		t.Fatalf("hits before the crane pulls %q (want 3), after them %q (want more)", hitsBefore, h)
	}
}

// do sends a request with an optional body and header pairs; the body of
// the response is read and closed.
func do(t *testing.T, method, u string, body []byte, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}
