package cli_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// The interop tests run the real hallmark binary and the real cosign v2.6.5
// against a real Hallmark server and against the distribution registry
// v3.1.2, so that Hallmark's client is shown not to depend on its own server.

type registryUnderTest struct {
	name string
	host string
}

func registries(t *testing.T) []registryUnderTest {
	t.Helper()
	testenv.Peer(t, "cosign")
	return []registryUnderTest{
		{"hallmark", testenv.StartServer(t, nil).Addr},
		{"distribution", startDistribution(t)},
	}
}

// verifyArgs are the flags of a key-based verification without a log, for
// both tools.
func verifyArgs(pub string, extra ...string) []string {
	return append([]string{"verify", "--key", pub, "--insecure-ignore-tlog"}, extra...)
}

// payloads parses what cosign/hallmark verify print on stdout in json mode:
// per image a blank line and one JSON array.
func payloads(t *testing.T, stdout string) [][]map[string]any {
	t.Helper()
	var out [][]map[string]any
	for _, line := range strings.Split(stdout, "\n") {
		if line == "" {
			continue
		}
		var arr []map[string]any
		if err := json.Unmarshal([]byte(line), &arr); err != nil {
			t.Fatalf("stdout line is not a JSON array: %q: %v", line, err)
		}
		out = append(out, arr)
	}
	return out
}

func optional(t *testing.T, p map[string]any) map[string]any {
	t.Helper()
	o, _ := p["optional"].(map[string]any)
	return o
}

