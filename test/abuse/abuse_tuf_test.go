package abuse

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// tufFiles lists the files of the server's TUF repository (name -> bytes),
// what /tuf/ may serve and nothing else.
func tufFiles(t *testing.T, e *env) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	dir := filepath.Join(e.DataDir, server.TUFDir)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// unchanged fails the test if the repository's files are not before.
func unchanged(t *testing.T, e *env, before map[string][]byte, what string) {
	t.Helper()
	after := tufFiles(t, e)
	if len(after) != len(before) {
		t.Errorf("%s changed the repository: %d files, were %d", what, len(after), len(before))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed %s", what, name)
		}
	}
}

// rawGet sends path verbatim (no client-side cleaning or escaping) and
// returns the status code and body.
func rawGet(t *testing.T, host, method, path string) (int, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, path, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %q: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body
}

// TestTUFTraversalAndOddPaths: nothing outside the repository's layout is
// served under /tuf/: not the keys next to it (traversal, encoded or not),
// not the lock file, not odd or oversized names. Every 200 is a
// repository file, byte for byte.
func TestTUFTraversalAndOddPaths(t *testing.T) {
	e := start(t, nil)
	files := tufFiles(t, e)
	keys, _ := filepath.Glob(filepath.Join(e.DataDir, "keys", "tuf-*.pem"))
	if len(keys) != 4 {
		t.Fatalf("%d TUF keys in the key dir, want 4", len(keys))
	}
	key := filepath.Base(keys[0])
	var target string
	for name := range files {
		if strings.HasPrefix(name, "targets/") {
			target = name
		}
	}
	paths := []string{
		"/tuf/../keys/" + key, "/tuf/%2e%2e/keys/" + key, "/tuf/%2E%2E%2Fkeys%2F" + key, "/tuf/..%2fkeys%2f" + key,
		"/tuf/targets/../../keys/" + key, "/tuf/targets/..%2f..%2fkeys%2f" + key, "/tuf//keys/" + key, "/tuf/./root.json/../../keys/" + key,
		"/tuf/..\\keys\\" + key, "/tuf/.lock", "/tuf/%2elock", "/tuf/targets/", "/tuf/targets", "/tuf/", "/tuf",
		"/tuf/" + target + "%00", "/tuf/" + target + "/", "/tuf/" + strings.ToUpper(target), "/tuf/" + target + ".pem",
		"/tuf/root.json%00.pem", "/tuf/1.root.json;x", "/tuf/1.root.json?x=../../keys", "/tuf/999999999999999999999.root.json",
		"/tuf/-1.root.json", "/tuf/1e3.root.json", "/tuf/0x1.root.json", "/tuf/%31.root.json", "/tuf/1.ROOT.JSON",
		"/tuf/targets/" + strings.Repeat("f", 64) + ".trusted_root.json", "/tuf/targets/" + strings.Repeat("f", 64) + "./../../keys",
		"/tuf/" + strings.Repeat("a", 60000), "/tuf/" + strings.Repeat("../", 5000) + "etc/passwd", "/tuf/\u00e9.json",
		"/tuf/%ff%fe.json", "/keys/" + key, "/" + key,
	}
	for _, p := range paths {
		for _, m := range []string{"GET", "HEAD"} {
			code, body := rawGet(t, e.Host, m, p)
			if bytes.Contains(body, []byte("PRIVATE KEY")) {
				t.Fatalf("%s %q leaked a private key", m, p)
			}
			if code == http.StatusOK {
				name, _ := url.PathUnescape(strings.TrimPrefix(strings.SplitN(p, "?", 2)[0], "/tuf/"))
				if want, ok := files[name]; !ok || m == "GET" && !bytes.Equal(body, want) {
					t.Errorf("%s %q: 200 with %d bytes that are not the repository file %q", m, p, len(body), name)
				}
			} else if code >= 500 {
				t.Errorf("%s %q: %d", m, p, code)
			}
		}
	}
}

// TestTUFMethodsAndBodies: only GET and HEAD; a write method with a large
// body is refused and changes nothing.
func TestTUFMethodsAndBodies(t *testing.T) {
	e := start(t, nil)
	before := tufFiles(t, e)
	big := bytes.Repeat([]byte("x"), 8<<20)
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		for _, p := range []string{"/tuf/timestamp.json", "/tuf/2.root.json", "/tuf/targets/" + strings.Repeat("0", 64) + ".trusted_root.json"} {
			req, _ := http.NewRequest(m, e.URL+p, bytes.NewReader(big))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may close the connection before reading an
				// unwanted body; that is a refusal too.
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, p, resp.StatusCode)
			}
		}
	}
	unchanged(t, e, before, "write requests")
}

// TestTUFFloodSignsNothing: an unauthenticated flood (bounded: 16 workers,
// 3000 requests) of metadata, targets and probes for root versions that do
// not exist is served from what is stored: no request signs or writes
// anything, none fails with a server error, and the server still answers.
func TestTUFFloodSignsNothing(t *testing.T) {
	e := start(t, nil)
	before := tufFiles(t, e)
	names := []string{"/tuf/timestamp.json", "/tuf/root.json", "/tuf/1.root.json", "/tuf/1.snapshot.json", "/tuf/1.targets.json"}
	for name := range before {
		if strings.HasPrefix(name, "targets/") {
			names = append(names, "/tuf/"+name)
		}
	}
	const workers, perWorker = 16, 190
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	var maxBody int
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				p := names[(w+i)%len(names)]
				if i%3 == 0 {
					p = fmt.Sprintf("/tuf/%d.root.json", 2+w*perWorker+i) // probes past the newest root
				}
				resp, err := client.Get(e.URL + p)
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				maxBody = max(maxBody, int(n))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if codes[http.StatusOK] == 0 || codes[http.StatusNotFound] == 0 || len(codes) != 2 {
		t.Errorf("status codes %v, want only 200 and 404", codes)
	}
	if maxBody > 64<<10 {
		t.Errorf("a /tuf/ response of %d bytes: the repository's files are a few KiB", maxBody)
	}
	unchanged(t, e, before, "the flood")
	if resp, err := http.Get(e.URL + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("server unhealthy after the flood: %v", err)
	}
}

// TestTUFReadersNeverSeePartialFiles: while the timestamp key is rotated
// over and over (new root versions, new timestamps), every timestamp.json
// and root.json a reader gets is whole, signed metadata.
func TestTUFReadersNeverSeePartialFiles(t *testing.T) {
	e := start(t, nil)
	repo, closeRepo, err := server.OpenTUF(context.Background(), server.Database{DataDir: e.DataDir}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRepo()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	reads := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				for _, p := range []string{"/tuf/timestamp.json", "/tuf/root.json"} {
					resp, err := http.Get(e.URL + p)
					if err != nil {
						t.Error(err)
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var perr error
					if p == "/tuf/timestamp.json" {
						_, perr = metadata.Timestamp().FromBytes(b)
					} else {
						_, perr = metadata.Root().FromBytes(b)
					}
					if resp.StatusCode != 200 || perr != nil {
						t.Errorf("GET %s during rotations: %d %v", p, resp.StatusCode, perr)
					}
					mu.Lock()
					reads++
					mu.Unlock()
				}
			}
		}()
	}
	for range 20 {
		if _, _, err := repo.Rotate(ctx, tuf.RoleTimestamp); err != nil {
			t.Error(err)
			break
		}
	}
	cancel()
	wg.Wait()
	if reads == 0 {
		t.Fatal("no reads during the rotations")
	}
}
