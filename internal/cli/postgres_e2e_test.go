package cli_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// TestKeylessOnPostgres: two replicas (one data dir for keys and blobs, one
// PostgreSQL database for metadata and the log) serve one keyless round
// trip. hallmark signs through replica A; cosign verifies with the trusted
// root; hallmark verifies the image read through replica B; both replicas
// serve the same signed tree head.
func TestKeylessOnPostgres(t *testing.T) {
	url := testenv.Postgres(t)
	a := testenv.StartServer(t, func(c *config.Server) { c.DatabaseURL = url })
	// Replicas behind one load balancer share the external URL (it is in
	// the trusted root they publish) and the keys.
	b := testenv.StartServer(t, func(c *config.Server) { c.DatabaseURL, c.DataDir, c.ExternalURL = url, a.DataDir, a.URL })
	e := newKeylessEnv(t, a)
	img := pushImage(t, a.Addr, klProject, "v1")
	env := append(e.gitlabEnv(klProject, "v1"), "SIGSTORE_ID_TOKEN="+e.token(klProject))
	r := e.hm.okEnv(env, "sign", "--new-bundle-format=false", "-y", "--ci-annotations", img.String())
	if !tlogIndexRE.MatchString(r.stderr) {
		t.Fatalf("hallmark sign printed no tlog index:\n%s", r.stderr)
	}
	args := e.verifyArgs("-a", "tag=v1", "-a", "com.gitlab.ci.commit.sha="+klSHA)
	cv := e.cs.ok(append(append([]string{}, args...), "--trusted-root", e.trustedRoot(), img.String())...)
	viaB, err := name.NewDigest(b.Addr + "/" + klProject + "@" + img.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	hv := e.hm.ok(append(append([]string{}, args...), viaB.String())...)
	if cv.stdout != hv.stdout {
		t.Errorf("hallmark verify through replica B differs from cosign through A:\ncosign:   %q\nhallmark: %q", cv.stdout, hv.stdout)
	}

	type logInfo struct {
		RootHash       string `json:"rootHash"`
		SignedTreeHead string `json:"signedTreeHead"`
		TreeSize       int64  `json:"treeSize"`
		TreeID         string `json:"treeID"`
	}
	var infos [2]logInfo
	for i, addr := range []string{a.Addr, b.Addr} {
		resp, err := http.Get("http://" + addr + "/api/v1/log")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&infos[i])
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/log on replica %d: %d %v", i, resp.StatusCode, err)
		}
	}
	if infos[0] != infos[1] || infos[0].TreeSize != 1 {
		t.Fatalf("replicas serve different log heads:\n%+v\n%+v", infos[0], infos[1])
	}
}

// TestMigrateCommand: hallmark migrate lists (--dry-run) and applies the
// pending migrations of SQLite in --data-dir and of PostgreSQL at
// --database-url / HALLMARK_DATABASE_URL, and the management commands work
// on PostgreSQL; no error repeats the database password.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	hm := &tool{t: t, bin: testenv.HallmarkBinary(t), dir: dir, env: testenv.ToolEnv(t, filepath.Join(dir, "home"), false), name: "hallmark"}
	all := len(strings.Split(strings.TrimSpace(hm.ok("migrate", "--dry-run", "--data-dir", dir).stdout), "\n"))
	if all < 5 {
		t.Fatalf("%d pending migrations on a new data dir", all)
	}

	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	dry := hm.ok("migrate", "--dry-run", "--data-dir", data)
	if !strings.HasPrefix(dry.stdout, "pending 1 registry core\n") || strings.Count(dry.stdout, "\n") != all {
		t.Errorf("dry run on a new SQLite database:\n%s", dry.stdout)
	}
	if _, err := os.Stat(filepath.Join(data, "hallmark.db")); err == nil {
		t.Error("--dry-run created the database")
	}
	if r := hm.ok("migrate", "--data-dir", data); !strings.HasPrefix(r.stdout, "applied 1 registry core\n") || strings.Count(r.stdout, "\n") != all {
		t.Errorf("migrate:\n%s", r.stdout)
	}
	if r := hm.ok("migrate", "--data-dir", data); r.stdout != "schema is up to date\n" {
		t.Errorf("second migrate:\n%s", r.stdout)
	}
	if r := hm.fail(1, "migrate", "--data-dir", filepath.Join(dir, "nope")); !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("missing data dir: %s", r)
	}

	url := testenv.Postgres(t)
	if r := hm.ok("migrate", "--dry-run", "--database-url", url); strings.Count(r.stdout, "pending ") != all {
		t.Errorf("dry run on a new PostgreSQL database:\n%s", r.stdout)
	}
	if r := hm.okEnv([]string{"HALLMARK_DATABASE_URL=" + url}, "migrate"); strings.Count(r.stdout, "applied ") != all {
		t.Errorf("migrate on PostgreSQL:\n%s", r.stdout)
	}
	if r := hm.ok("migrate", "--dry-run", "--database-url", url); r.stdout != "schema is up to date\n" {
		t.Errorf("dry run after migrate:\n%s", r.stdout)
	}
	hm.runEnv(nil, "s3cret-password-1\n", "user", "add", "alice", "--password-stdin", "--database-url", url)
	if r := hm.ok("user", "list", "--database-url", url); !strings.Contains(r.stdout, "alice") {
		t.Errorf("user list on PostgreSQL:\n%s", r)
	}

	for _, bad := range []string{"mysql://u:topsecretpw@127.0.0.1/x", "postgres://u:topsecretpw@127.0.0.1:1/x"} {
		r := hm.run("migrate", "--database-url", bad)
		if r.code == 0 || strings.Contains(r.stdout+r.stderr, "topsecretpw") {
			t.Errorf("migrate --database-url %s: %s", bad, r)
		}
	}
}