func TestInteropCosign(t *testing.T) {
	for _, reg := range registries(t) {
		t.Run(reg.name, func(t *testing.T) {
			hm, cs := newTools(t)
			hm.ok("generate-key-pair", "--output-key-prefix", "hallmark")
			cs.ok("generate-key-pair")
			for _, f := range []string{"hallmark.key", "hallmark.pub", "cosign.key", "cosign.pub"} {
				if _, err := os.Stat(hm.path(f)); err != nil {
					t.Fatalf("key file %s not written: %v", f, err)
				}
			}

			t.Run("hallmark signs, cosign verifies", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/hm-signs", "v1")
				r := hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "-a", "env=prod", "-a", "team=core,pipeline=42", img.String())
				if r.stdout != "" || !strings.Contains(r.stderr, "Pushing signature to: "+img.Context().Name()) {
					t.Errorf("sign output differs from cosign's: %s", r)
				}
				want := cs.ok(verifyArgs("hallmark.pub", "-a", "env=prod", "-a", "team=core", "-a", "pipeline=42", img.String())...)
				got := hm.ok(verifyArgs("hallmark.pub", "-a", "env=prod", "-a", "team=core", "-a", "pipeline=42", img.String())...)
				if got.stdout != want.stdout {
					t.Errorf("stdout differs\nhallmark: %q\ncosign:   %q", got.stdout, want.stdout)
				}
				if got.stderr != want.stderr {
					t.Errorf("stderr differs\nhallmark: %q\ncosign:   %q", got.stderr, want.stderr)
				}
				p := payloads(t, got.stdout)
				if len(p) != 1 || len(p[0]) != 1 || optional(t, p[0][0])["team"] != "core" {
					t.Fatalf("unexpected payloads %v", p)
				}
				cs.fail(12, verifyArgs("hallmark.pub", "-a", "env=dev", img.String())...)
				cs.fail(12, verifyArgs("cosign.pub", img.String())...)
			})

			t.Run("cosign signs, hallmark verifies", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/cosign-signs", "v1")
				cs.ok("sign", "--key", "cosign.key", "--tlog-upload=false", "-a", "env=prod", "-a", "html=<a&b>", img.String())
				for _, extra := range [][]string{
					{"-a", "env=prod"},
					{"-a", "html=<a&b>", "-o", "text"},
					nil,
				} {
					args := verifyArgs("cosign.pub", append(extra, img.String())...)
					want, got := cs.ok(args...), hm.ok(args...)
					if got.stdout != want.stdout || got.stderr != want.stderr {
						t.Errorf("%v: output differs\nhallmark: %s\ncosign:   %s", extra, got, want)
					}
				}
				r := hm.fail(12, verifyArgs("cosign.pub", "-a", "env=dev", img.String())...)
				if !strings.Contains(r.stderr, `signature 1 of 1 (layer sha256:`) ||
					!strings.Contains(r.stderr, `annotation check failed: annotation "env" is "prod" in the signed payload, want "dev"`) {
					t.Errorf("mismatch message does not name the signature, the annotation and both values:\n%s", r.stderr)
				}
				hm.fail(12, verifyArgs("hallmark.pub", img.String())...)
			})

			t.Run("cosign key, hallmark signs", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/cosign-key", "v1")
				hm.ok("sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "-a", "k=v", img.String())
				cs.ok(verifyArgs("cosign.pub", "-a", "k=v", img.String())...)
			})

			t.Run("hallmark key, cosign signs", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/hallmark-key", "v1")
				cs.ok("sign", "--key", "hallmark.key", "--tlog-upload=false", "-a", "k=v", img.String())
				hm.ok(verifyArgs("hallmark.pub", "-a", "k=v", img.String())...)
			})

			t.Run("both sign one image, signatures append", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/both", "v1")
				hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "-a", "by=hallmark", img.String())
				cs.ok("sign", "--key", "cosign.key", "--tlog-upload=false", "-a", "by=cosign", img.String())
				hm.ok("sign", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "-a", "by=hallmark-with-cosign-key", img.String())
				// Same key and payload again: cosign's duplicate detection,
				// in both tools, adds nothing.
				hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "-a", "by=hallmark", img.String())
				cs.ok("sign", "--key", "hallmark.key", "--tlog-upload=false", "-a", "by=hallmark", img.String())
				m, err := remote.Get(img.Context().Tag("sha256-" + img.DigestStr()[len("sha256:"):] + ".sig"))
				if err != nil {
					t.Fatal(err)
				}
				var man struct{ Layers []json.RawMessage }
				json.Unmarshal(m.Manifest, &man)
				if len(man.Layers) != 3 {
					t.Fatalf("signature manifest has %d layers, want 3 (duplicates must not be appended)", len(man.Layers))
				}
				// Layer order, stdout and the "2 of 3 failed" diagnosis.
				for _, pub := range []string{"hallmark.pub", "cosign.pub"} {
					args := verifyArgs(pub, img.String())
					want, got := cs.ok(args...), hm.ok(args...)
					if got.stdout != want.stdout {
						t.Errorf("%s: stdout differs\nhallmark: %q\ncosign:   %q", pub, got.stdout, want.stdout)
					}
				}
				p := payloads(t, hm.ok(verifyArgs("cosign.pub", img.String())...).stdout)
				if len(p[0]) != 2 || optional(t, p[0][0])["by"] != "cosign" || optional(t, p[0][1])["by"] != "hallmark-with-cosign-key" {
					t.Errorf("cosign.pub should verify layers 2 and 3 in order, got %v", p)
				}
			})

			t.Run("tag reference and text output", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/tagged", "release-1")
				tag := img.Context().Tag("release-1").String()
				hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "-a", "tag=release-1", tag)
				for _, out := range []string{"json", "text"} {
					args := verifyArgs("hallmark.pub", "-a", "tag=release-1", "-o", out, tag)
					want, got := cs.ok(args...), hm.ok(args...)
					if got.stdout != want.stdout || got.stderr != want.stderr {
						t.Errorf("-o %s: output differs\nhallmark: %s\ncosign:   %s", out, got, want)
					}
				}
			})

			t.Run("exit codes", func(t *testing.T) {
				unsigned := pushImage(t, reg.host, "interop/unsigned", "v1")
				signed := pushImage(t, reg.host, "interop/exit", "v1")
				hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "-a", "env=prod", signed.String())
				missingTag := signed.Context().Tag("no-such-tag").String()
				for _, tc := range []struct {
					name string
					code int
					args []string
					msg  string
				}{
					{"no signatures", 10, verifyArgs("hallmark.pub", unsigned.String()), "no signatures found"},
					{"no signatures by tag", 10, verifyArgs("hallmark.pub", unsigned.Context().Tag("v1").String()), "no signatures found"},
					{"tag not found", 11, verifyArgs("hallmark.pub", missingTag), "image tag not found"},
					{"annotation mismatch", 12, verifyArgs("hallmark.pub", "-a", "env=dev", signed.String()), "no matching signatures"},
					{"empty value does not match a missing key", 12, verifyArgs("hallmark.pub", "-a", "absent=", signed.String()), "no matching signatures"},
					{"wrong key", 12, verifyArgs("cosign.pub", signed.String()), "no matching signatures"},
				} {
					t.Run(tc.name, func(t *testing.T) {
						c := cs.fail(tc.code, tc.args...)
						h := hm.fail(tc.code, tc.args...)
						if !strings.Contains(c.stderr, tc.msg) || !strings.Contains(h.stderr, "Error: "+tc.msg) {
							t.Errorf("want %q in both\nhallmark: %s\ncosign: %s", tc.msg, h.stderr, c.stderr)
						}
						if h.stdout != "" {
							t.Errorf("hallmark printed to stdout on failure: %q", h.stdout)
						}
					})
				}
			})

			t.Run("recursive index", func(t *testing.T) {
				idx, children := pushIndex(t, reg.host, "interop/multi", "v1")
				hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "--recursive", "-a", "arch=any", idx.Context().Tag("v1").String())
				for _, d := range append([]name.Digest{idx}, children...) {
					cs.ok(verifyArgs("hallmark.pub", "-a", "arch=any", d.String())...)
				}
				r := hm.ok(verifyArgs("hallmark.pub", "--recursive", "-a", "arch=any", idx.Context().Tag("v1").String())...)
				p := payloads(t, r.stdout)
				if len(p) != 3 {
					t.Fatalf("recursive verify printed %d arrays, want 3 (index + 2 platforms): %s", len(p), r)
				}
				for i, d := range append([]name.Digest{idx}, children...) {
					crit := p[i][0]["critical"].(map[string]any)
					if got := crit["image"].(map[string]any)["docker-manifest-digest"]; got != d.DigestStr() {
						t.Errorf("array %d is for %v, want %s", i, got, d.DigestStr())
					}
				}
				// Without --recursive only the index is signed.
				other, kids := pushIndex(t, reg.host, "interop/multi-flat", "v1")
				hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", other.String())
				cs.ok(verifyArgs("hallmark.pub", other.String())...)
				cs.fail(10, verifyArgs("hallmark.pub", kids[0].String())...)
				hm.fail(10, verifyArgs("hallmark.pub", "--recursive", other.String())...)
			})

			t.Run("COSIGN_REPOSITORY", func(t *testing.T) {
				img := pushImage(t, reg.host, "interop/app-in-repo", "v1")
				env := []string{"COSIGN_REPOSITORY=" + reg.host + "/interop/signatures"}
				r := hm.okEnv(env, "sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", img.String())
				if !strings.Contains(r.stderr, "Pushing signature to: interop/signatures\n") {
					t.Errorf("want cosign's 'Pushing signature to: interop/signatures', got %s", r.stderr)
				}
				want := cs.okEnv(env, verifyArgs("hallmark.pub", img.String())...)
				got := hm.okEnv(env, verifyArgs("hallmark.pub", img.String())...)
				if got.stdout != want.stdout {
					t.Errorf("stdout differs\nhallmark: %q\ncosign:   %q", got.stdout, want.stdout)
				}
				if p := payloads(t, got.stdout); p[0][0]["critical"].(map[string]any)["identity"].(map[string]any)["docker-reference"] != img.Context().Name() {
					t.Errorf("docker-reference must name the image's repository, got %v", p)
				}
				cs.fail(10, verifyArgs("hallmark.pub", img.String())...)
				hm.fail(10, verifyArgs("hallmark.pub", img.String())...)
			})

			t.Run("batch verify", func(t *testing.T) {
				var refs []string
				var want strings.Builder
				for i := range 4 {
					img := pushImage(t, reg.host, "interop/batch", "v"+string(rune('0'+i)))
					hm.ok("sign", "--new-bundle-format=false", "--key", "hallmark.key", "--tlog-upload=false", "-a", "n="+string(rune('0'+i)), img.String())
					refs = append(refs, img.String())
					want.WriteString(cs.ok(verifyArgs("hallmark.pub", img.String())...).stdout)
				}
				list := hm.path("images.txt")
				os.WriteFile(list, []byte("# batch\n"+refs[1]+"\n\n"+refs[2]+"\n"), 0o600)
				got := hm.ok(verifyArgs("hallmark.pub", "--images-from", "images.txt", refs[3])...)
				// Arguments first, then the file, in order.
				wantOrder := payloads(t, cs.ok(verifyArgs("hallmark.pub", refs[3], refs[1], refs[2])...).stdout)
				if gotP := payloads(t, got.stdout); len(gotP) != 3 || !jsonEqual(gotP, wantOrder) {
					t.Errorf("batch output differs from cosign's for the same images:\n%s", got.stdout)
				}
				stdin := hm.runEnv(nil, strings.Join(refs, "\n")+"\n", verifyArgs("hallmark.pub", "--images-from", "-")...)
				if stdin.code != 0 || stdin.stdout != want.String() {
					t.Errorf("--images-from - output differs from cosign's per-image output:\n%s\nwant stdout %q", stdin, want.String())
				}
				// One unsigned image: the others still print, exit code 10.
				unsigned := pushImage(t, reg.host, "interop/batch", "unsigned")
				r := hm.fail(10, verifyArgs("hallmark.pub", refs[0], unsigned.String(), refs[1])...)
				if len(payloads(t, r.stdout)) != 2 || !strings.Contains(r.stderr, "1 of 3 images failed verification") ||
					!strings.Contains(r.stderr, "Error: "+unsigned.Name()+": no signatures found") {
					t.Errorf("partial batch failure: %s", r)
				}
			})
		})
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
