package tuf_test

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// TestHandler: the layout's files are served with their caching headers;
// anything else, including traversal and names outside the layout, is a
// 404 (what TUF clients expect past the newest root), and methods other
// than GET and HEAD are refused.
func TestHandler(t *testing.T) {
	f := newFixture(t, tuf.Config{})
	f.publish(sigstoreTargets(t))
	st := f.status()
	target := "targets/" + st.Targets[tuf.TrustedRootTarget] + "." + tuf.TrustedRootTarget
	for _, tc := range []struct {
		method, path string
		code         int
		cache        string
	}{
		{"GET", "/root.json", 200, "no-cache"},
		{"GET", "/1.root.json", 200, "no-cache"},
		{"GET", "/timestamp.json", 200, "no-cache"},
		{"GET", "/1.snapshot.json", 200, "no-cache"},
		{"GET", "/1.targets.json", 200, "no-cache"},
		{"HEAD", "/timestamp.json", 200, "no-cache"},
		{"GET", "/" + target, 200, "immutable"},
		{"GET", "/2.root.json", 404, ""},
		{"GET", "/0.root.json", 404, ""},
		{"GET", "/01.root.json", 404, ""},
		{"GET", "/-1.root.json", 404, ""},
		{"GET", "/99999999999.root.json", 404, ""},
		{"GET", "/1.mirror.json", 404, ""},
		{"GET", "/snapshot.json", 404, ""},
		{"GET", "/targets.json", 404, ""},
		{"GET", "/targets/" + tuf.TrustedRootTarget, 404, ""},
		{"GET", "/targets/" + strings.Repeat("0", 64) + "." + tuf.TrustedRootTarget, 404, ""},
		{"GET", "/targets/" + strings.ToUpper(st.Targets[tuf.TrustedRootTarget]) + "." + tuf.TrustedRootTarget, 404, ""},
		{"GET", "/targets/../root.json", 404, ""},
		{"GET", "/%2e%2e/keys/x.pem", 404, ""},
		{"GET", "/.lock", 404, ""},
		{"GET", "/", 404, ""},
		{"GET", "/targets/", 404, ""},
		{"GET", "/" + strings.Repeat("a", 10000), 404, ""},
		{"POST", "/timestamp.json", 405, ""},
		{"PUT", "/timestamp.json", 405, ""},
		{"DELETE", "/root.json", 405, ""},
	} {
		req, _ := http.NewRequest(tc.method, f.url+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.path, resp.StatusCode, tc.code, body)
			continue
		}
		if tc.code != 200 {
			continue
		}
		if got := resp.Header.Get("Cache-Control"); !strings.Contains(got, tc.cache) {
			t.Errorf("%s %s: Cache-Control %q, want %q", tc.method, tc.path, got, tc.cache)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: Content-Type %q", tc.method, tc.path, ct)
		}
		if tc.method == "HEAD" && len(body) != 0 {
			t.Errorf("HEAD returned a body")
		}
	}
}

// TestCheckName: the layout's names, and a sample of what must never map
// to a file.
func TestCheckName(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, ok := range []string{"root.json", "timestamp.json", "1.root.json", "2147483647.root.json", "12.snapshot.json", "3.targets.json",
		"targets/" + hash + ".trusted_root.json", "targets/" + hash + ".signing_config.v0.2.json", "targets/" + hash + ".a"} {
		if err := tuf.CheckName(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/root.json", "root.json/", "./root.json", "0.root.json", "2147483648.root.json", "+1.root.json", "1.root.json.bak",
		"1.timestamp.json", "snapshot.json", "targets.json", "targets/x", "targets/" + hash, "targets/" + hash + ".", "targets/" + hash + "..",
		"targets/" + hash + ".a/b", "targets/" + hash + ".a\\b", "targets/" + hash + ".a b", "targets/" + hash + ".\x00", "targets/../root.json",
		"../root.json", "keys/tuf.pem", ".lock", "targets/" + hash + "." + strings.Repeat("a", 101), "TIMESTAMP.JSON"} {
		if err := tuf.CheckName(bad); !errors.Is(err, tuf.ErrBadName) {
			t.Errorf("%q accepted (%v)", bad, err)
		}
	}
}

// FuzzCheckName: a name CheckName accepts stays inside the repository
// directory, has no empty, dot or dot-dot element, and uses only the
// layout's characters.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"root.json", "7.snapshot.json", "targets/" + strings.Repeat("0", 64) + ".trusted_root.json", "../x", "targets/..", "1..root.json"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if tuf.CheckName(name) != nil {
			return
		}
		if filepath.Clean(name) != name || filepath.IsAbs(name) || strings.HasPrefix(name, "..") || !filepath.IsLocal(name) {
			t.Fatalf("%q accepted but is not a clean local path", name)
		}
		parts := strings.Split(name, "/")
		if len(parts) > 2 || len(parts) == 2 && parts[0] != "targets" {
			t.Fatalf("%q accepted outside the layout", name)
		}
		for _, p := range parts {
			if p == "" || p == "." || p == ".." || strings.HasPrefix(p, ".") {
				t.Fatalf("%q accepted with element %q", name, p)
			}
		}
		for _, c := range name {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-/", c)) {
				t.Fatalf("%q accepted with %q", name, c)
			}
		}
	})
}
