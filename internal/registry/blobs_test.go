package registry_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

func TestBase(t *testing.T) {
	e := newEnv(t, registry.Config{})
	for _, path := range []string{"/v2/", "/v2"} {
		r := e.do(http.MethodGet, path, nil)
		wantStatus(t, "GET "+path, r, http.StatusOK)
		if string(r.body) != "{}" {
			t.Errorf("GET %s body %q", path, r.body)
		}
		if r.h.Get("Docker-Distribution-API-Version") != "registry/2.0" {
			t.Errorf("GET %s: Docker-Distribution-API-Version %q", path, r.h.Get("Docker-Distribution-API-Version"))
		}
	}
	r := e.do(http.MethodHead, "/v2/", nil)
	wantStatus(t, "HEAD /v2/", r, http.StatusOK)
	if len(r.body) != 0 {
		t.Errorf("HEAD /v2/ has a body")
	}
}

func TestBlobGetHead(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 4096)
	d := e.pushBlob("app", data)

	r := e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, "GET blob", r, http.StatusOK)
	if !bytes.Equal(r.body, data) {
		t.Fatal("GET blob: body differs from what was pushed")
	}
	if got := r.h.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("GET blob: Docker-Content-Digest %q, want %s", got, d)
	}
	if got := r.h.Get("Content-Length"); got != "4096" {
		t.Errorf("GET blob: Content-Length %q", got)
	}

	r = e.do(http.MethodHead, "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, "HEAD blob", r, http.StatusOK)
	if len(r.body) != 0 {
		t.Error("HEAD blob returned a body")
	}
	if got := r.h.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("HEAD blob: Docker-Content-Digest %q", got)
	}
	if got := r.h.Get("Content-Length"); got != "4096" {
		t.Errorf("HEAD blob: Content-Length %q", got)
	}

	unknown := digest.FromString("nope")
	wantError(t, "GET unknown blob", e.do(http.MethodGet, "/v2/app/blobs/"+unknown.String(), nil), http.StatusNotFound, oci.CodeBlobUnknown)
	r = e.do(http.MethodHead, "/v2/app/blobs/"+unknown.String(), nil)
	wantStatus(t, "HEAD unknown blob", r, http.StatusNotFound)
	if len(r.body) != 0 {
		t.Error("HEAD unknown blob returned a body")
	}
	// A blob pushed to one repository is not served from another one.
	e.pushBlob("other", []byte("x"))
	wantError(t, "GET blob via other repo", e.do(http.MethodGet, "/v2/other/blobs/"+d.String(), nil), http.StatusNotFound, oci.CodeBlobUnknown)
	// Malformed and unsupported digests.
	for _, bad := range []string{"sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + strings.Repeat("G", 64), "latest"} {
		wantError(t, "GET blob "+bad, e.do(http.MethodGet, "/v2/app/blobs/"+bad, nil), http.StatusBadRequest, oci.CodeDigestInvalid)
	}
}

