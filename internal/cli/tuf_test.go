package cli_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// TestTUFCommands runs `hallmark tuf root/status/rotate/renew` as separate
// processes against the data dir of a running server process that renews
// its timestamp every two seconds (writers in two processes), and checks with
// real cosign v2.6.5, initialized before the rotations, that the chain
// they publish is followed: it signs and verifies with trust from the TUF
// repository only.
func TestTUFCommands(t *testing.T) {
	bin := testenv.HallmarkBinary(t)
	dataDir := t.TempDir()
	srv := testenv.StartServerProcess(t, bin, dataDir, nil, "--auth", "off", "--tuf-timestamp-expiry", "4s")
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	env := testenv.ToolEnv(t, home, true)
	hm := &tool{t: t, bin: bin, dir: dir, env: env, name: "hallmark"}
	cs := &tool{t: t, bin: testenv.Peer(t, "cosign"), dir: dir, env: env, name: "cosign"}
	// As the server: the timestamps the commands sign live 4s too.
	hm.env = append(hm.env, "HALLMARK_TUF_TIMESTAMP_EXPIRY=4s")
	dd := "--data-dir=" + dataDir
	mirror := srv.URL + server.TUFPath

	// root: the file clients are initialized with, and its checksum.
	r := hm.ok("tuf", "root", dd, "--out", "root.json")
	raw, err := os.ReadFile(hm.path("root.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if !strings.Contains(r.stderr, hex.EncodeToString(sum[:])) {
		t.Errorf("tuf root printed no sha256 of root.json:\n%s", r)
	}
	if out := hm.ok("tuf", "root", dd).stdout; out != string(raw) {
		t.Error("tuf root on stdout differs from --out")
	}
	cs.ok("initialize", "--mirror", mirror, "--root", hm.path("root.json"))

	status := func() tuf.Status {
		t.Helper()
		var st tuf.Status
		if err := json.Unmarshal([]byte(hm.ok("tuf", "status", dd, "--json").stdout), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := status()
	if len(st.Roles) != 4 || st.Roles[0].Role != tuf.RoleRoot || st.Roles[0].Version != 1 || len(st.Targets) != 2 {
		t.Fatalf("status of a new repository: %+v", st)
	}
	if table := hm.ok("tuf", "status", dd).stdout; !strings.Contains(table, tuf.TrustedRootTarget) || !strings.Contains(table, "timestamp") {
		t.Errorf("status table:\n%s", table)
	}

	// rotate each role while the server runs and renews.
	for i, role := range tuf.Roles() {
		r := hm.ok("tuf", "rotate", role, dd)
		id := strings.TrimSpace(r.stdout)
		st := status()
		if st.Roles[0].Version != int64(2+i) || len(st.Roles[i].KeyIDs) != 1 || st.Roles[i].KeyIDs[0] != id {
			t.Fatalf("after rotating %s (key %s): %+v", role, id, st.Roles)
		}
	}
	hm.fail(1, "tuf", "rotate", "mirror", dd)
	var ts struct {
		Signed struct{ Expires time.Time } `json:"signed"`
	}
	getJSON(t, mirror, "/timestamp.json", &ts)
	if life := time.Until(ts.Signed.Expires); life > 4*time.Second {
		t.Errorf("a timestamp signed by the commands lives %v, not the server's 4s", life)
	}
	if r := hm.ok("tuf", "renew", dd); !strings.Contains(r.stderr, "nothing to renew") && !strings.Contains(r.stderr, "timestamp") {
		t.Errorf("renew: %s", r)
	}
	// Served at once by the running server.
	var root5 json.RawMessage
	getJSON(t, mirror, "/5.root.json", &root5)

	// cosign, initialized with version 1, signs and verifies with trust
	// from the repository only, and now trusts version 5.
	ref := pushImage(t, srv.Addr, klProject, "v1")
	token := strings.TrimSpace(hm.ok("token", "issue", "--server", srv.URL, dd, "--project", klProject, "--ref", "main").stdout)
	cs.ok("sign", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--identity-token", token, ref.String())
	cs.ok("verify", "--certificate-identity", srv.URL+"/"+klProject+"//.gitlab-ci.yml@refs/heads/main", "--certificate-oidc-issuer", srv.URL, ref.String())
	md, err := metadata.Root().FromFile(filepath.Join(home, "tuf", sgtuf.URLToPath(mirror), "root.json"))
	if err != nil || md.Signed.Version != 5 {
		t.Errorf("cosign trusts root %v (%v), want version 5", md, err)
	}

	// Errors say what to do.
	r = hm.fail(1, "tuf", "status", "--data-dir", t.TempDir())
	if !strings.Contains(r.stderr, "--data-dir") {
		t.Errorf("status of a dir without a repository: %s", r)
	}
}

// TestCARotateCommand: `hallmark ca rotate` creates the next CA generation,
// refuses another before a server took it into use, and the restarted
// server publishes the changed trusted root as a new TUF target.
func TestCARotateCommand(t *testing.T) {
	bin := testenv.HallmarkBinary(t)
	dataDir := t.TempDir()
	srv := testenv.StartServerProcess(t, bin, dataDir, nil, "--auth", "off")
	dir := t.TempDir()
	hm := &tool{t: t, bin: bin, dir: dir, env: testenv.ToolEnv(t, filepath.Join(dir, "home"), true), name: "hallmark"}
	dd := "--data-dir=" + dataDir
	var before tuf.Status
	if err := json.Unmarshal([]byte(hm.ok("tuf", "status", dd, "--json").stdout), &before); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	r := hm.ok("ca", "rotate", dd)
	if strings.TrimSpace(r.stdout) != "2" || !strings.Contains(r.stderr, "Hallmark root 2") || !strings.Contains(r.stderr, "restart") {
		t.Fatalf("ca rotate: %s", r)
	}
	if r := hm.fail(1, "ca", "rotate", dd); !strings.Contains(r.stderr, "restart the server") {
		t.Errorf("second rotation before a restart: %s", r)
	}
	if r := hm.fail(1, "ca", "rotate", "--data-dir", t.TempDir()); !strings.Contains(r.stderr, "--data-dir") {
		t.Errorf("rotation without a data dir: %s", r)
	}

	testenv.StartServerProcess(t, bin, dataDir, nil, "--auth", "off")
	var after tuf.Status
	if err := json.Unmarshal([]byte(hm.ok("tuf", "status", dd, "--json").stdout), &after); err != nil {
		t.Fatal(err)
	}
	if after.Targets[tuf.TrustedRootTarget] == before.Targets[tuf.TrustedRootTarget] || after.Roles[1].Version != before.Roles[1].Version+1 {
		t.Errorf("the rotated CA's trusted root was not published: %+v -> %+v", before, after)
	}
	hm.ok("ca", "rotate", dd) // taken into use: the next rotation may come
}
