package abuse

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

// regToken asks the token endpoint for a registry token: Basic
// credentials when user is set, anonymous otherwise.
func (e *env) regToken(t *testing.T, user, pw string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {e.Host}, "scope": scopes}
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/auth/token?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok.Token == "" {
		t.Fatalf("token for %q %v: status %d, %v", user, scopes, resp.StatusCode, err)
	}
	return tok.Token
}

// regResp is a registry answer read in full.
type regResp struct {
	code   int
	header http.Header
	body   []byte
}

// regDo sends one request with a bearer token (none when empty) and
// reads the whole answer.
func (e *env) regDo(t *testing.T, method, path, bearer string, body []byte, hdr ...string) regResp {
	t.Helper()
	resp, b := testenv.Call(t, method, e.URL+path, bearer, body, hdr...)
	return regResp{resp.StatusCode, resp.Header, b}
}

// regStartUpload starts an upload session in repo and returns its Location.
func (e *env) regStartUpload(t *testing.T, repo, bearer string) string {
	t.Helper()
	r := e.regDo(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", bearer, nil)
	if r.code != http.StatusAccepted {
		t.Fatalf("start upload: %d %s", r.code, r.body)
	}
	return r.header.Get("Location")
}

// regErrorCode returns the first OCI error code of an error body.
func regErrorCode(b []byte) string {
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) != nil || len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code
}

// regPushBlob uploads data monolithically and returns its digest.
func (e *env) regPushBlob(t *testing.T, repo, bearer string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	r := e.regDo(t, http.MethodPost, "/v2/"+repo+"/blobs/uploads/?digest="+d.String(), bearer, data, "Content-Type", "application/octet-stream")
	if r.code != http.StatusCreated {
		t.Fatalf("push blob: %d %s", r.code, r.body)
	}
	return d
}

// TestUploadIDFloodKeepsHeapBounded (issue 9, defect 1): anonymous status
// requests for made-up upload ids, each id 700 KiB long, on a public
// project. The server kept a lock per id it was asked about, so 300 of
// them pinned about 200 MiB; it must keep nothing.
func TestUploadIDFloodKeepsHeapBounded(t *testing.T) {
	e := start(t, nil)
	if _, err := e.admin(t).AddProject(context.Background(), "pub/app", "public", ""); err != nil {
		t.Fatal(err)
	}
	tok := e.regToken(t, "", "", "repository:pub/app:pull")
	junk := strings.Repeat("a", 700<<10)
	client := &http.Client{}
	defer client.CloseIdleConnections()

	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	const requests = 300
	for i := range requests {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v2/pub/app/blobs/uploads/%d%s", e.URL, i, junk), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET status of a made-up upload: %d, want 404", resp.StatusCode)
		}
	}
	client.CloseIdleConnections()
	after := heap()
	// The ids alone are 210 MiB; what is left must be far less than that.
	const limit = 32 << 20
	if after > before && after-before > limit {
		t.Fatalf("heap grew by %d MiB after %d requests for made-up upload ids (limit %d MiB): the server keeps state per id a client names",
			(after-before)>>20, requests, limit>>20)
	}
	t.Logf("heap before %d MiB, after %d MiB", before>>20, after>>20)
}

