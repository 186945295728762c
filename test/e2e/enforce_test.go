package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// The pull policy with real clients (issue 11): docker (a real engine),
// crane, cosign v2.6.5, oras and the hallmark CLI against a Hallmark
// server with access control on, for require-signature off, warn and
// enforce and for quarantine, with single images and two-platform
// indexes. A producer (the admin: pushes, signs with cosign and a key the
// server trusts, quarantines) and a consumer (a reporter of the projects:
// pulls and verifies) each have a home of their own.

// toolHome is one client's home: its docker config and keys.
type toolHome struct {
	dir string
	env []string
}

func newToolHome(t *testing.T, dockerHost string) *toolHome {
	t.Helper()
	dir := t.TempDir()
	return &toolHome{dir: dir, env: testenv.ToolEnv(t, dir, true, "DOCKER_HOST="+dockerHost, "COSIGN_PASSWORD=e2e-key-password", "LANG=C.UTF-8")}
}

// run runs a tool in the home and returns its combined output and
// whether it succeeded.
func (h *toolHome) run(t *testing.T, stdin, bin string, args ...string) (string, bool) {
	t.Helper()
	out, err := testenv.RunTool(t, h.dir, h.env, stdin, bin, args...)
	return out, err == nil
}

// ok runs a tool that must succeed.
func (h *toolHome) ok(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, ok := h.run(t, "", bin, args...)
	if !ok {
		t.Fatalf("%s %s failed:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
	}
	return out
}

// refused runs a tool that must fail, and checks that its output carries
// every part of the server's message.
func (h *toolHome) refused(t *testing.T, parts []string, bin string, args ...string) {
	t.Helper()
	out, ok := h.run(t, "", bin, args...)
	if ok {
		t.Errorf("%s %s succeeded, want it refused:\n%s", filepath.Base(bin), strings.Join(args, " "), out)
		return
	}
	for _, p := range parts {
		if !strings.Contains(out, p) {
			t.Errorf("%s %s: the output does not show %q:\n%s", filepath.Base(bin), strings.Join(args, " "), p, out)
		}
	}
}

// enforceEnv is the server, the clients and the tools.
type enforceEnv struct {
	srv                *testenv.Server
	host               string
	adminPW            string
	producer, consumer *toolHome
	docker, crane      string
	cosign, oras, hm   string
}

func startEnforceEnv(t *testing.T) *enforceEnv {
	t.Helper()
	dockerHost := testenv.DockerHost(t, "THE PULL POLICY WITH DOCKER")
	ev := &enforceEnv{docker: lookTool(t, "docker"), crane: testenv.Peer(t, "crane"), cosign: testenv.Peer(t, "cosign"),
		oras: testenv.Peer(t, "oras"), hm: testenv.HallmarkBinary(t)}
	ev.producer, ev.consumer = newToolHome(t, dockerHost), newToolHome(t, dockerHost)
	ev.producer.ok(t, ev.cosign, "generate-key-pair")
	ev.srv = testenv.StartServer(t, func(c *config.Server) {
		c.Auth = "on"
		c.TrustedKeys = []string{filepath.Join(ev.producer.dir, "cosign.pub")}
		// No index workers: a pull that needs the verdict on a signature
		// pushed a moment ago has it indexed first (SettleIndex).
		c.IndexWorkers = -1
	})
	ev.host = ev.srv.Addr
	pw, err := os.ReadFile(filepath.Join(ev.srv.DataDir, server.AdminPasswordFile))
	if err != nil {
		t.Fatal(err)
	}
	ev.adminPW = strings.TrimSpace(string(pw))

	ctx := context.Background()
	adm, closeFn, err := server.OpenAuthAdmin(ctx, ev.srv.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if _, err := adm.AddUser(ctx, "deployer", "deployer-password-1", false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"e2e/off", "e2e/warn", "e2e/enforce", "e2e/quarantine"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
		if err := adm.Store.SetMember(ctx, p, "deployer", auth.RoleReporter); err != nil {
			t.Fatal(err)
		}
	}
	if out, ok := ev.producer.run(t, ev.adminPW, ev.docker, "login", "-u", "admin", "--password-stdin", ev.host); !ok {
		t.Fatalf("docker login (producer): %s", out)
	}
	if out, ok := ev.consumer.run(t, "deployer-password-1", ev.docker, "login", "-u", "deployer", "--password-stdin", ev.host); !ok {
		t.Fatalf("docker login (consumer): %s", out)
	}
	// The projects' settings, through the CLI on the server's database.
	for p, rs := range map[string]string{"e2e/warn": "warn", "e2e/enforce": "enforce"} {
		ev.producer.ok(t, ev.hm, "project", "set-require-signature", p, rs, "--data-dir", ev.srv.DataDir)
	}
	return ev
}

// linuxImage is a random image a docker engine accepts for the platform.
func linuxImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes an image (amd64) as producer and returns its digest.
func (ev *enforceEnv) push(t *testing.T, repo, tag string) string {
	t.Helper()
	img := linuxImage(t, "amd64")
	ref, err := name.NewTag(ev.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: ev.adminPW})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// pushIndex writes a linux/amd64 + linux/arm64 index and returns the
// digests of the index and its children (amd64 first).
func (ev *enforceEnv) pushIndex(t *testing.T, repo, tag string) (string, []string) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var children []string
	for _, arch := range []string{"amd64", "arm64"} {
		img := linuxImage(t, arch)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		d, _ := img.Digest()
		children = append(children, d.String())
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	ref, err := name.NewTag(ev.host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, remote.WithAuth(&authn.Basic{Username: "admin", Password: ev.adminPW})); err != nil {
		t.Fatal(err)
	}
	d, _ := idx.Digest()
	return d.String(), children
}

func (ev *enforceEnv) sign(t *testing.T, repo, dgst string) {
	t.Helper()
	ev.producer.ok(t, ev.cosign, "sign", "--key", "cosign.key", "--tlog-upload=false", "-y", ev.host+"/"+repo+"@"+dgst)
}

// dockerPull pulls as the consumer and removes the image again.
func (ev *enforceEnv) dockerPull(t *testing.T, ref string) (string, bool) {
	t.Helper()
	out, ok := ev.consumer.run(t, "", ev.docker, "pull", ev.host+"/"+ref)
	if ok {
		ev.consumer.run(t, "", ev.docker, "rmi", "-f", ev.host+"/"+ref)
	}
	return out, ok
}

// audit returns the audit events of action (admin API).
func (ev *enforceEnv) audit(t *testing.T, action string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ev.srv.URL+"/api/v1/audit?action="+action, nil)
	req.SetBasicAuth("admin", ev.adminPW)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Events
}

func TestPullPolicyRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	ev := startEnforceEnv(t)
	c := ev.consumer
	missing := []string{"has no verified signature", "require-signature: enforce", "Sign it with hallmark sign or cosign sign"}

	t.Run("enforce", func(t *testing.T) {
		const repo = "e2e/enforce/app"
		img := ev.push(t, repo, "v1")
		idx, children := ev.pushIndex(t, repo, "multi")
		for _, ref := range []string{repo + ":v1", repo + ":multi", repo + "@" + children[0]} {
			if out, ok := ev.dockerPull(t, ref); ok || !containsAll(out, missing) {
				t.Errorf("docker pull %s of an unsigned image: ok=%v\n%s", ref, ok, out)
			}
		}
		c.refused(t, missing, ev.crane, "pull", ev.host+"/"+repo+":v1", filepath.Join(c.dir, "v1.tar"))
		c.refused(t, missing, ev.crane, "manifest", ev.host+"/"+repo+"@"+children[1])
		// The producer may read it (cosign sign GETs what it signs) and signs.
		ev.sign(t, repo, img)
		ev.sign(t, repo, idx)
		for _, ref := range []string{repo + ":v1", repo + ":multi"} {
			if out, ok := ev.dockerPull(t, ref); !ok {
				t.Errorf("docker pull %s of a signed image:\n%s", ref, out)
			}
		}
		// Platform manifests of the signed index, by digest.
		c.ok(t, ev.crane, "pull", "--platform", "linux/arm64", ev.host+"/"+repo+":multi", filepath.Join(c.dir, "arm.tar"))
		c.ok(t, ev.crane, "manifest", ev.host+"/"+repo+"@"+children[1])
		// Signatures stay pullable: cosign and hallmark verify.
		pub := filepath.Join(ev.producer.dir, "cosign.pub")
		c.ok(t, ev.cosign, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+":v1")
		c.ok(t, ev.hm, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+"@"+idx)
	})

	t.Run("warn", func(t *testing.T) {
		const repo = "e2e/warn/app"
		ev.push(t, repo, "v1")
		ev.pushIndex(t, repo, "multi")
		for _, ref := range []string{repo + ":v1", repo + ":multi"} {
			if out, ok := ev.dockerPull(t, ref); !ok {
				t.Errorf("docker pull %s under warn:\n%s", ref, out)
			}
		}
		c.ok(t, ev.crane, "pull", ev.host+"/"+repo+":v1", filepath.Join(c.dir, "warn.tar"))
		// oras prints the registry's Warning header.
		out := c.ok(t, ev.oras, "manifest", "fetch", "--plain-http", "-u", "deployer", "-p", "deployer-password-1", ev.host+"/"+repo+":v1")
		if !strings.Contains(out, "has no verified signature") || !strings.Contains(out, "require-signature: warn") {
			t.Errorf("oras does not show the warning:\n%s", out)
		}
		found := false
		for _, e := range ev.audit(t, auth.AuditPullWarned) {
			if e["repository"] == repo && e["actor"] == "deployer" {
				found = true
			}
		}
		if !found {
			t.Errorf("no %s audit event for %s", auth.AuditPullWarned, repo)
		}
	})

	t.Run("off", func(t *testing.T) {
		const repo = "e2e/off/app"
		ev.push(t, repo, "v1")
		if out, ok := ev.dockerPull(t, repo+":v1"); !ok {
			t.Errorf("docker pull under off:\n%s", out)
		}
		if out := c.ok(t, ev.oras, "manifest", "fetch", "--plain-http", "-u", "deployer", "-p", "deployer-password-1", ev.host+"/"+repo+":v1"); strings.Contains(out, "require-signature") {
			t.Errorf("a warning under off:\n%s", out)
		}
	})

	t.Run("quarantine", func(t *testing.T) {
		const repo = "e2e/quarantine/app"
		img := ev.push(t, repo, "v1")
		idx, children := ev.pushIndex(t, repo, "multi")
		ev.sign(t, repo, img)
		ev.sign(t, repo, idx)
		pub := filepath.Join(ev.producer.dir, "cosign.pub")
		c.ok(t, ev.cosign, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+"@"+img)

		// The producer quarantines through the API with its docker login.
		const reason = "CVE-2099-4242 in libfoo; rebuild"
		ev.producer.ok(t, ev.hm, "quarantine", "add", "--server", ev.srv.URL, "--reason", reason,
			ev.host+"/"+repo+"@"+img, repo+"@"+children[1])
		why := []string{"quarantined by admin", reason}
		for _, ref := range []string{repo + ":v1", repo + "@" + img} {
			if out, ok := ev.dockerPull(t, ref); ok || !containsAll(out, why) {
				t.Errorf("docker pull %s of a quarantined image: ok=%v\n%s", ref, ok, out)
			}
		}
		c.refused(t, why, ev.crane, "pull", ev.host+"/"+repo+":v1", filepath.Join(c.dir, "q.tar"))
		c.refused(t, why, ev.cosign, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+"@"+img)
		c.refused(t, why, ev.cosign, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+":v1")
		c.refused(t, why, ev.hm, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+":v1")
		c.refused(t, why, ev.hm, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+"@"+img)
		// Multi-arch: the index lists a quarantined platform manifest.
		listsIt := append([]string{"lists " + children[1]}, why...)
		if out, ok := ev.dockerPull(t, repo+":multi"); ok || !containsAll(out, listsIt) {
			t.Errorf("docker pull of an index listing a quarantined manifest: ok=%v\n%s", ok, out)
		}
		c.refused(t, listsIt, ev.crane, "pull", "--platform", "linux/amd64", ev.host+"/"+repo+":multi", filepath.Join(c.dir, "m.tar"))
		c.refused(t, why, ev.cosign, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+"@"+idx)
		c.ok(t, ev.crane, "manifest", ev.host+"/"+repo+"@"+children[0]) // its sibling

		list := ev.producer.ok(t, ev.hm, "quarantine", "list", "--server", ev.srv.URL, "--repository", repo, "--json")
		var recs []map[string]any
		if err := json.Unmarshal([]byte(list[strings.Index(list, "["):]), &recs); err != nil || len(recs) != 2 || recs[0]["reason"] != reason {
			t.Errorf("hallmark quarantine list: %v\n%s", err, list)
		}

		// Lifting restores pulls at once.
		ev.producer.ok(t, ev.hm, "quarantine", "remove", "--server", ev.srv.URL, "--reason", "libfoo patched",
			repo+"@"+img, repo+"@"+children[1])
		for _, ref := range []string{repo + ":v1", repo + ":multi"} {
			if out, ok := ev.dockerPull(t, ref); !ok {
				t.Errorf("docker pull %s after the lift:\n%s", ref, out)
			}
		}
		c.ok(t, ev.cosign, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+"@"+img)
		c.ok(t, ev.hm, "verify", "--key", pub, "--insecure-ignore-tlog", ev.host+"/"+repo+":v1")

		var adds, lifts int
		for _, e := range append(ev.audit(t, auth.AuditQuarantine), ev.audit(t, auth.AuditQuarantineLift)...) {
			if e["repository"] == repo && e["actor"] == "admin" {
				if e["action"] == auth.AuditQuarantine {
					adds++
				} else {
					lifts++
				}
			}
		}
		if adds != 2 || lifts != 2 {
			t.Errorf("audit: %d quarantine and %d lift events, want 2 and 2", adds, lifts)
		}
	})

	// The database saw what the clients did: no quarantine is left.
	adm, closeFn, err := server.OpenAuthAdmin(context.Background(), ev.srv.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	if st, ok := adm.Store.(meta.Quarantines); ok {
		if recs, err := st.ListQuarantine(context.Background(), meta.QuarantineQuery{}); err != nil || len(recs) != 0 {
			t.Errorf("active quarantines left: %v, %v", recs, err)
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
