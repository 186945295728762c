package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// The reference pipeline: examples/gitlab/.gitlab-ci.yml. Its jobs'
// before_script and script lines run as written, in bash, after
// `eval "$(hallmark ci job ...)"`; only the tool installation steps
// (!reference [.install-*, script]) are left out, the test providing the
// tools on PATH.
const pipelineFile = "examples/gitlab/.gitlab-ci.yml"

// annotationKeys are the eleven annotations of GitLab's tutorial.
var annotationKeys = []string{
	"com.gitlab.ci.user.name", "com.gitlab.ci.pipeline.id", "com.gitlab.ci.pipeline.url", "com.gitlab.ci.job.id",
	"com.gitlab.ci.job.url", "com.gitlab.ci.commit.sha", "com.gitlab.ci.commit.ref.name", "com.gitlab.ci.project.path",
	"org.opencontainers.image.source", "org.opencontainers.image.revision", "tag",
}

// TestReferencePipeline is issue 5's end-to-end acceptance test: `hallmark
// server` (the binary, auth on), a Docker engine, and the reference GitLab
// pipeline's lines as written - docker login, docker build --pull (FROM
// scratch), docker push, IMAGE_DIGEST from docker inspect, sign with the
// eleven annotations, verify --annotations tag=... --certificate-identity
// ... --certificate-oidc-issuer ... | jq . - with real cosign v2.6.5, real
// cosign v3 and hallmark; then the annotations in the verify output and in
// Hallmark's provenance search are checked against what the job was.
func TestReferencePipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end pipeline test skipped in -short mode")
	}
	dockerHost := testenv.DockerHost(t, "THE REFERENCE PIPELINE END TO END")
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	jobs := loadPipeline(t, filepath.Join(root, pipelineFile))
	tools := map[string]string{
		"jq": testenv.Peer(t, "jq"), "wget": lookTool(t, "wget"), "sha256sum": lookTool(t, "sha256sum"),
		"docker": lookTool(t, "docker"), "hallmark": testenv.HallmarkBinary(t),
	}
	srv := startHallmark(t, tools["hallmark"])

	type variant struct {
		job, cosignPeer, project string
		oidcLogin                bool // log in with an ID token (GitLab's HALLMARK_ID_TOKEN) instead of the job token
		// gitlabTokens: Hallmark as GitLab's registry (--auth=token) with a
		// GitLab-style /jwt/auth issuing the registry tokens.
		gitlabTokens bool
	}
	variants := []variant{
		{job: "sign-with-cosign", cosignPeer: "cosign", project: "e2e/app-cosign"},
		{job: "sign-with-cosign-v3", cosignPeer: "cosign3", project: "e2e/app-cosign3", oidcLogin: true},
		{job: "sign-with-hallmark", project: "e2e/app-hallmark"},
		{job: "sign-with-cosign-v3-gitlab-tokens", cosignPeer: "cosign3", project: "e2e/app-gitlab", gitlabTokens: true},
	}
	for name := range jobs {
		if !slices.ContainsFunc(variants, func(v variant) bool { return v.job == name }) {
			t.Errorf("job %s of %s is not run by this test", name, pipelineFile)
		}
	}
	for _, vt := range variants {
		t.Run(vt.job, func(t *testing.T) {
			job, ok := jobs[vt.job]
			if !ok {
				t.Fatalf("%s has no job %s", pipelineFile, vt.job)
			}
			tl := maps.Clone(tools)
			if vt.cosignPeer != "" {
				tl["cosign"] = testenv.Peer(t, vt.cosignPeer)
			}
			if vt.gitlabTokens {
				runWithGitLabTokens(t, job, dockerHost, tl, vt.project)
				return
			}
			run := newPipelineRun(t, srv, dockerHost, tl, vt.project)
			run.oidcLogin = vt.oidcLogin
			run.execute(t, job)
			run.check(t, srv, vt.cosignPeer == "cosign")
		})
	}
	// The server never logged a secret it handed out or was given.
	for _, s := range srv.secrets() {
		if strings.Contains(srv.Logs.String(), s) {
			t.Errorf("a token handed to the pipeline appears in the server log")
		}
	}
}