func TestBlobRange(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 4096)
	d := e.pushBlob("app", data)
	tests := []struct {
		rng        string
		status     int
		start, end int // inclusive, for 206
	}{
		{"bytes=500-1499", http.StatusPartialContent, 500, 1499},
		{"bytes=0-0", http.StatusPartialContent, 0, 0},
		{"bytes=500-", http.StatusPartialContent, 500, 4095},
		{"bytes=-500", http.StatusPartialContent, 3596, 4095},
		{"bytes=2000-5000", http.StatusPartialContent, 2000, 4095}, // runs past the end: truncated
		{"bytes=4095-4095", http.StatusPartialContent, 4095, 4095},
		{"bytes=5000-10000", http.StatusRequestedRangeNotSatisfiable, 0, 0}, // starts beyond the blob
		{"bytes=4096-", http.StatusRequestedRangeNotSatisfiable, 0, 0},
		{"bytes=500-0", http.StatusRequestedRangeNotSatisfiable, 0, 0}, // end before start
	}
	for _, tc := range tests {
		t.Run(tc.rng, func(t *testing.T) {
			r := e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil, "Range", tc.rng)
			wantStatus(t, "GET "+tc.rng, r, tc.status)
			if tc.status != http.StatusPartialContent {
				// RFC 9110 §15.5.17: an unsatisfiable (but well-formed) range gets "bytes */size".
				if cr := r.h.Get("Content-Range"); cr != "bytes */4096" && tc.rng != "bytes=500-0" {
					t.Errorf("416 Content-Range %q, want bytes */4096", cr)
				}
				return
			}
			if !bytes.Equal(r.body, data[tc.start:tc.end+1]) {
				t.Errorf("body is not bytes %d-%d of the blob", tc.start, tc.end)
			}
			if cr, want := r.h.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/4096", tc.start, tc.end); cr != want {
				t.Errorf("Content-Range %q, want %q", cr, want)
			}
			if cl := r.h.Get("Content-Length"); cl != strconv.Itoa(tc.end-tc.start+1) {
				t.Errorf("Content-Length %q", cl)
			}
			if got := r.h.Get("Docker-Content-Digest"); got != d.String() {
				t.Errorf("Docker-Content-Digest %q", got)
			}
		})
	}
	// HEAD with a Range answers like GET without the body.
	r := e.do(http.MethodHead, "/v2/app/blobs/"+d.String(), nil, "Range", "bytes=10-19")
	wantStatus(t, "HEAD with Range", r, http.StatusPartialContent)
	if r.h.Get("Content-Length") != "10" || len(r.body) != 0 {
		t.Errorf("HEAD with Range: Content-Length %q body %d bytes", r.h.Get("Content-Length"), len(r.body))
	}
}

func TestUploadMonolithic(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 10000)
	d := digest.FromBytes(data)
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest="+d.String(), data, "Content-Type", "application/octet-stream")
	wantStatus(t, "monolithic POST", r, http.StatusCreated)
	if loc := r.h.Get("Location"); loc != "/v2/app/blobs/"+d.String() {
		t.Errorf("Location %q", loc)
	}
	if got := r.h.Get("Docker-Content-Digest"); got != d.String() {
		t.Errorf("Docker-Content-Digest %q", got)
	}
	got := e.do(http.MethodGet, r.h.Get("Location"), nil)
	if !bytes.Equal(got.body, data) {
		t.Fatal("blob differs")
	}
	if len(e.uploadFiles()) != 0 {
		t.Errorf("upload session left behind: %v", e.uploadFiles())
	}
	// Pushing the same content again is fine (content addressed).
	e.pushBlob("app", data)
	e.pushBlob("app2", data)
	// An empty blob.
	empty := e.pushBlob("app", []byte{})
	if r := e.do(http.MethodGet, "/v2/app/blobs/"+empty.String(), nil); r.code != 200 || len(r.body) != 0 {
		t.Errorf("empty blob: %d, %d bytes", r.code, len(r.body))
	}
}

func TestUploadPostPut(t *testing.T) {
	e := newEnv(t, registry.Config{})
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	wantStatus(t, "POST", r, http.StatusAccepted)
	loc := r.h.Get("Location")
	if loc == "" || r.h.Get("Docker-Upload-UUID") == "" || !strings.HasSuffix(loc, r.h.Get("Docker-Upload-UUID")) {
		t.Fatalf("POST: Location %q, Docker-Upload-UUID %q", loc, r.h.Get("Docker-Upload-UUID"))
	}
	if rg := r.h.Get("Range"); rg != "0-0" {
		t.Errorf("POST: Range %q", rg)
	}
	// A second POST gets a different session.
	r2 := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	if r2.h.Get("Location") == loc {
		t.Fatal("two sessions share a Location")
	}
	data := randBytes(t, 5000)
	d := digest.FromBytes(data)
	r = e.do(http.MethodPut, withQuery(loc, "digest", d.String()), data, "Content-Type", "application/octet-stream")
	wantStatus(t, "PUT", r, http.StatusCreated)
	if r.h.Get("Location") != "/v2/app/blobs/"+d.String() || r.h.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("PUT: Location %q, digest %q", r.h.Get("Location"), r.h.Get("Docker-Content-Digest"))
	}
	if got := e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil); !bytes.Equal(got.body, data) {
		t.Fatal("blob differs")
	}
	// The finished session is gone.
	wantError(t, "GET finished session", e.do(http.MethodGet, loc, nil), http.StatusNotFound, oci.CodeBlobUploadUnknown)
	// The abandoned one still answers.
	wantStatus(t, "GET other session", e.do(http.MethodGet, r2.h.Get("Location"), nil), http.StatusNoContent)
}

