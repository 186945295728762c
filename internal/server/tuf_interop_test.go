package server_test

// Acceptance tests of the TUF repository with REAL clients: cosign v2.6.5
// and v3.1.3 are initialized with `cosign initialize --mirror <url>/tuf
// --root root.json` (root.json taken from the server's data dir, the
// out-of-band channel) and then sign and verify with no trust flag: trust
// comes from the repository only. Key rotations and a change of the
// trusted root reach clients initialized before them; the timestamp is
// renewed before it expires.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgtuf "github.com/sigstore/sigstore-go/pkg/tuf"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/tuf"
)

// newTUFCosign is a cosign whose trust comes from srv's TUF repository: it
// has run `cosign initialize` against it.
func newTUFCosign(t *testing.T, peer string, srv *testenv.Server) *cosignCLI {
	t.Helper()
	c := newCosignCLI(t, peer)
	c.viaTUF = true
	c.mustRun(nil, "initialize", "--mirror", srv.URL+server.TUFPath, "--root", tufRootFile(t, srv))
	return c
}

// tufRootFile copies the repository's root.json from srv's data dir to a
// file and checks the server serves the same bytes.
func tufRootFile(t *testing.T, srv *testenv.Server) string {
	t.Helper()
	local, err := os.ReadFile(filepath.Join(srv.DataDir, server.TUFDir, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if served := getOK(t, srv.URL+server.TUFPath+"/root.json", nil); !bytes.Equal(served, local) {
		t.Fatal("served root.json is not the one in the data dir")
	}
	p := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(p, local, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tufCache is where the client keeps the metadata of mirror (sigstore-go's
// layout under TUF_ROOT).
func (c *cosignCLI) tufCache(mirror string) string {
	for _, kv := range c.env {
		if dir, ok := strings.CutPrefix(kv, "TUF_ROOT="); ok {
			return filepath.Join(dir, sgtuf.URLToPath(mirror))
		}
	}
	c.t.Fatal("no TUF_ROOT in the cosign environment")
	return ""
}

// trustedRootVersion is the version of the TUF root the client trusts.
func (c *cosignCLI) trustedRootVersion(mirror string) int64 {
	c.t.Helper()
	md, err := metadata.Root().FromFile(filepath.Join(c.tufCache(mirror), "root.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	return md.Signed.Version
}

// tufSignVerify signs a new image of srv with c and verifies it, trust
// and services coming from the TUF repository only: cosign v3 with no
// flags at all, cosign v2 with the server's URLs for signing (its legacy
// signing takes no signing config).
func tufSignVerify(t *testing.T, c *cosignCLI, srv *testenv.Server, repo string) {
	t.Helper()
	image, _ := klPush(t, srv, repo, "v1")
	tufSign(t, c, srv, image)
	out := c.mustRun(nil, "verify", "--certificate-identity", klIdentity(srv), "--certificate-oidc-issuer", srv.URL, "-a", "tag=v1", image)
	if !strings.Contains(out, "verified using trusted certificate authority certificates") || !strings.Contains(out, `"tag":"v1"`) {
		t.Errorf("cosign verify output:\n%s", out)
	}
}

// TestTUFRealClients: `cosign initialize` against /tuf, then cosign v3
// signs and verifies with no trust or URL flag, and cosign v2 with the
// service URLs only. A root.json of another server is refused.
func TestTUFRealClients(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	for _, peer := range []string{"cosign", "cosign3"} {
		t.Run(peer, func(t *testing.T) {
			c := newTUFCosign(t, peer, srv)
			tufSignVerify(t, c, srv, "tuf/"+peer)

			// The cached trusted root is the server's.
			cached, err := os.ReadFile(filepath.Join(c.tufCache(srv.URL+server.TUFPath), "targets", tuf.TrustedRootTarget))
			if err != nil || !bytes.Equal(cached, getOK(t, srv.URL+server.TrustedRootPath, nil)) {
				t.Errorf("cosign's cached trusted root is not the served one (%v)", err)
			}
		})
	}
	t.Run("root from the server pinned by checksum", func(t *testing.T) {
		raw, err := os.ReadFile(tufRootFile(t, srv))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		mirror := srv.URL + server.TUFPath
		for _, peer := range []string{"cosign", "cosign3"} {
			c := newCosignCLI(t, peer)
			c.viaTUF = true
			if out, err := c.run(nil, "initialize", "--mirror", mirror, "--root", mirror+"/root.json", "--root-checksum", strings.Repeat("0", 64)); err == nil {
				t.Errorf("%s initialize accepted root.json with the wrong checksum:\n%s", peer, out)
			}
			c.mustRun(nil, "initialize", "--mirror", mirror, "--root", mirror+"/root.json", "--root-checksum", hex.EncodeToString(sum[:]))
		}
	})
	t.Run("root of another server", func(t *testing.T) {
		other := testenv.StartServer(t, nil)
		for _, peer := range []string{"cosign", "cosign3"} {
			c := newCosignCLI(t, peer)
			c.viaTUF = true
			out, err := c.run(nil, "initialize", "--mirror", srv.URL+server.TUFPath, "--root", tufRootFile(t, other))
			if err == nil {
				t.Errorf("%s initialize accepted a repository not signed by the given root:\n%s", peer, out)
			}
		}
	})
}

// TestTUFClientsFollowRotationsAndTrustChange: clients initialized once
// keep working across a rotation of every role's key (made with the
// server running, as `hallmark tuf rotate` does) and follow the chain of
// root versions; after a restart that changes the trusted root (the
// server's URL), they use the new trusted root and signing config.
func TestTUFClientsFollowRotationsAndTrustChange(t *testing.T) {
	srv, stop := testenv.StartStoppableServer(t, nil)
	mirror := srv.URL + server.TUFPath
	peers := []string{"cosign", "cosign3"}
	clients := map[string]*cosignCLI{}
	for _, peer := range peers {
		clients[peer] = newTUFCosign(t, peer, srv)
		tufSignVerify(t, clients[peer], srv, "rot/"+peer)
	}

	repo, closeRepo, err := server.OpenTUF(context.Background(), server.Database{DataDir: srv.DataDir}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRepo()
	for _, role := range tuf.Roles() {
		if _, _, err := repo.Rotate(context.Background(), role); err != nil {
			t.Fatalf("rotate %s: %v", role, err)
		}
	}
	for _, peer := range peers {
		tufSignVerify(t, clients[peer], srv, "rot/"+peer+"-rotated")
		if v := clients[peer].trustedRootVersion(mirror); v != 5 {
			t.Errorf("%s trusts TUF root version %d after 4 rotations, want 5", peer, v)
		}
	}

	// A restart under another URL for the same address changes every URL
	// in the trusted root and the signing config: a new target.
	before, err := repo.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	srv2 := testenv.StartServer(t, func(c *config.Server) {
		c.DataDir, c.Addr = srv.DataDir, srv.Addr
		c.ExternalURL = "http://localhost:" + srv.Addr[strings.LastIndex(srv.Addr, ":")+1:]
	})
	after, err := repo.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after.Targets[tuf.TrustedRootTarget] == before.Targets[tuf.TrustedRootTarget] || after.Roles[1].Version != before.Roles[1].Version+1 {
		t.Fatalf("the changed trusted root was not published: targets %v -> %v", before, after)
	}
	served := getOK(t, srv2.URL+server.TrustedRootPath, nil)
	if !bytes.Contains(served, []byte(srv2.URL)) {
		t.Fatalf("the new trusted root does not name %s", srv2.URL)
	}
	for _, peer := range peers {
		c := clients[peer]
		tufSignVerify(t, c, srv2, "rot/"+peer+"-moved")
		cached, err := os.ReadFile(filepath.Join(c.tufCache(mirror), "targets", tuf.TrustedRootTarget))
		if err != nil || !bytes.Equal(cached, served) {
			t.Errorf("%s did not fetch the new trusted root (%v)", peer, err)
		}
	}
}

// TestTUFTimestampRenewedBeforeExpiry: with a short timestamp lifetime,
// the server re-signs the timestamp before it expires: a client
// initialized under the first one keeps working after it expired.
func TestTUFTimestampRenewedBeforeExpiry(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.TUFTimestampExpiry = 4 * time.Second })
	first := servedTimestamp(t, srv)
	c := newTUFCosign(t, "cosign3", srv)
	image, _ := klPush(t, srv, "tuf/renew", "v1")
	c.mustRun([]string{"SIGSTORE_ID_TOKEN=" + klMint(t, srv)}, "sign", "-y", image)
	// Wait (bounded) until the first timestamp has expired.
	for deadline := time.Now().Add(30 * time.Second); !time.Now().After(first.Signed.Expires.Add(time.Second)); {
		if time.Now().After(deadline) {
			t.Fatal("the first timestamp did not expire")
		}
		time.Sleep(200 * time.Millisecond)
	}
	now := servedTimestamp(t, srv)
	if now.Signed.Version <= first.Signed.Version || !now.Signed.Expires.After(time.Now()) {
		t.Fatalf("timestamp not renewed: version %d -> %d, expires %v", first.Signed.Version, now.Signed.Version, now.Signed.Expires)
	}
	c.mustRun(nil, "verify", "--certificate-identity", klIdentity(srv), "--certificate-oidc-issuer", srv.URL, image)
}

func servedTimestamp(t *testing.T, srv *testenv.Server) *metadata.Metadata[metadata.TimestampType] {
	t.Helper()
	raw, hdr := getOKHeader(t, srv.URL+server.TUFPath+"/timestamp.json")
	if hdr.Get("Cache-Control") != "no-cache" {
		t.Errorf("timestamp.json Cache-Control %q", hdr.Get("Cache-Control"))
	}
	md, err := metadata.Timestamp().FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// TestTUFEndpoint: the repository's files are served under /tuf/ (and only
// there), unauthenticated even with auth on, and its metadata verifies
// under the root.json kept in the data dir.
func TestTUFEndpoint(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	root1 := getOK(t, srv.URL+server.TUFPath+"/1.root.json", nil)
	root, err := metadata.Root().FromBytes(root1)
	if err != nil {
		t.Fatal(err)
	}
	ts := servedTimestamp(t, srv)
	if err := root.VerifyDelegate(tuf.RoleTimestamp, ts); err != nil {
		t.Errorf("served timestamp does not verify under root version 1: %v", err)
	}
	var targets struct {
		Signed struct {
			Targets map[string]json.RawMessage `json:"targets"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(getOK(t, srv.URL+server.TUFPath+"/1.targets.json", nil), &targets); err != nil {
		t.Fatal(err)
	}
	if len(targets.Signed.Targets) != 2 || targets.Signed.Targets[tuf.TrustedRootTarget] == nil || targets.Signed.Targets[tuf.SigningConfigTarget] == nil {
		t.Errorf("targets %v, want %s and %s", targets.Signed.Targets, tuf.TrustedRootTarget, tuf.SigningConfigTarget)
	}
	for _, p := range []string{server.TUFPath, server.TUFPath + "/2.root.json", server.TUFPath + "/../keys/ca-root.pem", server.TUFPath + "/.lock"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
	// Restarting publishes nothing new.
	repo, closeRepo, err := server.OpenTUF(context.Background(), server.Database{DataDir: srv.DataDir}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRepo()
	st, err := repo.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range st.Roles {
		if rs.Version != 1 {
			t.Errorf("%s version %d on a fresh server", rs.Role, rs.Version)
		}
	}
	if _, _, err := server.OpenTUF(context.Background(), server.Database{DataDir: t.TempDir()}, 0, nil); err == nil || !strings.Contains(err.Error(), "--data-dir") {
		t.Errorf("opening the repository of an empty dir: %v", err)
	}
}

// TestTUFClientsFollowCARotation: after `hallmark ca rotate` and a restart,
// the server issues from the new CA and publishes a trusted root listing
// both (the old one valid until the restart) as a new TUF target. Clients
// initialized before sign and verify with the new CA, which a client
// holding the old trusted root refuses, and signatures made before the
// rotation still verify.
func TestTUFClientsFollowCARotation(t *testing.T) {
	srv, stop := testenv.StartStoppableServer(t, nil)
	peers := []string{"cosign", "cosign3"}
	clients := map[string]*cosignCLI{}
	before := map[string]string{} // peer -> image signed before the rotation
	for _, peer := range peers {
		clients[peer] = newTUFCosign(t, peer, srv)
		before[peer], _ = klPush(t, srv, "grp/app/"+peer, "v1")
		tufSign(t, clients[peer], srv, before[peer])
	}
	oldTrust := klDownloadTrust(t, srv)
	stop()
	n, root2, err := server.RotateCA(context.Background(), server.Database{DataDir: srv.DataDir}, "", time.Now())
	if err != nil || n != 2 {
		t.Fatalf("rotate CA: %d %v", n, err)
	}
	srv2 := testenv.StartServer(t, func(c *config.Server) { c.DataDir, c.Addr = srv.DataDir, srv.Addr })
	tr, err := sgroot.NewTrustedRootFromJSON(getOK(t, srv2.URL+server.TrustedRootPath, nil))
	if err != nil {
		t.Fatal(err)
	}
	cas := tr.FulcioCertificateAuthorities()
	if len(cas) != 2 {
		t.Fatalf("trusted root lists %d CAs after a rotation, want 2", len(cas))
	}
	first, second := cas[0].(*sgroot.FulcioCertificateAuthority), cas[1].(*sgroot.FulcioCertificateAuthority)
	if first.ValidityPeriodEnd.IsZero() || !second.ValidityPeriodEnd.IsZero() || !second.Root.Equal(root2) {
		t.Fatalf("CA windows: old until %v, new until %v; new root is the rotated one: %v", first.ValidityPeriodEnd, second.ValidityPeriodEnd, second.Root.Equal(root2))
	}
	for _, peer := range peers {
		c := clients[peer]
		image, dgst := klPush(t, srv2, "grp/app/"+peer, "v2")
		tufSign(t, c, srv2, image)
		// The server's index trusts the new generation too.
		var sigs struct {
			Signatures []struct {
				Status, StatusDetail string
			} `json:"signatures"`
		}
		testenv.WaitIndexed(t, srv2.URL)
		getJSON(t, srv2.URL+"/api/v1/images/grp/app/"+peer+"/signatures?digest="+dgst.String(), &sigs)
		if len(sigs.Signatures) != 1 || sigs.Signatures[0].Status != "verified" {
			t.Errorf("index of the new CA's signature: %+v", sigs.Signatures)
		}
		if peer == "cosign" {
			// A signature of the old generation pushed after the rotation
			// (copied with its image) is verified under the old CA's window.
			ref, _ := name.ParseReference(before[peer])
			d, _ := v1.NewHash(ref.Identifier())
			for _, src := range []string{before[peer], srv.Addr + "/grp/app/" + peer + ":sha256-" + d.Hex + ".sig"} {
				from, _ := name.ParseReference(src)
				img, err := remote.Image(from)
				if err != nil {
					t.Fatal(err)
				}
				to, _ := name.ParseReference(strings.Replace(src, "/grp/app/"+peer, "/grp/app/copied", 1))
				if err := remote.Write(to, img); err != nil {
					t.Fatal(err)
				}
			}
			testenv.WaitIndexed(t, srv2.URL)
			getJSON(t, srv2.URL+"/api/v1/images/grp/app/copied/signatures?digest="+d.String(), &sigs)
			if len(sigs.Signatures) != 1 || sigs.Signatures[0].Status != "verified" {
				t.Errorf("index of the old CA's signature pushed after the rotation: %+v", sigs.Signatures)
			}
		}
		for _, img := range []string{image, before[peer]} {
			c.mustRun(nil, "verify", "--certificate-identity", klIdentity(srv2), "--certificate-oidc-issuer", srv2.URL, "-a", "tag=v1", img)
		}
		// The old trusted root does not know the new CA.
		stale := newCosignCLI(t, peer)
		out, err := stale.run(nil, "verify", "--trusted-root", oldTrust.trustedRoot, "--certificate-identity", klIdentity(srv2),
			"--certificate-oidc-issuer", srv2.URL, image)
		if err == nil {
			t.Errorf("%s verified a signature of the new CA with the old trusted root:\n%s", peer, out)
		} else {
			t.Logf("%s with the old trusted root: %s", peer, out)
		}
	}
}

// tufSign signs image with c, trust and services from the TUF repository
// (cosign v2: the service URLs, its legacy signing takes no signing
// config).
func tufSign(t *testing.T, c *cosignCLI, srv *testenv.Server, image string) {
	t.Helper()
	token := klMint(t, srv)
	if strings.HasSuffix(c.bin, "cosign3") {
		c.mustRun([]string{"SIGSTORE_ID_TOKEN=" + token}, "sign", "-y", "-a", "tag=v1", image)
		return
	}
	out := c.mustRun(nil, "sign", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--identity-token", token, "-a", "tag=v1", image)
	if !strings.Contains(out, "Successfully verified SCT") {
		t.Errorf("cosign sign did not verify the SCT with the TUF trusted root:\n%s", out)
	}
}