// TestTruncatedChunkIsDropped (issue 9, defect 7): a PATCH announcing 100
// bytes whose sender stops after 50 must leave the upload where it was;
// the server kept the 50 bytes as if the chunk had ended there.
func TestTruncatedChunkIsDropped(t *testing.T) {
	e := start(t, nil)
	tok := e.regToken(t, "admin", e.AdminPassword, "repository:trunc/app:push,pull")
	loc := e.regStartUpload(t, "trunc/app", tok)
	r := e.regDo(t, http.MethodPatch, loc, tok, []byte("0123456789"), "Content-Type", "application/octet-stream", "Content-Range", "0-9")
	if r.code != http.StatusAccepted || r.header.Get("Range") != "0-9" {
		t.Fatalf("first chunk: %d Range %q %s", r.code, r.header.Get("Range"), r.body)
	}

	// The second chunk by hand: headers for 100 bytes, then 50, then the
	// client's half of the connection closes.
	conn, err := net.Dial("tcp", e.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/octet-stream\r\nContent-Range: 10-109\r\nContent-Length: 100\r\n\r\n%s",
		loc, e.Host, tok, strings.Repeat("x", 50))
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The server answers (or closes) once the handler is done with the
	// chunk; reading to the end waits for that.
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			t.Errorf("truncated chunk accepted: 202 Range %q", resp.Header.Get("Range"))
		}
	}

	r = e.regDo(t, http.MethodGet, loc, tok, nil)
	if r.code != http.StatusNoContent || r.header.Get("Range") != "0-9" {
		t.Fatalf("after a truncated chunk the upload is at %d Range %q; want 204 Range 0-9 (the partial chunk dropped)", r.code, r.header.Get("Range"))
	}
	// The session still works: the chunk sent again in full completes it.
	rest := []byte(strings.Repeat("x", 100))
	r = e.regDo(t, http.MethodPatch, loc, tok, rest, "Content-Type", "application/octet-stream", "Content-Range", "10-109")
	if r.code != http.StatusAccepted || r.header.Get("Range") != "0-109" {
		t.Fatalf("chunk sent again: %d Range %q %s", r.code, r.header.Get("Range"), r.body)
	}
	d := digest.FromBytes(append([]byte("0123456789"), rest...))
	if r = e.regDo(t, http.MethodPut, loc+"?digest="+d.String(), tok, nil); r.code != http.StatusCreated {
		t.Fatalf("finish upload: %d %s", r.code, r.body)
	}
}

// TestDatabaseFilesArePrivate (issue 9, defect 9): the database and its
// WAL and shared-memory files hold password and token hashes and the
// audit log; they were created 0644.
func TestDatabaseFilesArePrivate(t *testing.T) {
	e := start(t, nil)
	// A write, so that the WAL and shared-memory files exist.
	tok := e.regToken(t, "admin", e.AdminPassword, "repository:perm/app:push,pull")
	e.regPushBlob(t, "perm/app", tok, []byte("hello"))
	for _, f := range []string{"hallmark.db", "hallmark.db-wal", "hallmark.db-shm"} {
		fi, err := os.Stat(filepath.Join(e.DataDir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, perm)
		}
	}
}

// TestManifestDescriptorSizesChecked (issue 9, defect 10): a manifest
// whose descriptors claim sizes their content does not have is invalid
// (config, layer, index child); the server stored such manifests.
func TestManifestDescriptorSizesChecked(t *testing.T) {
	e := start(t, nil)
	tok := e.regToken(t, "admin", e.AdminPassword, "repository:size/app:push,pull")
	cfg := []byte(`{"a":1}`) // 7 bytes
	layer := []byte("layer content")
	cd := e.regPushBlob(t, "size/app", tok, cfg)
	ld := e.regPushBlob(t, "size/app", tok, layer)
	manifest := func(cfgSize, layerSize int) []byte {
		return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
			oci.MediaTypeOCIManifest, cd, cfgSize, ld, layerSize)
	}
	put := func(ref string, body []byte, mt string) regResp {
		return e.regDo(t, http.MethodPut, "/v2/size/app/manifests/"+ref, tok, body, "Content-Type", mt)
	}
	good := manifest(len(cfg), len(layer))
	if r := put("good", good, oci.MediaTypeOCIManifest); r.code != http.StatusCreated {
		t.Fatalf("valid manifest: %d %s", r.code, r.body)
	}
	index := func(childSize int) []byte {
		return fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
			oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest, digest.FromBytes(good), childSize)
	}
	if r := put("index", index(len(good)), oci.MediaTypeOCIIndex); r.code != http.StatusCreated {
		t.Fatalf("valid index: %d %s", r.code, r.body)
	}
	for _, tc := range []struct {
		name string
		body []byte
		mt   string
	}{
		{"config size", manifest(999999, len(layer)), oci.MediaTypeOCIManifest},
		{"config size short", manifest(len(cfg)-1, len(layer)), oci.MediaTypeOCIManifest},
		{"layer size", manifest(len(cfg), len(layer)+1), oci.MediaTypeOCIManifest},
		{"index child size", index(len(good) + 100), oci.MediaTypeOCIIndex},
	} {
		r := put("bad", tc.body, tc.mt)
		if r.code != http.StatusBadRequest || regErrorCode(r.body) != "MANIFEST_INVALID" {
			t.Errorf("%s: %d %s; want 400 MANIFEST_INVALID", tc.name, r.code, r.body)
		}
	}
	if r := e.regDo(t, http.MethodGet, "/v2/size/app/manifests/bad", tok, nil); r.code != http.StatusNotFound {
		t.Errorf("a manifest with wrong sizes was stored: GET bad = %d", r.code)
	}
}