func TestUploadChunked(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 3500)
	d := digest.FromBytes(data)
	r := e.do(http.MethodPost, "/v2/group/sub/app/blobs/uploads/", nil, "Content-Length", "0")
	wantStatus(t, "POST", r, http.StatusAccepted)
	loc := r.h.Get("Location")

	patch := func(loc string, start, end int, what string) resp {
		t.Helper()
		return e.do(http.MethodPatch, loc, data[start:end+1],
			"Content-Type", "application/octet-stream", "Content-Range", fmt.Sprintf("%d-%d", start, end))
	}
	r = patch(loc, 0, 999, "first")
	wantStatus(t, "PATCH 0-999", r, http.StatusAccepted)
	if r.h.Get("Range") != "0-999" || r.h.Get("Location") == "" {
		t.Fatalf("PATCH 0-999: Range %q Location %q", r.h.Get("Range"), r.h.Get("Location"))
	}
	loc = r.h.Get("Location")

	// Out of order: skips bytes 1000-1999.
	r = patch(loc, 2000, 2999, "out of order")
	wantError(t, "PATCH out of order", r, http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid)
	if r.h.Get("Range") != "0-999" {
		t.Errorf("416: Range %q, want 0-999", r.h.Get("Range"))
	}
	// Overlapping: resends the first chunk.
	wantError(t, "PATCH overlapping", patch(loc, 0, 999, "again"), http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid)
	// Content-Length disagreeing with Content-Range.
	r = e.do(http.MethodPatch, loc, data[1000:1500], "Content-Range", "1000-1999")
	if r.code != http.StatusBadRequest && r.code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("PATCH with short body for its Content-Range: status %d", r.code)
	}
	// The same without Content-Length (chunked transfer encoding): a body
	// shorter or longer than its Content-Range is refused and not kept.
	for _, n := range []int{500, 1001} {
		r = e.doReader(http.MethodPatch, loc, bytes.NewReader(data[1000:1000+n]), -1, "Content-Range", "1000-1999")
		if r.code != http.StatusBadRequest && r.code != http.StatusRequestedRangeNotSatisfiable {
			t.Errorf("streamed PATCH of %d bytes for Content-Range 1000-1999: status %d", n, r.code)
		}
		if st := e.do(http.MethodGet, loc, nil); st.h.Get("Range") != "0-999" {
			t.Fatalf("after a refused %d-byte chunk: Range %q, want 0-999", n, st.h.Get("Range"))
		}
	}
	// A range whose length overflows int64, streamed (no Content-Length
	// to compare with) and with a Content-Length.
	fresh := e.do(http.MethodPost, "/v2/group/sub/app/blobs/uploads/", nil).h.Get("Location")
	r = e.doReader(http.MethodPatch, fresh, bytes.NewReader(data[:1000]), -1, "Content-Range", "0-9223372036854775807")
	wantError(t, "PATCH overflowing Content-Range, streamed", r, http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid)
	r = e.do(http.MethodPatch, fresh, data[:1000], "Content-Range", "0-9223372036854775807")
	wantError(t, "PATCH overflowing Content-Range", r, http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid)
	// Garbage Content-Range.
	r = e.do(http.MethodPatch, loc, data[1000:2000], "Content-Range", "a-b")
	wantError(t, "PATCH bad Content-Range", r, http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid)

	// Status: 204 with the resume point.
	r = e.do(http.MethodGet, loc, nil)
	wantStatus(t, "GET status", r, http.StatusNoContent)
	if r.h.Get("Range") != "0-999" || r.h.Get("Location") == "" {
		t.Fatalf("GET status: Range %q Location %q", r.h.Get("Range"), r.h.Get("Location"))
	}
	// Resume from there.
	r = patch(r.h.Get("Location"), 1000, 1999, "resume")
	wantStatus(t, "PATCH 1000-1999", r, http.StatusAccepted)
	if r.h.Get("Range") != "0-1999" {
		t.Errorf("Range %q", r.h.Get("Range"))
	}
	// An out-of-order final chunk on the PUT is refused too.
	r = e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", d.String()), data[2500:], "Content-Range", "2500-3499")
	wantError(t, "PUT out-of-order final chunk", r, http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid)
	// The final chunk rides on the PUT.
	r = e.do(http.MethodPut, withQuery(loc, "digest", d.String()), data[2000:],
		"Content-Type", "application/octet-stream", "Content-Range", "2000-3499")
	wantStatus(t, "PUT final chunk", r, http.StatusCreated)
	got := e.do(http.MethodGet, "/v2/group/sub/app/blobs/"+d.String(), nil)
	if !bytes.Equal(got.body, data) {
		t.Fatal("chunked blob differs from the data")
	}
}