// lookTool finds a tool the pipeline's lines use; a missing one skips the
// test loudly, or fails it under HALLMARK_REQUIRE_PEERS=1 or
// HALLMARK_REQUIRE_DOCKER=1.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := "TOOL NOT INSTALLED, THE REFERENCE PIPELINE WAS NOT RUN: " + name + " (bash scripts/install-peers all installs it)"
		if testenv.RequirePeers() || testenv.RequireDocker() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// hallmarkProc is a `hallmark server` child process and the secrets
// handed out to the pipeline, which its log must never show.
type hallmarkProc struct {
	*testenv.ServerProcess
	mu        sync.Mutex
	handedOut []string
}

func (p *hallmarkProc) secrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.handedOut)
}

// startHallmark runs `hallmark server` with its defaults (auth on) and
// the extra flags args on a random loopback port and a temp data dir,
// debug logs captured.
func startHallmark(t *testing.T, bin string, args ...string) *hallmarkProc {
	t.Helper()
	env := append(os.Environ(), "HOME="+t.TempDir())
	return &hallmarkProc{ServerProcess: testenv.StartServerProcess(t, bin, t.TempDir(), env, append([]string{"--log-level", "debug"}, args...)...)}
}

// runWithGitLabTokens runs the job with Hallmark as GitLab's container
// registry (issue 12): GitLab cannot run here, so testenv.GitLabJWT plays
// its /jwt/auth, minting registry tokens in GitLab's format for the job's
// CI job token (push and pull in the job's project); the server runs with
// --auth=token trusting it. The job gets what GitLab gives it - the job
// token as CI_JOB_TOKEN and CI_REGISTRY_PASSWORD - and the root.json of
// the server's TUF repository as the file variable HALLMARK_TUF_ROOT; the
// rest is the tutorial's lines as written, with cosign v3. Besides the
// usual checks, docker and cosign must have taken their tokens from the
// GitLab endpoint and the audit log must name the GitLab user.
func runWithGitLabTokens(t *testing.T, job pipelineJob, dockerHost string, tools map[string]string, project string) {
	b := make([]byte, 16)
	rand.Read(b)
	jobToken := "glcbt-64_" + hex.EncodeToString(b)
	g := testenv.StartGitLabJWT(t, testenv.GitLabJWTConfig{Logins: []testenv.GitLabLogin{{User: "gitlab-ci-token", Password: jobToken,
		Subject: "alice", AuthType: "build", Grants: map[string][]string{project: {"pull", "push"}}}}})
	srv := startHallmark(t, tools["hallmark"], "--auth", "token", "--token-realm", g.Realm, "--token-service", g.Service,
		"--token-issuer", g.Issuer, "--token-cert", g.CertFile)
	root := filepath.Join(t.TempDir(), "root.json")
	if out, err := exec.Command(tools["hallmark"], "tuf", "root", "--data-dir", srv.DataDir, "--out", root).CombinedOutput(); err != nil {
		t.Fatalf("hallmark tuf root: %v\n%s", err, out)
	}
	run := newPipelineRun(t, srv, dockerHost, tools, project)
	run.exports = [][2]string{{"CI_JOB_TOKEN", jobToken}, {"CI_REGISTRY_PASSWORD", jobToken}, {"HALLMARK_TUF_ROOT", root}}
	run.execute(t, job)
	run.check(t, srv, false)
	if n := g.Requests.Load(); n < 2 {
		t.Errorf("the GitLab-style /jwt/auth issued %d tokens; docker and cosign must have taken theirs there", n)
	}
	pw, err := os.ReadFile(filepath.Join(srv.DataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	status, body := httpGet(t, srv.URL+"/api/v1/audit?action=push&repository="+url.QueryEscape(project), strings.TrimSpace(string(pw)))
	var audit struct {
		Events []struct{ Actor, ActorKind string } `json:"events"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &audit) != nil || len(audit.Events) == 0 ||
		slices.ContainsFunc(audit.Events, func(e struct{ Actor, ActorKind string }) bool { return e.Actor != "alice" || e.ActorKind != "external" }) {
		t.Errorf("audit of the pushes to %s: %d %s, want pushes by the GitLab user alice (external)", project, status, body)
	}
	for _, s := range srv.secrets() {
		if strings.Contains(srv.Logs.String(), s) {
			t.Errorf("a token handed to the pipeline appears in the server log")
		}
	}
}

// pipelineJob is one job of the pipeline file, template applied.
type pipelineJob struct {
	vars         [][2]string // in file order, template's first
	beforeScript []string
	script       []string
}

// loadPipeline parses the pipeline file into its runnable jobs: hidden
// jobs (".x") are templates; extends merges variables (the job's win) and
// inherits before_script/script; !reference [.install-*, script] steps are
// dropped (the test provides the tools), other references are inlined.
func loadPipeline(t *testing.T, path string) map[string]pipelineJob {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("%s: not a mapping", path)
	}
	top := map[string]*yaml.Node{}
	var order []string
	for i := 0; i+1 < len(doc.Content[0].Content); i += 2 {
		k := doc.Content[0].Content[i].Value
		top[k] = doc.Content[0].Content[i+1]
		order = append(order, k)
	}
	field := func(job *yaml.Node, name string) *yaml.Node {
		for i := 0; i+1 < len(job.Content); i += 2 {
			if job.Content[i].Value == name {
				return job.Content[i+1]
			}
		}
		return nil
	}
	var steps func(seq *yaml.Node) []string
	steps = func(seq *yaml.Node) []string {
		if seq == nil {
			return nil
		}
		if seq.Kind != yaml.SequenceNode {
			t.Fatalf("%s line %d: want a list of script lines", path, seq.Line)
		}
		var out []string
		for _, item := range seq.Content {
			switch {
			case item.Tag == "!reference":
				if len(item.Content) != 2 {
					t.Fatalf("%s line %d: !reference wants [job, key]", path, item.Line)
				}
				target, key := item.Content[0].Value, item.Content[1].Value
				if strings.HasPrefix(target, ".install-") {
					continue
				}
				tj, ok := top[target]
				if !ok {
					t.Fatalf("%s line %d: !reference to unknown job %s", path, item.Line, target)
				}
				out = append(out, steps(field(tj, key))...)
			case item.Kind == yaml.ScalarNode:
				out = append(out, item.Value)
			default:
				t.Fatalf("%s line %d: unsupported script item", path, item.Line)
			}
		}
		return out
	}
	vars := func(m *yaml.Node) [][2]string {
		if m == nil {
			return nil
		}
		var out [][2]string
		for i := 0; i+1 < len(m.Content); i += 2 {
			out = append(out, [2]string{m.Content[i].Value, m.Content[i+1].Value})
		}
		return out
	}
	jobs := map[string]pipelineJob{}
	for _, name := range order {
		node := top[name]
		if strings.HasPrefix(name, ".") || node.Kind != yaml.MappingNode || field(node, "script") == nil && field(node, "extends") == nil {
			continue
		}
		var j pipelineJob
		if ext := field(node, "extends"); ext != nil {
			tmpl, ok := top[ext.Value]
			if !ok {
				t.Fatalf("%s: job %s extends unknown %s", path, name, ext.Value)
			}
			j.vars = vars(field(tmpl, "variables"))
			j.beforeScript = steps(field(tmpl, "before_script"))
			j.script = steps(field(tmpl, "script"))
		}
		for _, kv := range vars(field(node, "variables")) {
			if i := slices.IndexFunc(j.vars, func(e [2]string) bool { return e[0] == kv[0] }); i >= 0 {
				j.vars[i] = kv
			} else {
				j.vars = append(j.vars, kv)
			}
		}
		if bs := field(node, "before_script"); bs != nil {
			j.beforeScript = steps(bs)
		}
		if s := field(node, "script"); s != nil {
			j.script = steps(s)
		}
		jobs[name] = j
	}
	return jobs
}

// pipelineRun is one local run of a job.
type pipelineRun struct {
	t                    *testing.T
	srv                  *hallmarkProc
	dir, home, out, bin  string
	env                  []string
	project, sha, user   string
	userName             string
	pipeline, jobID      string
	oidcLogin            bool
	exports              [][2]string // exported after the CI job environment (what GitLab gives the job besides)
	steps                []string
	vars                 map[string]string // the job's environment at the end of the run
	dockerHost, imageURI string
}

func newPipelineRun(t *testing.T, srv *hallmarkProc, dockerHost string, tools map[string]string, project string) *pipelineRun {
	t.Helper()
	base := t.TempDir()
	r := &pipelineRun{t: t, srv: srv, dir: filepath.Join(base, "project"), home: filepath.Join(base, "home"),
		out: filepath.Join(base, "out"), bin: filepath.Join(base, "bin"), project: project, dockerHost: dockerHost,
		user: "alice", userName: "Alice O'Brien"}
	for _, d := range []string{r.dir, r.home, r.out, r.bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, path := range tools {
		if err := os.Symlink(path, filepath.Join(r.bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	b := make([]byte, 20)
	rand.Read(b)
	r.sha = hex.EncodeToString(b)
	now := time.Now().UnixNano()
	r.pipeline = strconv.FormatInt(now%1_000_000_000+1, 10)
	r.jobID = strconv.FormatInt(now%1_000_000_000+7, 10)
	// The project being built: a Dockerfile FROM scratch with one small
	// file, unique to this run so that its image is too.
	if err := os.WriteFile(filepath.Join(r.dir, "Dockerfile"), []byte("FROM scratch\nCOPY build-info.txt /build-info.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.dir, "build-info.txt"), []byte(project+" "+r.sha+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A clean environment: private HOME and docker config, no SIGSTORE_*,
	// COSIGN_* or TUF_* settings from the caller, and no route to the
	// network other than loopback (a dead proxy), so trust can only come
	// from what the pipeline pins.
	r.env = testenv.ToolEnv(t, r.home, true, "PATH="+r.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"DOCKER_HOST="+dockerHost, "LANG=C.UTF-8")
	return r
}

// shq quotes s for bash.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var simpleVarValue = regexp.MustCompile(`^[^"\\` + "`" + `]*$`)

// script builds the bash script of the run: the CI job environment from
// `hallmark ci job`, the job's variables, then every step with its output
// kept in out/<n>.out, and finally the shell's variables dumped to out/env.
func (r *pipelineRun) script(t *testing.T, job pipelineJob) string {
	var b strings.Builder
	b.WriteString("set -eo pipefail\n")
	fmt.Fprintf(&b, "cd %s\n", shq(r.dir))
	fmt.Fprintf(&b, "eval \"$(hallmark ci job --server %s --data-dir %s --project %s --ref main --sha %s --pipeline %s --job %s --user %s --user-name %s)\"\n",
		shq(r.srv.URL), shq(r.srv.DataDir), shq(r.project), r.sha, r.pipeline, r.jobID, shq(r.user), shq(r.userName))
	if r.oidcLogin {
		// What GitLab's `id_tokens: HALLMARK_ID_TOKEN: aud: $HALLMARK_URL`
		// gives the job on a real instance.
		fmt.Fprintf(&b, "export HALLMARK_ID_TOKEN=\"$(hallmark token issue --server \"$CI_SERVER_URL\" --data-dir %s --aud \"$HALLMARK_URL\" "+
			"--project \"$CI_PROJECT_PATH\" --ref \"$CI_COMMIT_REF_NAME\" --sha \"$CI_COMMIT_SHA\" --pipeline \"$CI_PIPELINE_ID\" --job \"$CI_JOB_ID\" --user \"$GITLAB_USER_LOGIN\")\"\n",
			shq(r.srv.DataDir))
	}
	for _, kv := range r.exports {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shq(kv[1]))
	}
	for _, kv := range job.vars {
		if !simpleVarValue.MatchString(kv[1]) {
			t.Fatalf("variable %s: value %q has characters this runner does not expand like GitLab", kv[0], kv[1])
		}
		fmt.Fprintf(&b, "export %s=\"%s\"\n", kv[0], kv[1])
	}
	r.steps = append(append([]string{}, job.beforeScript...), job.script...)
	for i, s := range r.steps {
		first, _, _ := strings.Cut(s, "\n")
		fmt.Fprintf(&b, "printf '%%s\\n' %s >&2\n{\n%s\n} >%s\n", shq("$ "+first), s, shq(filepath.Join(r.out, strconv.Itoa(i)+".out")))
	}
	// Every shell variable, exported or not (IMAGE_DIGEST is a plain one).
	fmt.Fprintf(&b, "for v in $(compgen -v); do printf '%%s=%%s\\0' \"$v\" \"${!v}\"; done >%s\n", shq(filepath.Join(r.out, "env")))
	return b.String()
}

// execute runs the job's lines and reads the job's final environment.
func (r *pipelineRun) execute(t *testing.T, job pipelineJob) {
	sc := r.script(t, job)
	cmd := exec.Command("bash", "-c", sc)
	cmd.Dir = r.dir
	cmd.Env = r.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("pipeline ran in %s:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	if err != nil {
		for i := range r.steps {
			if b, err := os.ReadFile(filepath.Join(r.out, strconv.Itoa(i)+".out")); err == nil {
				t.Logf("step %d output:\n%s", i, b)
			}
		}
		t.Fatalf("the reference pipeline failed: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(r.out, "env"))
	if err != nil {
		t.Fatal(err)
	}
	r.vars = map[string]string{}
	for _, kv := range strings.Split(string(raw), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			r.vars[k] = v
		}
	}
	r.imageURI = r.vars["IMAGE_URI"]
	t.Cleanup(func() {
		c := exec.Command("docker", "rmi", "-f", r.imageURI)
		c.Env = r.env
		c.Run()
	})
	r.srv.mu.Lock()
	for _, k := range []string{"CI_JOB_TOKEN", "SIGSTORE_ID_TOKEN", "HALLMARK_ID_TOKEN"} {
		if r.vars[k] != "" {
			r.srv.handedOut = append(r.srv.handedOut, r.vars[k])
		}
	}
	r.srv.mu.Unlock()
}

// stepOutput is the output of the first step containing marker.
func (r *pipelineRun) stepOutput(t *testing.T, marker string) []byte {
	t.Helper()
	for i, s := range r.steps {
		if strings.Contains(s, marker) {
			b, err := os.ReadFile(filepath.Join(r.out, strconv.Itoa(i)+".out"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no step of the job contains %q", marker)
	return nil
}

// want is what the eleven annotations must be: built from the job this
// run asked for, independently of the variables `hallmark ci job` printed.
func (r *pipelineRun) want() map[string]string {
	projectURL := r.srv.URL + "/" + r.project
	return map[string]string{
		"com.gitlab.ci.user.name":           r.userName,
		"com.gitlab.ci.pipeline.id":         r.pipeline,
		"com.gitlab.ci.pipeline.url":        projectURL + "/-/pipelines/" + r.pipeline,
		"com.gitlab.ci.job.id":              r.jobID,
		"com.gitlab.ci.job.url":             projectURL + "/-/jobs/" + r.jobID,
		"com.gitlab.ci.commit.sha":          r.sha,
		"com.gitlab.ci.commit.ref.name":     "main",
		"com.gitlab.ci.project.path":        r.project,
		"org.opencontainers.image.source":   projectURL,
		"org.opencontainers.image.revision": r.sha,
		"tag":                               r.sha[:8],
	}
}

// annotationSets finds, anywhere in a JSON document, the objects holding
// the tutorial's annotations.
func annotationSets(v any) []map[string]any {
	var out []map[string]any
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["com.gitlab.ci.commit.sha"]; ok {
			out = append(out, x)
		}
		for _, e := range x {
			out = append(out, annotationSets(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, annotationSets(e)...)
		}
	}
	return out
}

// check asserts what the run produced: the verify output, the image
// digest, the provenance search; for cosign v2 also that verify refuses
// another identity.
func (r *pipelineRun) check(t *testing.T, srv *hallmarkProc, negative bool) {
	want := r.want()
	identity := srv.URL + "/" + r.project + "//.gitlab-ci.yml@refs/heads/main"

	// The environment `hallmark ci job` printed is the job asked for, and
	// the pinned fingerprint is the data dir's (the out-of-band copy).
	trRaw, err := os.ReadFile(filepath.Join(srv.DataDir, "trust", "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(trRaw)
	for k, w := range map[string]string{"CI_PROJECT_PATH": r.project, "CI_COMMIT_SHA": r.sha, "CI_PIPELINE_ID": r.pipeline, "CI_JOB_ID": r.jobID,
		"GITLAB_USER_NAME": r.userName, "CI_SERVER_URL": srv.URL, "CI_REGISTRY": srv.Addr, "IMAGE_TAG": r.sha[:8],
		"IMAGE_URI": srv.Addr + "/" + r.project + ":" + r.sha[:8], "HALLMARK_TRUST_FINGERPRINT": hex.EncodeToString(sum[:])} {
		if r.vars[k] != w {
			t.Errorf("job variable %s = %q, want %q", k, r.vars[k], w)
		}
	}
	digest := r.vars["IMAGE_DIGEST"]
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(srv.Addr+"/"+r.project) + `@sha256:[0-9a-f]{64}$`).MatchString(digest) {
		t.Fatalf("IMAGE_DIGEST %q is not %s/%s@sha256:...", digest, srv.Addr, r.project)
	}
	_, subject, _ := strings.Cut(digest, "@")

	// verify ... | jq .
	out := r.stepOutput(t, " verify ")
	var doc any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("verify | jq . printed no JSON: %v\n%s", err, out)
	}
	sets := annotationSets(doc)
	if len(sets) == 0 {
		t.Fatalf("the verify output holds no annotations:\n%s", out)
	}
	for _, s := range sets {
		for _, k := range annotationKeys {
			if w := want[k]; s[k] != w {
				t.Errorf("verify output: annotation %s = %v, want %q", k, s[k], w)
			}
		}
	}
	if negative {
		// cosign v2's output names the certificate's subject and issuer.
		if s := sets[0]; s["Subject"] != identity || s["Issuer"] != srv.URL {
			t.Errorf("verify output: Subject %v Issuer %v, want %s %s", s["Subject"], s["Issuer"], identity, srv.URL)
		}
		// The same verify with another branch's identity finds no signature.
		cmd := exec.Command(filepath.Join(r.bin, "cosign"), "verify", "--annotations", "tag="+r.vars["IMAGE_TAG"],
			"--certificate-identity", r.vars["CI_PROJECT_URL"]+"//.gitlab-ci.yml@refs/heads/other",
			"--certificate-oidc-issuer", r.vars["CI_SERVER_URL"], r.imageURI)
		cmd.Dir, cmd.Env = r.dir, r.jobEnv()
		if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "no matching signatures") {
			t.Errorf("cosign verify with another identity: %v\n%s", err, b)
		}
	}

	// Hallmark's provenance search by commit finds the signature, with the
	// annotations, on the pushed digest and tag.
	var res struct {
		Results []struct {
			Repository  string            `json:"repository"`
			Subject     string            `json:"subject"`
			Tags        []string          `json:"tags"`
			Signer      string            `json:"signer"`
			CertIssuer  string            `json:"certificateIssuer"`
			Status      string            `json:"status"`
			Annotations map[string]string `json:"annotations"`
		} `json:"results"`
	}
	q := srv.URL + "/api/v1/search?annotation=" + url.QueryEscape("com.gitlab.ci.commit.sha="+r.sha)
	testenv.WaitIndexed(t, srv.URL) // the index works in the background after a push
	// The job's project is private: an anonymous search must not reveal it,
	// an admin's finds it.
	if status, body := httpGet(t, q, ""); status == http.StatusOK {
		var anon struct {
			Results []json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal(body, &anon); err != nil || len(anon.Results) != 0 {
			t.Errorf("anonymous search reveals the private project's signature (or is not JSON: %v):\n%s", err, body)
		}
	}
	pw, err := os.ReadFile(filepath.Join(srv.DataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res.Results = nil
		status, body := httpGet(t, q, strings.TrimSpace(string(pw)))
		if status != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d %s", q, status, body)
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatalf("search reply: %v\n%s", err, body)
		}
		if len(res.Results) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(res.Results) != 1 {
		t.Fatalf("search by commit %s: %d results, want the one signature: %+v", r.sha, len(res.Results), res.Results)
	}
	got := res.Results[0]
	if got.Repository != r.project || got.Subject != subject || !slices.Contains(got.Tags, r.sha[:8]) {
		t.Errorf("search result names %s@%s tags %v, want %s@%s tag %s", got.Repository, got.Subject, got.Tags, r.project, subject, r.sha[:8])
	}
	for _, k := range annotationKeys {
		if w := want[k]; got.Annotations[k] != w {
			t.Errorf("search result: annotation %s = %q, want %q", k, got.Annotations[k], w)
		}
	}
	if got.Signer != identity || got.CertIssuer != srv.URL {
		t.Errorf("search result: signer %q issuer %q, want %q %q", got.Signer, got.CertIssuer, identity, srv.URL)
	}
	if got.Status == "invalid" {
		t.Errorf("search result: the server's index says the signature is invalid")
	}
	t.Logf("provenance search: %s@%s signed by %s (index status %s)", got.Repository, got.Subject, got.Signer, got.Status)
}

// jobEnv is the run's environment plus the job's final variables.
func (r *pipelineRun) jobEnv() []string {
	env := slices.Clone(r.env)
	for k, v := range r.vars {
		env = append(env, k+"="+v)
	}
	return env
}

func httpGet(t *testing.T, u, adminPassword string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if adminPassword != "" {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
