package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Keyless test constants: the CI job the built-in issuer mints tokens for.
const (
	klProject  = "grp/app"
	klSHA      = "714a629c0b401fdce83e847fc9589983fc6f46bc"
	klPipeline = "574"
	klJob      = "302"
)

// klEnv is a keyless test setup: a Hallmark server (CA, log, and usually
// the registry), the hallmark CLI and real cosign v2/v3 sharing one HOME in
// which `hallmark trust init` stored the server's trust, no SIGSTORE_*
// variables, and a dead proxy for anything not on loopback (so no client
// can reach the public sigstore TUF repository).
type klEnv struct {
	t        *testing.T
	srv      *testenv.Server
	hm, cs   *tool
	cs3      *tool // nil when cosign3 is not installed (and peers are optional)
	home     string
	trustDir string // hallmark trust init's directory: trusted_root.json, signing_config.json
	legacy   string // hallmark trust export's directory: the cosign v2 PEM files too
	identity string // the certificate identity of klProject on main
}

func newKeylessEnv(t *testing.T, srv *testenv.Server) *klEnv {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	env := testenv.ToolEnv(t, home, true)
	e := &klEnv{t: t, srv: srv, home: home, trustDir: filepath.Join(home, ".hallmark"), legacy: filepath.Join(dir, "trust"),
		identity: srv.URL + "/" + klProject + "//.gitlab-ci.yml@refs/heads/main"}
	e.hm = &tool{t: t, bin: testenv.HallmarkBinary(t), dir: dir, env: env, name: "hallmark"}
	e.cs = &tool{t: t, bin: testenv.Peer(t, "cosign"), dir: dir, env: env, name: "cosign"}
	if p := testenv.LookPeer("cosign3"); p != "" {
		e.cs3 = &tool{t: t, bin: p, dir: dir, env: env, name: "cosign3"}
	} else if testenv.RequirePeers() {
		testenv.Peer(t, "cosign3")
	}
	local, err := os.ReadFile(filepath.Join(srv.DataDir, server.TrustDir, root.TrustedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	e.hm.ok("trust", "init", "--server", srv.URL, "--fingerprint", root.Fingerprint(local))
	e.hm.ok("trust", "export", "--data-dir", srv.DataDir, "--out-dir", e.legacy)
	return e
}

// with returns a copy of e whose tools report to t (e.g. a subtest, while
// e's files belong to the parent test).
func (e *klEnv) with(t *testing.T) *klEnv {
	c := *e
	c.t = t
	for _, tl := range []**tool{&c.hm, &c.cs, &c.cs3} {
		if *tl != nil {
			cp := **tl
			cp.t = t
			*tl = &cp
		}
	}
	return &c
}

// trustedRoot is the trusted root file `hallmark trust init` stored.
func (e *klEnv) trustedRoot() string { return filepath.Join(e.trustDir, root.TrustedRootFile) }

// sigstoreGo is sigstore-go's verifier with that trusted root, requiring
// an SCT, a log entry and its integrated time, as sigstore clients do.
func (e *klEnv) sigstoreGo() *sgverify.Verifier {
	e.t.Helper()
	raw, err := os.ReadFile(e.trustedRoot())
	if err != nil {
		e.t.Fatal(err)
	}
	tr, err := sgroot.NewTrustedRootFromJSON(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// legacyEnv is cosign v2's environment trust (the PEM files of trust
// export).
func (e *klEnv) legacyEnv() []string {
	return []string{"SIGSTORE_ROOT_FILE=" + filepath.Join(e.legacy, root.FulcioChainFile),
		"SIGSTORE_REKOR_PUBLIC_KEY=" + filepath.Join(e.legacy, root.RekorKeyFile),
		"SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + filepath.Join(e.legacy, root.CTLogKeyFile)}
}

// token mints a built-in issuer ID token (aud sigstore) for a job of
// project on ref main, with `hallmark token issue`.
func (e *klEnv) token(project string) string {
	e.t.Helper()
	r := e.hm.ok("token", "issue", "--server", e.srv.URL, "--data-dir", e.srv.DataDir, "--project", project, "--ref", "main",
		"--sha", klSHA, "--pipeline", klPipeline, "--job", klJob)
	return strings.TrimSpace(r.stdout)
}

// gitlabEnv is the environment of that GitLab job (what --ci-annotations
// and --ci-provenance read), consistent with the token's claims.
func (e *klEnv) gitlabEnv(project, tag string) []string {
	pu := e.srv.URL + "/" + project
	return []string{"GITLAB_CI=true", "CI_SERVER_URL=" + e.srv.URL, "CI_PROJECT_URL=" + pu, "CI_PROJECT_PATH=" + project,
		"CI_COMMIT_SHA=" + klSHA, "CI_COMMIT_SHORT_SHA=" + klSHA[:8], "CI_COMMIT_REF_NAME=main",
		"CI_PIPELINE_ID=" + klPipeline, "CI_PIPELINE_URL=" + pu + "/-/pipelines/" + klPipeline,
		"CI_JOB_ID=" + klJob, "CI_JOB_URL=" + pu + "/-/jobs/" + klJob, "CI_JOB_NAME=build", "GITLAB_USER_NAME=Alice Example",
		"CI_RUNNER_ID=7", "IMAGE_TAG=" + tag, "CI_JOB_TOKEN=secret-job-token-must-not-leak"}
}

// keylessVerifyArgs are the keyless identity flags for klProject.
func (e *klEnv) verifyArgs(extra ...string) []string {
	return append([]string{"verify", "--certificate-identity", e.identity, "--certificate-oidc-issuer", e.srv.URL}, extra...)
}

var tlogIndexRE = regexp.MustCompile(`tlog entry created with index: (\d+)`)

// rewriteSignatures rewrites the signature manifest under tag: every layer
// keeps its blob and media type, and its annotations go through edit.
func rewriteSignatures(t *testing.T, tag name.Tag, edit func(i int, ann map[string]string)) {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for i, l := range layers {
		ann := map[string]string{}
		for k, v := range m.Layers[i].Annotations {
			ann[k] = v
		}
		edit(i, ann)
		if out, err = mutate.Append(out, mutate.Addendum{Layer: l, Annotations: ann, MediaType: m.Layers[i].MediaType}); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tag, out); err != nil {
		t.Fatal(err)
	}
}

// sigTagOf is the .sig tag of repo@digest.
func sigTagOf(t *testing.T, ref name.Digest) name.Tag {
	t.Helper()
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Tag(h.Algorithm + "-" + h.Hex + ".sig")
}

// logProxy is a reverse proxy in front of a Hallmark server that can
// rewrite the transparency log's answer to entry uploads, and counts the
// requests it forwards.
type logProxy struct {
	URL      string
	requests atomic.Int64
	rewrite  atomic.Pointer[func(body []byte) []byte]
}

func newLogProxy(t *testing.T, target string) *logProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &logProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		fn := p.rewrite.Load()
		if fn == nil || resp.Request.Method != http.MethodPost || resp.Request.URL.Path != "/api/v1/log/entries" {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b = (*fn)(b)
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// editEntry applies fn to the single entry of a Rekor entry response.
func editEntry(t *testing.T, body []byte, fn func(e map[string]any)) []byte {
	var m map[string]map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("log response is not JSON: %v", err)
		return body
	}
	for _, e := range m {
		fn(e)
	}
	b, _ := json.Marshal(m)
	return b
}