func TestUploadStreamed(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 3<<20+17)
	d := digest.FromBytes(data)
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	loc := r.h.Get("Location")
	// PATCH without Content-Range and without Content-Length (chunked
	// transfer encoding), twice: each appends.
	r = e.doReader(http.MethodPatch, loc, bytes.NewReader(data[:1<<20]), -1, "Content-Type", "application/octet-stream")
	wantStatus(t, "streamed PATCH 1", r, http.StatusAccepted)
	if r.h.Get("Range") != fmt.Sprintf("0-%d", 1<<20-1) {
		t.Errorf("Range %q", r.h.Get("Range"))
	}
	r = e.doReader(http.MethodPatch, r.h.Get("Location"), bytes.NewReader(data[1<<20:]), -1)
	wantStatus(t, "streamed PATCH 2", r, http.StatusAccepted)
	if r.h.Get("Range") != fmt.Sprintf("0-%d", len(data)-1) {
		t.Errorf("Range %q", r.h.Get("Range"))
	}
	r = e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", d.String()), nil)
	wantStatus(t, "PUT", r, http.StatusCreated)
	if got := e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil); !bytes.Equal(got.body, data) {
		t.Fatal("streamed blob differs")
	}
}

func TestUploadCancel(t *testing.T) {
	e := newEnv(t, registry.Config{})
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	loc := r.h.Get("Location")
	wantStatus(t, "PATCH", e.do(http.MethodPatch, loc, []byte("some bytes")), http.StatusAccepted)
	if len(e.uploadFiles()) == 0 {
		t.Fatal("no upload state on disk while the session is open")
	}
	r = e.do(http.MethodDelete, loc, nil)
	wantStatus(t, "DELETE upload", r, http.StatusNoContent)
	if f := e.uploadFiles(); len(f) != 0 {
		t.Errorf("cancelled upload left files: %v", f)
	}
	for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		wantError(t, m+" cancelled upload", e.do(m, withQuery(loc, "digest", digest.FromString("x").String()), []byte("x")), http.StatusNotFound, oci.CodeBlobUploadUnknown)
	}
}

func TestUploadUnknown(t *testing.T) {
	e := newEnv(t, registry.Config{})
	ids := []string{
		"0123456789abcdef0123456789abcdef", // well-formed, never issued
		"not-an-id",
		"..",
		strings.Repeat("a", 300),
	}
	for _, id := range ids {
		loc := "/v2/app/blobs/uploads/" + id
		for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete} {
			r := e.do(m, withQuery(loc, "digest", digest.FromString("x").String()), []byte("x"))
			wantError(t, m+" "+id, r, http.StatusNotFound, oci.CodeBlobUploadUnknown)
		}
	}
}

func TestUploadFromOtherRepo(t *testing.T) {
	e := newEnv(t, registry.Config{})
	r := e.do(http.MethodPost, "/v2/alpha/blobs/uploads/", nil)
	loc := r.h.Get("Location")
	id := r.h.Get("Docker-Upload-UUID")
	other := "/v2/beta/blobs/uploads/" + id
	data := []byte("secret content")
	d := digest.FromBytes(data)
	for _, m := range []string{http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete} {
		wantError(t, m+" via other repo", e.do(m, withQuery(other, "digest", d.String()), data), http.StatusNotFound, oci.CodeBlobUploadUnknown)
	}
	// The session is untouched and still usable from its own repository.
	wantStatus(t, "PUT own repo", e.do(http.MethodPut, withQuery(loc, "digest", d.String()), data), http.StatusCreated)
	wantError(t, "blob not in beta", e.do(http.MethodGet, "/v2/beta/blobs/"+d.String(), nil), http.StatusNotFound, oci.CodeNameUnknown)
}

