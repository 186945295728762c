package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// The eleven annotations of GitLab's cosign tutorial.
var elevenAnnotations = []string{
	"com.gitlab.ci.user.name", "com.gitlab.ci.pipeline.id", "com.gitlab.ci.pipeline.url", "com.gitlab.ci.job.id",
	"com.gitlab.ci.job.url", "com.gitlab.ci.commit.sha", "com.gitlab.ci.commit.ref.name", "com.gitlab.ci.project.path",
	"org.opencontainers.image.source", "org.opencontainers.image.revision", "tag",
}

// demoEnv is the environment of a demo process and of the commands it
// prints: its own HOME (trust dir, docker config), no proxy for loopback
// and a dead one for anything else.
func demoEnv(t *testing.T, dir string, extraPath ...string) []string {
	t.Helper()
	path := os.Getenv("PATH")
	for _, p := range extraPath {
		path = p + string(os.PathListSeparator) + path
	}
	return testenv.ToolEnv(t, filepath.Join(dir, "home"), true, "PATH="+path)
}

// verifiedClaims is one verified payload as cosign verify prints it.
type verifiedClaims struct {
	Critical struct {
		Image struct {
			Digest string `json:"docker-manifest-digest"`
		} `json:"image"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

// demoOutput is the JSON a demo run printed on stdout.
type demoOutput struct {
	verification []verifiedClaims
	search       struct {
		Query   map[string][]string `json:"query"`
		Results []struct {
			Repository  string            `json:"repository"`
			Subject     string            `json:"subject"`
			Status      string            `json:"status"`
			Signer      string            `json:"signer"`
			Annotations map[string]string `json:"annotations"`
		} `json:"results"`
	}
}

// parseDemoOutput reads the two JSON documents of a demo's stdout and
// checks them: one verified signature carrying the eleven annotations, and
// a search by its commit finding it, verified.
func parseDemoOutput(t *testing.T, stdout []byte) *demoOutput {
	t.Helper()
	var out demoOutput
	dec := json.NewDecoder(bytes.NewReader(stdout))
	if err := dec.Decode(&out.verification); err != nil {
		t.Fatalf("stdout does not start with the verification JSON: %v\n%s", err, stdout)
	}
	if err := dec.Decode(&out.search); err != nil {
		t.Fatalf("stdout has no search result after the verification JSON: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("more than two JSON documents on stdout:\n%s", stdout)
	}
	if len(out.verification) != 1 {
		t.Fatalf("verification JSON has %d signatures; want 1", len(out.verification))
	}
	v := out.verification[0]
	for _, k := range elevenAnnotations {
		if s, ok := v.Optional[k].(string); !ok || s == "" {
			t.Errorf("verification JSON: annotation %s missing or empty: %v", k, v.Optional[k])
		}
	}
	sha, _ := v.Optional["com.gitlab.ci.commit.sha"].(string)
	if q := out.search.Query["annotation"]; len(q) != 1 || q[0] != "com.gitlab.ci.commit.sha="+sha {
		t.Errorf("search was %v; want by commit %s", out.search.Query, sha)
	}
	found := false
	for _, r := range out.search.Results {
		if r.Subject == v.Critical.Image.Digest {
			found = true
			if r.Status != "verified" || r.Signer != v.Optional["Subject"] || len(r.Annotations) != 11 || r.Annotations["tag"] != v.Optional["tag"] {
				t.Errorf("search result %+v; want the verified signature of %v with its eleven annotations", r, v.Optional["Subject"])
			}
		}
	}
	if !found {
		t.Errorf("search by commit %s did not find %s: %+v", sha, v.Critical.Image.Digest, out.search.Results)
	}
	return &out
}

// TestDemoOnce runs `hallmark demo --once` twice on the same data dir: both
// exit 0 and print the verification JSON and the search result.
func TestDemoOnce(t *testing.T) {
	bin := testenv.HallmarkBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := demoEnv(t, dir)
	var commits []string
	var lastOut *demoOutput
	var lastStderr string
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(bin, "demo", "--once", "--addr", "127.0.0.1:0", "--data-dir", data)
		cmd.Dir, cmd.Env = dir, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("run %d: hallmark demo --once: %v\n%s", run, err, stderr.String())
		}
		out := parseDemoOutput(t, stdout.Bytes())
		lastOut, lastStderr = out, stderr.String()
		commits = append(commits, out.verification[0].Optional["com.gitlab.ci.commit.sha"].(string))
		for _, want := range []string{"[8/8] Searching the provenance index by commit", "Demo complete: every step passed", "Try next:"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("run %d: stderr lacks %q:\n%s", run, want, stderr.String())
			}
		}
		checkNoSecrets(t, data, stdout.String()+stderr.String())
	}
	if commits[0] == commits[1] {
		t.Errorf("both runs signed commit %s; every run should be a new job", commits[0])
	}

	// The closing lines say how to serve the same data again: do it, and
	// run the printed trust init, login and verify commands against it.
	m := demoServeRE.FindStringSubmatch(lastStderr)
	if m == nil {
		t.Fatalf("no 'server --addr ... --data-dir ...' line:\n%s", lastStderr)
	}
	srv := exec.Command("bash", "-c", "exec "+m[1]+" --log-level warn")
	srv.Dir, srv.Env = dir, env
	var srvLog testenv.SyncBuffer
	srv.Stdout, srv.Stderr = &srvLog, &srvLog
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	defer func() {
		srv.Process.Signal(os.Interrupt)
		<-srvDone
	}()
	for {
		resp, err := http.Get("http://" + m[2] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-srvDone:
			srvDone <- err
			t.Fatalf("%s exited: %v: %s", m[1], err, srvLog.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The console page of the signed image is printed, and answers (404
	// to an anonymous visitor: the demo's project is private).
	cm := demoConsoleRE.FindStringSubmatch(lastStderr)
	if cm == nil || !strings.HasSuffix(cm[1], "@"+lastOut.verification[0].Critical.Image.Digest) {
		t.Fatalf("no console URL of the signed image:\n%s", lastStderr)
	}
	if resp, err := http.Get(cm[1]); err != nil || resp.StatusCode != http.StatusNotFound || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("GET %s anonymously: %v %v", cm[1], resp, err)
	} else {
		resp.Body.Close()
	}
	cmds := demoCmdRE.FindAllStringSubmatch(lastStderr, -1)
	if len(cmds) < 3 || !strings.Contains(cmds[2][1], " verify ") {
		t.Fatalf("want trust init, login and verify as the first commands:\n%s", lastStderr)
	}
	run := exec.Command("bash", "-c", "set -euo pipefail\n"+cmds[0][1]+" >&2\n"+cmds[1][1]+" >&2\n"+cmds[2][1])
	run.Dir, run.Env = dir, env
	var rout, rerr bytes.Buffer
	run.Stdout, run.Stderr = &rout, &rerr
	if err := run.Run(); err != nil {
		t.Fatalf("the printed commands against %s: %v\n%s\n%s", m[1], err, rerr.String(), srvLog.String())
	}
	checkVerifyJSON(t, cmds[2][1], rout.String(), lastOut.verification[0].Critical.Image.Digest, lastOut.verification[0].Optional["tag"].(string))
}

var demoConsoleRE = regexp.MustCompile(`(?m)^  console +(http://\S+/ui/image/\S+)  `)

var demoServeRE = regexp.MustCompile(`(?m)^  (\S+ server --addr (\S+) --data-dir \S+)$`)

// checkNoSecrets fails when the admin password appears in the output.
func checkNoSecrets(t *testing.T, data, output string) {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(data, server.AdminPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	if p := strings.TrimSpace(string(pw)); p == "" || strings.Contains(output, p) {
		t.Errorf("the admin password appears in the demo's output (or is empty)")
	}
}

// TestDemoPortInUse: a busy --addr is a clear error naming --addr.
func TestDemoPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	cmd := exec.Command(testenv.HallmarkBinary(t), "demo", "--once", "--addr", ln.Addr().String(), "--data-dir", filepath.Join(dir, "data"))
	cmd.Dir, cmd.Env = dir, demoEnv(t, dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("demo on a busy port: %v; want exit status 1\n%s", err, out)
	}
	for _, want := range []string{"is already in use", "--addr", "demo step 1/8 (starting the server) failed"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Not on loopback: refused before anything starts.
	cmd = exec.Command(testenv.HallmarkBinary(t), "demo", "--once", "--addr", "0.0.0.0:0", "--data-dir", filepath.Join(dir, "data2"))
	cmd.Dir, cmd.Env = dir, demoEnv(t, dir)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "loopback") {
		t.Errorf("demo on 0.0.0.0: %v\n%s", err, out)
	}
}

var demoCmdRE = regexp.MustCompile(`(?m)^  \$ (.+)$`)

// TestDemoFollowUpCommands runs a serving demo, then every command it
// prints as printed (hallmark trust init, login, verify, real cosign
// verify, curl on the search API, a CI job of one's own signing and
// verifying, docker login and pull when a Docker engine is available),
// then stops it with SIGINT: exit status 0.
func TestDemoFollowUpCommands(t *testing.T) {
	bin := testenv.HallmarkBinary(t)
	cosign := testenv.LookPeer("cosign")
	if cosign == "" && testenv.RequirePeers() {
		testenv.Peer(t, "cosign") // fails under HALLMARK_REQUIRE_PEERS=1
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	var extra []string
	if cosign != "" {
		// The printed command says "cosign": the pinned v2.6.5 under that name.
		extra = append(extra, filepath.Dir(cosign))
	}
	env := demoEnv(t, dir, extra...)
	cmd := exec.Command(bin, "demo", "--addr", "127.0.0.1:0", "--data-dir", data)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr testenv.SyncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	})
	// The block ends with the docker pull line.
	for !strings.Contains(stderr.String(), "  $ docker pull ") {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("demo exited before serving: %v\n%s", err, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	out := parseDemoOutput(t, []byte(stdout.String()))
	tag := out.verification[0].Optional["tag"].(string)
	digest := out.verification[0].Critical.Image.Digest

	var cmds []string
	for _, m := range demoCmdRE.FindAllStringSubmatch(stderr.String(), -1) {
		cmds = append(cmds, m[1])
	}
	if len(cmds) != 10 {
		t.Fatalf("the demo printed %d commands; want 10:\n%s", len(cmds), stderr.String())
	}
	docker := dockerHost(t)
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	var ran []string
	for _, c := range cmds {
		tool := strings.Fields(c)[0]
		switch {
		case tool == "cosign" && cosign == "":
			t.Log("PEER NOT INSTALLED: cosign; the printed cosign verify command was NOT run (bash scripts/install-peers all)")
			continue
		case tool == "docker" && docker == "":
			continue
		}
		n := len(ran)
		ran = append(ran, c)
		fmt.Fprintf(&script, "echo '=== %d'\necho '=== %d' >&2\n%s\n", n, n, c)
	}
	run := exec.Command("bash", "-c", script.String())
	run.Dir = dir
	run.Env = env
	if docker != "" {
		run.Env = append(run.Env, "DOCKER_HOST="+docker)
	}
	var rout, rerr bytes.Buffer
	run.Stdout, run.Stderr = &rout, &rerr
	if err := run.Run(); err != nil {
		t.Fatalf("the printed commands failed: %v\ncommands:\n%s\nstdout:\n%s\nstderr:\n%s", err, strings.Join(ran, "\n"), rout.String(), rerr.String())
	}
	t.Logf("ran %d of the %d printed commands:\n%s", len(ran), len(cmds), strings.Join(ran, "\n"))
	outputs := splitOutputs(rout.String(), len(ran))
	checked := map[string]bool{}
	for i, c := range ran {
		o := outputs[i]
		switch {
		case strings.Contains(c, " verify ") && strings.Contains(c, "$CI_PROJECT_URL"):
			// The own CI job's signature: its tag is that job's short SHA.
			checkVerifyJSON(t, c, o, digest, "")
			checked["job verify"] = true
		case strings.HasPrefix(c, "cosign verify"):
			checkVerifyJSON(t, c, o, digest, tag)
			checked["cosign verify"] = true
		case strings.Contains(c, " verify "):
			checkVerifyJSON(t, c, o, digest, tag)
			checked["hallmark verify"] = true
		case strings.HasPrefix(c, "curl "):
			var sr struct {
				Results []struct{ Subject, Status string } `json:"results"`
			}
			if err := json.Unmarshal([]byte(o), &sr); err != nil || len(sr.Results) != 1 || sr.Results[0].Subject != digest || sr.Results[0].Status != "verified" {
				t.Errorf("%s:\n%s\nwant the one verified signature of %s (%v)", c, o, digest, err)
			}
			checked["search"] = true
		case strings.Contains(c, " sign "):
			checked["job sign"] = true
		case strings.HasPrefix(c, "docker pull"):
			if !strings.Contains(o, digest) {
				t.Errorf("%s printed:\n%s", c, o)
			}
			checked["docker pull"] = true
			rmi := exec.Command("docker", "rmi", strings.TrimPrefix(c, "docker pull "))
			rmi.Env = append(env, "DOCKER_HOST="+docker)
			if out, err := rmi.CombinedOutput(); err != nil {
				t.Logf("removing the pulled image: %v: %s", err, out)
			}
		}
	}
	want := []string{"hallmark verify", "search", "job sign", "job verify"}
	if cosign != "" {
		want = append(want, "cosign verify")
	}
	if docker != "" {
		want = append(want, "docker pull")
	}
	for _, w := range want {
		if !checked[w] {
			t.Errorf("no printed command for %s was run", w)
		}
	}

	// Ctrl-C: the demo stops with status 0.
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := <-exited
	stopped = true
	if err != nil {
		t.Fatalf("demo after SIGINT: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "Stopping the demo server") {
		t.Errorf("no stop message:\n%s", stderr.String())
	}
	checkNoSecrets(t, data, stdout.String()+stderr.String())
}

// splitOutputs cuts the script's stdout at the "=== n" markers.
func splitOutputs(s string, n int) []string {
	out := make([]string, n)
	cur := -1
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var i int
		if _, err := fmt.Sscanf(line, "=== %d", &i); err == nil && strings.HasPrefix(line, "=== ") && i < n {
			cur = i
			continue
		}
		if cur >= 0 {
			out[cur] += line + "\n"
		}
	}
	return out
}

// checkVerifyJSON checks a verify command's stdout: one JSON array of
// payloads for digest, one of them with the eleven annotations and tag
// (any tag when tag is "").
func checkVerifyJSON(t *testing.T, c, out, digest, tag string) {
	t.Helper()
	var claims []verifiedClaims
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&claims); err != nil {
		t.Errorf("%s: stdout is not the verification JSON: %v\n%s", c, err, out)
		return
	}
	for _, cl := range claims {
		if cl.Critical.Image.Digest != digest || (tag != "" && cl.Optional["tag"] != tag) {
			continue
		}
		missing := 0
		for _, k := range elevenAnnotations {
			if _, ok := cl.Optional[k].(string); !ok {
				missing++
			}
		}
		if missing == 0 {
			return
		}
	}
	t.Errorf("%s: no verified payload of %s with tag %q and the eleven annotations:\n%s", c, digest, tag, out)
}

// dockerHost is DOCKER_HOST of an answering Docker engine (started with
// scripts/start-dockerd when none answers), or "" when none can run
// (fatal under HALLMARK_REQUIRE_DOCKER=1): the demo's other printed
// commands are still run.
func dockerHost(t *testing.T) string {
	t.Helper()
	host, why := testenv.LookDocker()
	if host == "" {
		msg := "NO DOCKER ENGINE, the demo's printed docker commands were NOT run: " + why
		if testenv.RequireDocker() {
			t.Fatal(msg + " (HALLMARK_REQUIRE_DOCKER=1)")
		}
		t.Log(msg)
	}
	return host
}

// The demo package's copies of server paths must stay in sync.
func TestDemoServerPaths(t *testing.T) {
	if demo.CIJobPath != server.CIJobPath || demo.TrustedRootPath != server.TrustedRootPath || demo.SigningConfigPath != server.SigningConfigPath {
		t.Errorf("internal/demo paths %s %s %s differ from the server's %s %s %s", demo.CIJobPath, demo.TrustedRootPath,
			demo.SigningConfigPath, server.CIJobPath, server.TrustedRootPath, server.SigningConfigPath)
	}
}
