package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// env is a registry handler over a real filesystem blob store and a real
// SQLite file, served by httptest.
type env struct {
	t       *testing.T
	srv     *httptest.Server
	blobDir string
	dbPath  string
	store   *sqlite.Store
	h       *registry.Handler
}

func newEnv(t *testing.T, cfg registry.Config) *env {
	t.Helper()
	dir := t.TempDir()
	blobs, err := blobfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(dir, "hallmark.db")
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	h, err := registry.New(blobs, store, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	return &env{t: t, srv: srv, blobDir: filepath.Join(dir, "blobs"), dbPath: dbPath, store: store, h: h}
}

// resp is a fully read HTTP response.
type resp struct {
	code int
	h    http.Header
	body []byte
}

// url resolves a path or a Location header against the server.
func (e *env) url(loc string) string {
	e.t.Helper()
	if strings.HasPrefix(loc, "/") {
		// Sent verbatim: no dot-segment cleaning.
		return e.srv.URL + loc
	}
	base, _ := url.Parse(e.srv.URL)
	u, err := base.Parse(loc)
	if err != nil {
		e.t.Fatalf("bad location %q: %v", loc, err)
	}
	return u.String()
}

// do sends a request; body nil means no body. hdr is key, value pairs.
func (e *env) do(method, loc string, body []byte, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	return e.doReader(method, loc, rd, int64(len(body)), hdr...)
}

// doReader sends a request whose body is r with the given length (-1:
// chunked transfer encoding, no Content-Length).
func (e *env) doReader(method, loc string, r io.Reader, length int64, hdr ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url(loc), r)
	if err != nil {
		e.t.Fatal(err)
	}
	if r != nil {
		req.ContentLength = length
		if length < 0 {
			// Hide the concrete type so net/http does not sniff a length.
			req.Body = io.NopCloser(struct{ io.Reader }{r})
		}
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, loc, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, loc, err)
	}
	return resp{code: res.StatusCode, h: res.Header, body: b}
}

// withQuery appends query parameters to a Location, which may already carry
// some.
func withQuery(loc string, kv ...string) string {
	u, err := url.Parse(loc)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// wantStatus fails unless r has status code.
func wantStatus(t *testing.T, what string, r resp, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: status %d, want %d; body %s", what, r.code, code, truncate(r.body))
	}
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// wantError checks status, the OCI error body shape and the error code.
func wantError(t *testing.T, what string, r resp, status int, code oci.ErrorCode) {
	t.Helper()
	wantStatus(t, what, r, status)
	if ct := r.h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: error Content-Type %q, want application/json", what, ct)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("%s: error body is not JSON: %v: %s", what, err, truncate(r.body))
	}
	if len(raw) != 1 || raw["errors"] == nil {
		t.Fatalf("%s: error body must be exactly {\"errors\":[...]}: %s", what, r.body)
	}
	var errs []map[string]json.RawMessage
	if err := json.Unmarshal(raw["errors"], &errs); err != nil || len(errs) == 0 {
		t.Fatalf("%s: errors is not a non-empty array: %s", what, r.body)
	}
	for _, e := range errs {
		for k := range e {
			if k != "code" && k != "message" && k != "detail" {
				t.Errorf("%s: unexpected key %q in error entry: %s", what, k, r.body)
			}
		}
		var c, m string
		if json.Unmarshal(e["code"], &c) != nil || json.Unmarshal(e["message"], &m) != nil || m == "" {
			t.Errorf("%s: error entry needs string code and non-empty message: %s", what, r.body)
		}
	}
	var c string
	json.Unmarshal(errs[0]["code"], &c)
	if c != string(code) {
		t.Fatalf("%s: error code %q, want %q; body %s", what, c, code, r.body)
	}
}

// pushBlob uploads b monolithically to repo and returns its digest.
func (e *env) pushBlob(repo string, b []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(b)
	r := e.do(http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), b, "Content-Type", "application/octet-stream")
	wantStatus(e.t, "push blob", r, http.StatusCreated)
	return d
}

// pushManifest PUTs body as a manifest with Content-Type mt.
func (e *env) pushManifest(repo, ref, mt string, body []byte) resp {
	e.t.Helper()
	return e.do(http.MethodPut, "/v2/"+repo+"/manifests/"+ref, body, "Content-Type", mt)
}

func desc(mt string, b []byte) oci.Descriptor {
	return oci.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// image pushes a config and a layer to repo and returns an image manifest of
// media type mt (OCI or Docker) referencing them, marshalled with unusual
// whitespace so that a registry re-encoding it would be caught.
func (e *env) image(repo, mt string, extra map[string]any) []byte {
	e.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":"` + rand.Text() + `"}`)
	layer := randBytes(e.t, 1500)
	e.pushBlob(repo, cfg)
	e.pushBlob(repo, layer)
	cfgMT, layerMT := oci.MediaTypeOCIConfig, oci.MediaTypeOCILayerGzip
	if mt == oci.MediaTypeDockerManifest {
		cfgMT, layerMT = "application/vnd.docker.container.image.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mt,
		"config":        desc(cfgMT, cfg),
		"layers":        []oci.Descriptor{desc(layerMT, layer)},
	}
	for k, v := range extra {
		m[k] = v
	}
	return marshalOdd(e.t, m)
}

// marshalOdd encodes v as indented JSON with a trailing newline: valid, but
// not what a re-encoding registry would produce.
func marshalOdd(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, " ", "\t")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n', ' ')
}

// files lists the regular files under dir (relative paths).
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// blobFile is where the filesystem store keeps blob d.
func (e *env) blobFile(d digest.Digest) string {
	return filepath.Join(e.blobDir, "blobs", string(d.Algorithm()), d.Encoded()[:2], d.Encoded())
}

func (e *env) uploadFiles() []string {
	return files(e.t, filepath.Join(e.blobDir, "uploads"))
}