// TestConcurrentSignersKeepEverySignature (issue 9, defect 11): signers
// attaching to the same image at once each read the ".sig" tag, added
// their layer and wrote it back, so the last writer dropped the others'
// signatures. Every signature must end up in the tag.
func TestConcurrentSignersKeepEverySignature(t *testing.T) {
	e := start(t, nil)
	ref, err := name.ParseReference(e.Host+"/sig/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: e.AdminPassword})
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatal(err)
	}
	subject, _ := img.Digest()
	repo := ref.Context()

	const signers, rounds = 6, 3
	body, err := payload.New(repo.Name(), subject.String(), nil).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, signers*rounds)
	for i := range signers {
		wg.Go(func() {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			signer := sign.KeySigner{Key: key}
			for range rounds {
				sig, err := signer.Sign(context.Background(), body)
				if err != nil {
					errs <- err
					return
				}
				var aerr error
				if i%2 == 0 { // the CLI's path: monolithic blobs, prepared before signing
					blobs := &sign.MonolithicBlobs{Keychain: staticKeychain{&authn.Basic{Username: "admin", Password: e.AdminPassword}}}
					_, aerr = sign.PrepareAttach(context.Background(), repo, subject, body, sign.AttachOptions{Blobs: blobs}).Commit(sig, nil)
				} else {
					_, aerr = sign.Attach(repo, subject, sig, sign.AttachOptions{Remote: []remote.Option{auth}})
				}
				if aerr != nil {
					errs <- fmt.Errorf("signer %d: %w", i, aerr)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sigTag := repo.Tag(strings.Replace(subject.String(), ":", "-", 1) + ".sig")
	got, err := remote.Image(sigTag, auth)
	if err != nil {
		t.Fatal(err)
	}
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, l := range m.Layers {
		seen[l.Annotations[sign.AnnotationSignature]] = true
	}
	if len(m.Layers) != signers*rounds || len(seen) != signers*rounds {
		t.Fatalf("%s holds %d layers (%d distinct signatures) after %d signatures by %d concurrent signers; every one must be kept",
			sigTag, len(m.Layers), len(seen), signers*rounds, signers)
	}
}

// staticKeychain answers every registry with the same credentials.
type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }

// TestConditionalPutRevealsNothing: If-Match / If-None-Match on a manifest
// PUT (added for defect 11) are evaluated only after access control: an
// anonymous client and a member of another project learn from a 412 no
// more than from any other refused push.
func TestConditionalPutRevealsNothing(t *testing.T) {
	e := start(t, nil)
	adm := e.admin(t)
	ctx := context.Background()
	for _, p := range []string{"priv/app", "other/app"} {
		if _, err := adm.AddProject(ctx, p, "private", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := adm.AddUser(ctx, "mallory", "mallory-password-1", false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "other/app", "mallory", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	owner := e.regToken(t, "admin", e.AdminPassword, "repository:priv/app:push,pull")
	cfg := e.regPushBlob(t, "priv/app", owner, []byte("{}"))
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[]}`, oci.MediaTypeOCIManifest, cfg)
	if r := e.regDo(t, http.MethodPut, "/v2/priv/app/manifests/v1", owner, m, "Content-Type", oci.MediaTypeOCIManifest); r.code != http.StatusCreated {
		t.Fatalf("push: %d %s", r.code, r.body)
	}
	outsider := e.regToken(t, "mallory", "mallory-password-1", "repository:other/app:push,pull", "repository:priv/app:push,pull")
	for _, tc := range []struct{ who, token string }{{"anonymous", ""}, {"other project's developer", outsider}} {
		for _, tag := range []string{"v1", "absent"} {
			r := e.regDo(t, http.MethodPut, "/v2/priv/app/manifests/"+tag, tc.token, m, "Content-Type", oci.MediaTypeOCIManifest, "If-None-Match", "*")
			if r.code != http.StatusUnauthorized {
				t.Errorf("%s, conditional PUT of %s: %d %s; want 401 whether the tag exists or not", tc.who, tag, r.code, r.body)
			}
		}
	}
}