func TestUploadDigestInvalid(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 2048)
	wrong := digest.FromString("something else")
	real := digest.FromBytes(data)
	seed := e.pushBlob("app", []byte("seed")) // the repository exists
	check := func(what string, r resp) {
		t.Helper()
		wantError(t, what, r, http.StatusBadRequest, oci.CodeDigestInvalid)
		for _, d := range []digest.Digest{wrong, real} {
			if _, err := os.Stat(e.blobFile(d)); !os.IsNotExist(err) {
				t.Errorf("%s: blob file for %s exists on disk (err %v)", what, d, err)
			}
			wantError(t, what+": GET", e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, oci.CodeBlobUnknown)
		}
		if f := files(t, e.blobDir+"/blobs"); len(f) != 1 || !strings.HasSuffix(f[0], seed.Encoded()) {
			t.Errorf("%s: blob files stored: %v", what, f)
		}
		if f := e.uploadFiles(); len(f) != 0 {
			t.Errorf("%s: upload files left: %v", what, f)
		}
	}
	// Monolithic POST.
	check("monolithic", e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest="+wrong.String(), data))
	// POST + PUT.
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	check("POST+PUT", e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", wrong.String()), data))
	// Chunked, then PUT with the wrong digest.
	r = e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	r = e.do(http.MethodPatch, r.h.Get("Location"), data, "Content-Range", "0-2047")
	wantStatus(t, "PATCH", r, http.StatusAccepted)
	check("chunked", e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", wrong.String()), nil))
	// sha512 claim for sha256-hashed content.
	sum := sha512.Sum512([]byte("other"))
	w512 := digest.NewDigestFromEncoded(digest.SHA512, hex.EncodeToString(sum[:]))
	r = e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	check("sha512 claim", e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", w512.String()), data))

	// Malformed or missing digest parameters.
	for _, bad := range []string{"sha256:zz", "sha256", "foo:bar", "sha1:" + strings.Repeat("a", 40)} {
		wantError(t, "POST digest="+bad, e.do(http.MethodPost, withQuery("/v2/app/blobs/uploads/", "digest", bad), data), http.StatusBadRequest, oci.CodeDigestInvalid)
		r := e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
		wantError(t, "PUT digest="+bad, e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", bad), data), http.StatusBadRequest, oci.CodeDigestInvalid)
		e.do(http.MethodDelete, r.h.Get("Location"), nil)
	}
	r = e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	wantError(t, "PUT without digest", e.do(http.MethodPut, r.h.Get("Location"), data), http.StatusBadRequest, oci.CodeDigestInvalid)
	wantError(t, "POST digest-algorithm=md5", e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest-algorithm=md5", nil), http.StatusBadRequest, oci.CodeDigestInvalid)
}

func TestMount(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 3000)
	d := e.pushBlob("src/app", data)

	r := e.do(http.MethodPost, "/v2/dst/app/blobs/uploads/?mount="+d.String()+"&from=src/app", nil)
	wantStatus(t, "mount", r, http.StatusCreated)
	if r.h.Get("Location") != "/v2/dst/app/blobs/"+d.String() {
		t.Errorf("mount Location %q", r.h.Get("Location"))
	}
	if got := e.do(http.MethodGet, "/v2/dst/app/blobs/"+d.String(), nil); got.code != 200 || !bytes.Equal(got.body, data) {
		t.Fatalf("mounted blob: %d", got.code)
	}
	if f := e.uploadFiles(); len(f) != 0 {
		t.Errorf("mount created upload files: %v", f)
	}

	// The source lacks the blob, the source does not exist, no source at
	// all: a normal upload session starts (202) and works.
	other := digest.FromString("absent")
	for _, q := range []string{
		"?mount=" + other.String() + "&from=src/app",
		"?mount=" + other.String() + "&from=no/such/repo",
		"?mount=" + d.String() + "&from=third",
		"?mount=" + d.String(),
	} {
		r := e.do(http.MethodPost, "/v2/third/blobs/uploads/"+q, nil)
		wantStatus(t, "mount fallback "+q, r, http.StatusAccepted)
		if r.h.Get("Location") == "" {
			t.Fatalf("mount fallback %s: no Location", q)
		}
		blob := []byte("fallback " + q)
		wantStatus(t, "PUT after fallback", e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", digest.FromBytes(blob).String()), blob), http.StatusCreated)
	}
	wantError(t, "mount bad digest", e.do(http.MethodPost, "/v2/third/blobs/uploads/?mount=sha256:xyz&from=src/app", nil), http.StatusBadRequest, oci.CodeDigestInvalid)
}

func TestBlobDelete(t *testing.T) {
	e := newEnv(t, registry.Config{})
	d := e.pushBlob("app", []byte("delete me"))
	e.pushBlob("keep", []byte("delete me"))
	r := e.do(http.MethodDelete, "/v2/app/blobs/"+d.String(), nil)
	wantStatus(t, "DELETE blob", r, http.StatusAccepted)
	wantError(t, "GET deleted blob", e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, oci.CodeBlobUnknown)
	wantError(t, "DELETE again", e.do(http.MethodDelete, "/v2/app/blobs/"+d.String(), nil), http.StatusNotFound, oci.CodeBlobUnknown)
	wantError(t, "DELETE bad digest", e.do(http.MethodDelete, "/v2/app/blobs/sha256:1", nil), http.StatusBadRequest, oci.CodeDigestInvalid)
	// Other repositories keep their link.
	wantStatus(t, "GET in other repo", e.do(http.MethodGet, "/v2/keep/blobs/"+d.String(), nil), http.StatusOK)
}

func TestSHA512Blobs(t *testing.T) {
	e := newEnv(t, registry.Config{})
	data := randBytes(t, 7000)
	d := digest.SHA512.FromBytes(data)
	// Monolithic.
	r := e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest="+d.String(), data)
	wantStatus(t, "sha512 monolithic", r, http.StatusCreated)
	if r.h.Get("Docker-Content-Digest") != d.String() {
		t.Errorf("Docker-Content-Digest %q, want the sha512 digest", r.h.Get("Docker-Content-Digest"))
	}
	r = e.do(http.MethodGet, "/v2/app/blobs/"+d.String(), nil)
	if r.code != 200 || !bytes.Equal(r.body, data) || r.h.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("GET sha512 blob: %d, digest %q", r.code, r.h.Get("Docker-Content-Digest"))
	}
	r = e.do(http.MethodHead, "/v2/app/blobs/"+d.String(), nil)
	if r.code != 200 || r.h.Get("Content-Length") != "7000" {
		t.Fatalf("HEAD sha512 blob: %d %q", r.code, r.h.Get("Content-Length"))
	}
	// digest-algorithm=sha512 session, chunked.
	data2 := randBytes(t, 5000)
	d2 := digest.SHA512.FromBytes(data2)
	r = e.do(http.MethodPost, "/v2/app/blobs/uploads/?digest-algorithm=sha512", nil)
	wantStatus(t, "POST digest-algorithm=sha512", r, http.StatusAccepted)
	r = e.do(http.MethodPatch, r.h.Get("Location"), data2[:2500], "Content-Range", "0-2499")
	wantStatus(t, "PATCH", r, http.StatusAccepted)
	r = e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", d2.String()), data2[2500:], "Content-Range", "2500-4999")
	wantStatus(t, "PUT sha512", r, http.StatusCreated)
	if _, err := os.Stat(e.blobFile(d2)); err != nil {
		t.Errorf("sha512 blob file: %v", err)
	}
	// A sha512 blob uploaded through a default (sha256) session.
	data3 := randBytes(t, 100)
	d3 := digest.SHA512.FromBytes(data3)
	r = e.do(http.MethodPost, "/v2/app/blobs/uploads/", nil)
	wantStatus(t, "PUT sha512 via sha256 session", e.do(http.MethodPut, withQuery(r.h.Get("Location"), "digest", d3.String()), data3), http.StatusCreated)
	if got := e.do(http.MethodGet, "/v2/app/blobs/"+d3.String(), nil); !bytes.Equal(got.body, data3) {
		t.Fatal("sha512 blob differs")
	}
	// Mount works for sha512 too.
	wantStatus(t, "mount sha512", e.do(http.MethodPost, "/v2/other/blobs/uploads/?mount="+d.String()+"&from=app", nil), http.StatusCreated)
}
