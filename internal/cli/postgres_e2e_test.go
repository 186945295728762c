package cli_test

import (
	"encoding/json"
	"net/http"
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
	r := e.hm.okEnv(env, "sign", "-y", "--ci-annotations", img.String())
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
