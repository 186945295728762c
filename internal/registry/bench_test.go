package registry_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	blobfs "github.com/hallmark-dev/hallmark/internal/blob/fs"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/registry"
)

// benchHandler is a registry handler over a real filesystem blob store and
// a real SQLite file, called directly (no network) so the benchmarks
// measure the handler, the stores and the database.
func benchHandler(b *testing.B) http.Handler {
	h, _ := benchHandlerDir(b)
	return h
}

// benchHandlerDir also returns the blob store's directory.
func benchHandlerDir(b *testing.B) (http.Handler, string) {
	b.Helper()
	dir := b.TempDir()
	blobs, err := blobfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		b.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "hallmark.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	h, err := registry.New(blobs, store, nil, registry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	return h, filepath.Join(dir, "blobs")
}

func benchDo(b *testing.B, h http.Handler, method, target string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	b.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func benchDigest(p []byte) string {
	s := sha256.Sum256(p)
	return "sha256:" + hex.EncodeToString(s[:])
}

// benchPushImage pushes a config, one layer and a manifest tagged v1 and
// returns the manifest digest.
func benchPushImage(b *testing.B, h http.Handler, repo string) (string, []byte) {
	b.Helper()
	layer := make([]byte, 4096)
	rand.Read(layer)
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	for _, blob := range [][]byte{layer, config} {
		w := benchDo(b, h, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+benchDigest(blob), blob)
		if w.Code != http.StatusCreated {
			b.Fatalf("push blob: %d %s", w.Code, w.Body)
		}
	}
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		benchDigest(config), len(config), benchDigest(layer), len(layer))
	w := benchDo(b, h, http.MethodPut, "/v2/"+repo+"/manifests/v1", m, "Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if w.Code != http.StatusCreated {
		b.Fatalf("push manifest: %d %s", w.Code, w.Body)
	}
	return benchDigest(m), m
}

// BenchmarkManifestGet measures GET of a manifest by tag and by digest
// through the handler (routing, SQLite lookup, response), serially and in
// parallel.
func BenchmarkManifestGet(b *testing.B) {
	h := benchHandler(b)
	const repo = "bench/group/app"
	dg, m := benchPushImage(b, h, repo)
	accept := "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
	for _, c := range []struct{ name, ref string }{{"tag", "v1"}, {"digest", dg}} {
		target := "/v2/" + repo + "/manifests/" + c.ref
		check := func(w *httptest.ResponseRecorder) {
			if w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), m) {
				b.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
			}
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				check(benchDo(b, h, http.MethodGet, target, nil, "Accept", accept))
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, target, nil)
					req.Header.Set("Accept", accept)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Errorf("GET %s: %d", target, w.Code)
						return
					}
				}
			})
		})
	}
}

// BenchmarkUpload measures a monolithic POST+PUT blob upload through the
// handler: session creation, streaming append with hashing, fsync, commit
// and the metadata link. Each stored blob file is removed (untimed) so a
// long -benchtime does not fill the disk.
func BenchmarkUpload(b *testing.B) {
	for _, size := range []int{64 << 10, 8 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			h, blobDir := benchHandlerDir(b)
			data := make([]byte, size)
			rand.Read(data)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				copy(data, fmt.Sprintf("%016d", i)) // new content every time
				dg := benchDigest(data)
				b.StartTimer()
				w := benchDo(b, h, http.MethodPost, "/v2/bench/repo/blobs/uploads/", nil)
				if w.Code != http.StatusAccepted {
					b.Fatalf("POST: %d %s", w.Code, w.Body)
				}
				w = benchDo(b, h, http.MethodPut, w.Header().Get("Location")+"?digest="+dg, data)
				if w.Code != http.StatusCreated {
					b.Fatalf("PUT: %d %s", w.Code, w.Body)
				}
				b.StopTimer()
				hex := dg[len("sha256:"):]
				if err := os.Remove(filepath.Join(blobDir, "blobs", "sha256", hex[:2], hex)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkBlobGet measures a blob GET through the handler (metadata
// lookup, open, ServeContent) into a recorder; the sendfile path itself
// needs a real connection and is measured by bench/run.sh.
func BenchmarkBlobGet(b *testing.B) {
	h := benchHandler(b)
	data := make([]byte, 1<<20)
	rand.Read(data)
	dg := benchDigest(data)
	if w := benchDo(b, h, http.MethodPost, "/v2/bench/repo/blobs/uploads/?digest="+dg, data); w.Code != http.StatusCreated {
		b.Fatalf("push: %d %s", w.Code, w.Body)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if w := benchDo(b, h, http.MethodGet, "/v2/bench/repo/blobs/"+dg, nil); w.Code != http.StatusOK || w.Body.Len() != len(data) {
			b.Fatalf("GET: %d, %d bytes", w.Code, w.Body.Len())
		}
	}
}
