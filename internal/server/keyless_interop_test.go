package server_test

// Acceptance tests of the keyless services with REAL sigstore clients, the
// only trust being what the server publishes: cosign v2.6.5 (legacy .sig
// format, Fulcio v1 API, Rekor v1) and cosign v3.1.3 (signing config,
// bundle referrer, Fulcio v2 API) sign with a token from the built-in
// issuer and verify with the served trusted_root.json; sigstore-go verifies
// the bundle cosign v3 pushed. No insecure flag, no SIGSTORE_* variable and
// no network: HOME and TUF_ROOT are private and a dead HTTP(S) proxy makes
// any attempt to reach the public TUF repository fail (loopback is never
// proxied), which the tests check for.

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

const (
	klProject = "grp/app"
	klSHA     = "714a629c0b401fdce83e847fc9589983fc6f46bc"
)

// klIdentity is the certificate identity of a job of klProject on main:
// the token's issuer scheme + ci_config_ref_uri, i.e.
// "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/main".
func klIdentity(srv *testenv.Server) string {
	return srv.URL + "/" + klProject + "//.gitlab-ci.yml@refs/heads/main"
}

// klMint mints a built-in issuer token (aud sigstore) for a job of
// klProject on main, as `hallmark token issue` does.
func klMint(t *testing.T, srv *testenv.Server) string {
	t.Helper()
	return mintIDToken(t, srv.URL, srv.DataDir,
		fmt.Sprintf(`{"aud":"sigstore","project":%q,"ref":"main","sha":%q,"pipeline_id":"574","job_id":"302"}`, klProject, klSHA))
}

// klTrust is the trust material downloaded from a server, pinned against
// the fingerprint of the copy in the server's data dir (the out-of-band
// channel of this test).
type klTrust struct {
	trustedRoot, signingConfig string // file paths
	raw                        []byte // trusted_root.json bytes
}

func klDownloadTrust(t *testing.T, srv *testenv.Server) klTrust {
	t.Helper()
	dir := t.TempDir()
	tr := getOK(t, srv.URL+server.TrustedRootPath, nil)
	sc := getOK(t, srv.URL+server.SigningConfigPath, nil)
	local, err := os.ReadFile(filepath.Join(srv.DataDir, server.TrustDir, root.TrustedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := root.CheckFingerprint(tr, root.Fingerprint(local)); err != nil {
		t.Fatalf("served trusted root is not the one in the data dir: %v", err)
	}
	k := klTrust{trustedRoot: filepath.Join(dir, root.TrustedRootFile), signingConfig: filepath.Join(dir, root.SigningConfigFile), raw: tr}
	for p, b := range map[string][]byte{k.trustedRoot: tr, k.signingConfig: sc} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// klPush pushes a random image to srv as repo:tag and returns
// host/repo@digest.
func klPush(t *testing.T, srv *testenv.Server, repo, tag string) (string, v1.Hash) {
	t.Helper()
	ref, err := name.ParseReference(srv.Addr + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A transport of our own, closed afterwards: connections ggcr dialled
	// for parallel uploads but never used would otherwise hold up the
	// server's graceful shutdown.
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return srv.Addr + "/" + repo + "@" + d.String(), d
}

// cosignCLI runs a real cosign binary in testenv.ToolEnv: a private HOME
// and TUF cache, no SIGSTORE_*/COSIGN_*/TUF_* variables from the caller,
// and a dead proxy for non-loopback traffic.
type cosignCLI struct {
	t   *testing.T
	bin string
	env []string
	// viaTUF: trust comes from the server's TUF repository (`cosign
	// initialize`), so TUF messages are expected; the public repository
	// must still never be named.
	viaTUF bool
}

func newCosignCLI(t *testing.T, peer string) *cosignCLI {
	bin := testenv.Peer(t, peer)
	return &cosignCLI{t: t, bin: bin, env: testenv.ToolEnv(t, t.TempDir(), true)}
}

// run runs cosign with args (extra environment first) and returns its
// combined output. Output mentioning TUF fails the test: trust must come
// from the files given, never from the public TUF repository.
func (c *cosignCLI) run(extraEnv []string, args ...string) (string, error) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(append([]string{}, c.env...), extraEnv...)
	out, err := cmd.CombinedOutput()
	if c.viaTUF && bytes.Contains(out, []byte("tuf-repo-cdn")) || !c.viaTUF && tufRE.Match(out) {
		c.t.Errorf("%s %s consulted TUF:\n%s", filepath.Base(c.bin), strings.Join(args, " "), out)
	}
	return string(out), err
}

func (c *cosignCLI) mustRun(extraEnv []string, args ...string) string {
	c.t.Helper()
	out, err := c.run(extraEnv, args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", filepath.Base(c.bin), strings.Join(args, " "), err, out)
	}
	return out
}

// mustFail runs cosign, expecting failure with wantErr in the output.
func (c *cosignCLI) mustFail(wantErr string, args ...string) {
	c.t.Helper()
	out, err := c.run(nil, args...)
	if err == nil {
		c.t.Errorf("%s %s succeeded, want failure:\n%s", filepath.Base(c.bin), strings.Join(args, " "), out)
		return
	}
	if !strings.Contains(out, wantErr) {
		c.t.Errorf("%s %s failed without %q:\n%s", filepath.Base(c.bin), strings.Join(args, " "), wantErr, out)
	}
}

// tufRE matches cosign's messages about reaching or using the public TUF
// repository.
var tufRE = regexp.MustCompile(`(?i)TUF repository|tuf-repo-cdn|tuf refresh|TUF client|live trusted root|TUF metadata`)

var tlogIndexRE = regexp.MustCompile(`tlog entry created with index: (\d+)`)

// klCosign2Sign signs image with cosign v2.6.5 in the legacy format, with
// the server as Fulcio and Rekor, trusting only its trusted root (which
// holds the CT log key cosign checks the embedded SCT with), and returns
// the log index of the entry.
func klCosign2Sign(t *testing.T, c *cosignCLI, srv *testenv.Server, trust klTrust, image string) int64 {
	t.Helper()
	out := c.mustRun(nil, "sign", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", trust.trustedRoot,
		"--identity-token", klMint(t, srv),
		"-a", "tag=v1", "-a", "com.gitlab.ci.commit.sha="+klSHA, "-a", "com.gitlab.ci.pipeline.id=574",
		"-a", "com.gitlab.ci.project.path="+klProject, image)
	if !strings.Contains(out, "Successfully verified SCT") {
		t.Errorf("cosign sign did not verify the embedded SCT:\n%s", out)
	}
	m := tlogIndexRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("cosign sign printed no tlog index:\n%s", out)
	}
	idx, _ := strconv.ParseInt(m[1], 10, 64)
	return idx
}

// TestTrustEndpoints: the served trusted root and signing config are what
// sigstore-go accepts, name the server's CA chain, CT key and log key under
// the IDs clients compute, equal the files kept in the data dir, and are
// cacheable by ETag.
func TestTrustEndpoints(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	trRaw, hdr := getOKHeader(t, srv.URL+server.TrustedRootPath)
	tr, err := sgroot.NewTrustedRootFromJSON(trRaw)
	if err != nil {
		t.Fatalf("sigstore-go rejects the served trusted root: %v\n%s", err, trRaw)
	}
	// The log: keyed by SHA-256 of the key GET /api/v1/log/publicKey serves.
	pubPEM := getOK(t, srv.URL+"/api/v1/log/publicKey", nil)
	blk, _ := pem.Decode(pubPEM)
	if blk == nil {
		t.Fatalf("log public key is not PEM: %s", pubPEM)
	}
	sum := sha256.Sum256(blk.Bytes)
	tl, ok := tr.RekorLogs()[hex.EncodeToString(sum[:])]
	if !ok || tl.BaseURL != srv.URL || tl.ValidityPeriodStart.IsZero() {
		t.Fatalf("tlog not found under the ID clients compute, or wrong base URL: %+v", tr.RekorLogs())
	}
	// The CT log: the CA's key in the data dir.
	ctRaw, err := os.ReadFile(filepath.Join(srv.DataDir, "keys", "ctlog.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ctKey, err := keystore.Parse(ctRaw)
	if err != nil {
		t.Fatal(err)
	}
	ctDER, _ := x509.MarshalPKIXPublicKey(ctKey.Public())
	sum = sha256.Sum256(ctDER)
	if _, ok := tr.CTLogs()[hex.EncodeToString(sum[:])]; !ok {
		t.Errorf("CT log key missing from the trusted root")
	}
	// The CA: the chain of /api/v2/trustBundle, intermediate then root.
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	raw := getOK(t, srv.URL+"/api/v2/trustBundle", nil)
	if err := json.Unmarshal(raw, &tb); err != nil || len(tb.Chains) != 1 || len(tb.Chains[0].Certificates) != 2 {
		t.Fatalf("trust bundle: %v %s", err, raw)
	}
	cas := tr.FulcioCertificateAuthorities()
	if len(cas) != 1 {
		t.Fatalf("%d certificate authorities", len(cas))
	}
	fca := cas[0].(*sgroot.FulcioCertificateAuthority)
	for i, want := range []*x509.Certificate{fca.Intermediates[0], fca.Root} {
		b, _ := pem.Decode([]byte(tb.Chains[0].Certificates[i]))
		if b == nil || !bytes.Equal(b.Bytes, want.Raw) {
			t.Errorf("trusted root certificate %d is not the trust bundle's", i)
		}
	}
	if fca.URI != srv.URL || !fca.ValidityPeriodStart.Equal(fca.Root.NotBefore) {
		t.Errorf("CA uri %s valid from %v (root NotBefore %v)", fca.URI, fca.ValidityPeriodStart, fca.Root.NotBefore)
	}

	// The signing config selects the server as Fulcio (API 1, i.e. the v2
	// endpoint) and Rekor v1, and names the built-in issuer.
	scRaw := getOK(t, srv.URL+server.SigningConfigPath, nil)
	sc, err := sgroot.NewSigningConfigFromJSON(scRaw)
	if err != nil {
		t.Fatalf("sigstore-go rejects the served signing config: %v\n%s", err, scRaw)
	}
	if s, err := sgroot.SelectService(sc.FulcioCertificateAuthorityURLs(), []uint32{1}, tl.ValidityPeriodStart.Add(1)); err != nil || s.URL != srv.URL {
		t.Errorf("CA selection: %v %+v", err, s)
	}
	if s, err := sgroot.SelectServices(sc.RekorLogURLs(), sc.RekorLogURLsConfig(), []uint32{1, 2}, tl.ValidityPeriodStart.Add(1)); err != nil || len(s) != 1 || s[0].URL != srv.URL || s[0].MajorAPIVersion != 1 {
		t.Errorf("log selection: %v %+v", err, s)
	}
	if s, err := sgroot.SelectService(sc.OIDCProviderURLs(), []uint32{1}, tl.ValidityPeriodStart.Add(1)); err != nil || s.URL != srv.URL {
		t.Errorf("OIDC selection: %v %+v", err, s)
	}
	if len(sc.TimestampAuthorityURLs()) != 0 {
		t.Errorf("signing config names a TSA: %+v", sc.TimestampAuthorityURLs())
	}

	// Offline copies in the data dir are the served bytes; the ETag is the
	// fingerprint and revalidation works.
	for file, served := range map[string][]byte{root.TrustedRootFile: trRaw, root.SigningConfigFile: scRaw} {
		local, err := os.ReadFile(filepath.Join(srv.DataDir, server.TrustDir, file))
		if err != nil || !bytes.Equal(local, served) {
			t.Errorf("%s in the data dir differs from the served one (%v)", file, err)
		}
	}
	for _, f := range []string{root.FulcioChainFile, root.RekorKeyFile, root.CTLogKeyFile} {
		if fi, err := os.Stat(filepath.Join(srv.DataDir, server.TrustDir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("legacy file %s: %v", f, err)
		}
	}
	if et := hdr.Get("ETag"); et != `"`+root.Fingerprint(trRaw)+`"` {
		t.Errorf("ETag %s", et)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+server.TrustedRootPath, nil)
	req.Header.Set("If-None-Match", hdr.Get("ETag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	t.Run("without the built-in issuer", func(t *testing.T) {
		srv := testenv.StartServer(t, func(c *config.Server) { c.OIDCBuiltin = false })
		scRaw := getOK(t, srv.URL+server.SigningConfigPath, nil)
		sc, err := root.ParseSigningConfig(scRaw)
		if err != nil || len(sc.OIDCURLs) != 0 || len(sc.CAURLs) != 1 {
			t.Errorf("signing config without the built-in issuer: %v\n%s", err, scRaw)
		}
	})
}

// TestKeylessInteropRealClients is the keyless acceptance test: cosign v2
// and v3 sign against the server with a built-in issuer token and verify
// with only its trusted root (and each other's signatures); sigstore-go
// verifies the v3 bundle and the v2 signature with the log's proof.
func TestKeylessInteropRealClients(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	trust := klDownloadTrust(t, srv)
	identity := klIdentity(srv)
	// Another Hallmark server: its trusted root must not validate srv's
	// signatures.
	foreign := klDownloadTrust(t, testenv.StartServer(t, nil))
	var legacyImage, bundleImage string    // signed by cosign v2 and v3
	var legacyBundle, legacyPayload []byte // cosign v2's signature + its log entry as a sigstore bundle; its payload
	var legacyDigest v1.Hash               // the image cosign v2 signed

	t.Run("cosign v2 legacy format", func(t *testing.T) {
		c := newCosignCLI(t, "cosign")
		image, dgst := klPush(t, srv, klProject, "v1")
		idx := klCosign2Sign(t, c, srv, trust, image)
		legacyImage = image

		// The entry is in Hallmark's log and holds the signature cosign
		// attached to the image.
		entryRaw := getOK(t, fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", srv.URL, idx), nil)
		var entries map[string]struct {
			Body     string `json:"body"`
			LogIndex int64  `json:"logIndex"`
		}
		if err := json.Unmarshal(entryRaw, &entries); err != nil || len(entries) != 1 {
			t.Fatalf("log entry %d: %v %s", idx, err, entryRaw)
		}
		var rekord struct {
			Kind string `json:"kind"`
			Spec struct {
				Signature struct {
					Content string `json:"content"`
				} `json:"signature"`
			} `json:"spec"`
		}
		for _, e := range entries {
			body, _ := base64.StdEncoding.DecodeString(e.Body)
			if err := json.Unmarshal(body, &rekord); err != nil || rekord.Kind != "hashedrekord" || e.LogIndex != idx {
				t.Fatalf("log entry %d: %v %s", idx, err, body)
			}
		}
		sigRef, _ := name.ParseReference(srv.Addr + "/" + klProject + ":sha256-" + dgst.Hex + ".sig")
		sigImg, err := remote.Image(sigRef)
		if err != nil {
			t.Fatalf("signature manifest: %v", err)
		}
		mf, _ := sigImg.Manifest()
		if len(mf.Layers) != 1 || mf.Layers[0].Annotations["dev.cosignproject.cosign/signature"] != rekord.Spec.Signature.Content {
			t.Errorf("the log entry's signature is not the one attached to the image")
		}
		layers, err := sigImg.Layers()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		payload, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		legacyBundle, legacyPayload, legacyDigest = testenv.LegacyBundle(t, entryRaw, mf.Layers[0].Annotations, payload), payload, dgst

		args := func(id, issuer, tag string, tr klTrust) []string {
			return []string{"verify", "--trusted-root", tr.trustedRoot, "--certificate-identity", id,
				"--certificate-oidc-issuer", issuer, "--annotations", "tag=" + tag, image}
		}
		out := c.mustRun(nil, args(identity, srv.URL, "v1", trust)...)
		for _, want := range []string{`"Subject":"` + identity + `"`, `"Issuer":"` + srv.URL + `"`, `"tag":"v1"`,
			`"com.gitlab.ci.commit.sha":"` + klSHA + `"`, "verified offline", "trusted certificate authority"} {
			if !strings.Contains(out, want) {
				t.Errorf("cosign verify output lacks %s:\n%s", want, out)
			}
		}
		c.mustFail("none of the expected identities matched", args(srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main", srv.URL, "v1", trust)...)
		c.mustFail("none of the expected identities matched", args(identity, "https://gitlab.com", "v1", trust)...)
		c.mustFail("missing or incorrect annotation", args(identity, srv.URL, "v2", trust)...)
		c.mustFail("no matching signatures", args(identity, srv.URL, "v1", foreign)...)

		// cosign v2's legacy trust: the PEM files the server keeps in its
		// data dir (what `hallmark trust export` writes), no trusted root.
		td := filepath.Join(srv.DataDir, server.TrustDir)
		out = c.mustRun([]string{"SIGSTORE_ROOT_FILE=" + filepath.Join(td, root.FulcioChainFile),
			"SIGSTORE_REKOR_PUBLIC_KEY=" + filepath.Join(td, root.RekorKeyFile),
			"SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + filepath.Join(td, root.CTLogKeyFile)},
			"verify", "--certificate-identity", identity, "--certificate-oidc-issuer", srv.URL, "--annotations", "tag=v1", image)
		if !strings.Contains(out, `"Subject":"`+identity+`"`) {
			t.Errorf("cosign verify with the legacy PEM files:\n%s", out)
		}
	})

	var bundleJSON []byte
	var signed v1.Hash
	t.Run("cosign v3 signing config", func(t *testing.T) {
		c := newCosignCLI(t, "cosign3")
		image, dgst := klPush(t, srv, klProject+"3", "v1")
		signed = dgst
		bundleImage = image
		c.mustRun(nil, "sign", "-y", "--signing-config", trust.signingConfig, "--trusted-root", trust.trustedRoot,
			"--identity-token", klMint(t, srv), "-a", "tag=v1", "-a", "com.gitlab.ci.commit.sha="+klSHA, image)
		args := func(id, issuer string, tr klTrust) []string {
			return []string{"verify", "--trusted-root", tr.trustedRoot, "--certificate-identity", id,
				"--certificate-oidc-issuer", issuer, "--annotations", "tag=v1", image}
		}
		out := c.mustRun(nil, args(identity, srv.URL, trust)...)
		if !strings.Contains(out, `"tag":"v1"`) || !strings.Contains(out, "https://sigstore.dev/cosign/sign/v1") ||
			!strings.Contains(out, "verified offline") {
			t.Errorf("cosign3 verify output:\n%s", out)
		}
		c.mustFail(`expected SAN value "`+srv.URL+`/grp/other//.gitlab-ci.yml@refs/heads/main"`, args(srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main", srv.URL, trust)...)
		c.mustFail(`expected issuer value "https://gitlab.com"`, args(identity, "https://gitlab.com", trust)...)
		if out, err := c.run(nil, args(identity, srv.URL, foreign)...); err == nil {
			t.Errorf("cosign3 verify with another server's trusted root succeeded:\n%s", out)
		}

		// The bundle is an OCI 1.1 referrer of the image.
		bundleJSON = klReferrerBundle(t, srv, klProject+"3", dgst)
	})

	t.Run("cross version", func(t *testing.T) {
		if legacyImage == "" || bundleImage == "" {
			t.Skip("needs the signatures of both cosign subtests")
		}
		args := func(image string) []string {
			return []string{"verify", "--trusted-root", trust.trustedRoot, "--certificate-identity", identity,
				"--certificate-oidc-issuer", srv.URL, "--annotations", "tag=v1", image}
		}
		if out := newCosignCLI(t, "cosign3").mustRun(nil, args(legacyImage)...); !strings.Contains(out, `"type":"cosign container image signature"`) {
			t.Errorf("cosign3 verify of the cosign v2 signature:\n%s", out)
		}
		if out := newCosignCLI(t, "cosign").mustRun(nil, args(bundleImage)...); !strings.Contains(out, "https://sigstore.dev/cosign/sign/v1") {
			t.Errorf("cosign v2 verify of the cosign v3 bundle:\n%s", out)
		}
	})

	t.Run("sigstore-go verifies the cosign v2 signature", func(t *testing.T) {
		if legacyBundle == nil {
			t.Skip("no signature: the cosign v2 subtest did not produce one")
		}
		tr, err := sgroot.NewTrustedRootFromJSON(trust.raw)
		if err != nil {
			t.Fatal(err)
		}
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(legacyBundle); err != nil {
			t.Fatalf("bundle: %v\n%s", err, legacyBundle)
		}
		v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
		if err != nil {
			t.Fatal(err)
		}
		// The signed payload names the image; the policy checks the
		// signature is over that payload.
		var payload struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
		}
		if err := json.Unmarshal(legacyPayload, &payload); err != nil || payload.Critical.Image.Digest != legacyDigest.String() {
			t.Fatalf("payload %s does not name %s: %v", legacyPayload, legacyDigest, err)
		}
		digest := sha256.Sum256(legacyPayload)
		id, _ := sgverify.NewShortCertificateIdentity(srv.URL, "", identity, "")
		policy := sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest[:]), sgverify.WithCertificateIdentity(id))
		res, err := v.Verify(&b, policy)
		if err != nil {
			t.Fatalf("sigstore-go rejects the cosign v2 signature with Hallmark's log proof: %v", err)
		}
		if res.Signature.Certificate.SubjectAlternativeName != identity {
			t.Errorf("identity %s", res.Signature.Certificate.SubjectAlternativeName)
		}
		other := sha256.Sum256(append(append([]byte{}, legacyPayload...), ' '))
		if _, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", other[:]), sgverify.WithCertificateIdentity(id))); err == nil {
			t.Error("sigstore-go accepted the signature for another payload")
		}
		// Another server's trusted root does not verify it.
		otherTR, _ := sgroot.NewTrustedRootFromJSON(foreign.raw)
		ov, _ := sgverify.NewVerifier(otherTR, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
		if _, err := ov.Verify(&b, policy); err == nil {
			t.Error("sigstore-go accepted the signature with another server's trusted root")
		}
	})

	t.Run("sigstore-go verifies the bundle", func(t *testing.T) {
		if bundleJSON == nil {
			t.Skip("no bundle: the cosign v3 subtest did not produce one")
		}
		tr, err := sgroot.NewTrustedRootFromJSON(trust.raw)
		if err != nil {
			t.Fatal(err)
		}
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(bundleJSON); err != nil {
			t.Fatalf("bundle: %v", err)
		}
		v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
		if err != nil {
			t.Fatal(err)
		}
		policy := func(san string) sgverify.PolicyBuilder {
			id, err := sgverify.NewShortCertificateIdentity(srv.URL, "", san, "")
			if err != nil {
				t.Fatal(err)
			}
			digest, _ := hex.DecodeString(signed.Hex)
			return sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest), sgverify.WithCertificateIdentity(id))
		}
		res, err := v.Verify(&b, policy(identity))
		if err != nil {
			t.Fatalf("sigstore-go rejects the bundle: %v", err)
		}
		cert := res.Signature.Certificate
		if cert.SubjectAlternativeName != identity || cert.Issuer != srv.URL || cert.SourceRepositoryDigest != klSHA ||
			cert.SourceRepositoryRef != "refs/heads/main" {
			t.Errorf("certificate summary: %+v", cert)
		}
		if len(res.VerifiedTimestamps) == 0 {
			t.Error("no verified timestamp (the log's integrated time)")
		}
		if _, err := v.Verify(&b, policy(srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main")); err == nil {
			t.Error("sigstore-go accepted another identity")
		}
		otherTR, _ := sgroot.NewTrustedRootFromJSON(foreign.raw)
		ov, _ := sgverify.NewVerifier(otherTR, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
		if _, err := ov.Verify(&b, policy(identity)); err == nil {
			t.Error("sigstore-go accepted the bundle with another server's trusted root")
		}
		// A bundle whose signature was tampered with is rejected.
		var generic map[string]any
		json.Unmarshal(bundleJSON, &generic)
		env := generic["dsseEnvelope"].(map[string]any)
		sig := env["signatures"].([]any)[0].(map[string]any)
		raw, _ := base64.StdEncoding.DecodeString(sig["sig"].(string))
		raw[len(raw)-1] ^= 1
		sig["sig"] = base64.StdEncoding.EncodeToString(raw)
		tampered, _ := json.Marshal(generic)
		var tb sgbundle.Bundle
		if err := tb.UnmarshalJSON(tampered); err == nil {
			if _, err := v.Verify(&tb, policy(identity)); err == nil {
				t.Error("sigstore-go accepted a tampered bundle")
			}
		}
	})
}

// klReferrerBundle returns the sigstore bundle attached to repo@dgst as an
// OCI 1.1 referrer.
func klReferrerBundle(t *testing.T, srv *testenv.Server, repo string, dgst v1.Hash) []byte {
	t.Helper()
	subject, err := name.NewDigest(srv.Addr + "/" + repo + "@" + dgst.String())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(subject)
	if err != nil {
		t.Fatalf("referrers: %v", err)
	}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		if d.ArtifactType != "application/vnd.dev.sigstore.bundle.v0.3+json" {
			continue
		}
		img, err := remote.Image(subject.Context().Digest(d.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("bundle manifest layers: %v", err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Fatalf("no sigstore bundle among the referrers of %s: %+v", subject, im.Manifests)
	return nil
}

// TestKeylessTrustSurvivesRestart: after a restart on the same address the
// trusted root is byte-identical, a signature made before the restart
// verifies with it, the log continues (consistency proof between the
// heads before and after), and new signatures verify too.
func TestKeylessTrustSurvivesRestart(t *testing.T) {
	c := newCosignCLI(t, "cosign")
	dataDir := t.TempDir()
	var (
		addr, image string
		before      klTrust
		head        struct {
			RootHash string `json:"rootHash"`
			TreeSize uint64 `json:"treeSize"`
		}
	)
	t.Run("before restart", func(t *testing.T) {
		srv := testenv.StartServer(t, func(cfg *config.Server) { cfg.DataDir = dataDir })
		addr = srv.Addr
		before = klDownloadTrust(t, srv)
		image, _ = klPush(t, srv, klProject, "v1")
		klCosign2Sign(t, c, srv, before, image)
		raw := getOK(t, srv.URL+"/api/v1/log", nil)
		if err := json.Unmarshal(raw, &head); err != nil || head.TreeSize == 0 {
			t.Fatalf("log info: %v %s", err, raw)
		}
	})
	if addr == "" {
		t.FailNow()
	}
	t.Run("after restart", func(t *testing.T) {
		srv := testenv.StartServer(t, func(cfg *config.Server) { cfg.DataDir = dataDir; cfg.Addr = addr })
		after := klDownloadTrust(t, srv)
		if !bytes.Equal(after.raw, before.raw) {
			t.Fatalf("trusted root changed across the restart:\n%s\n---\n%s", before.raw, after.raw)
		}
		identity := klIdentity(srv)
		verifyArgs := []string{"verify", "--trusted-root", after.trustedRoot, "--certificate-identity", identity,
			"--certificate-oidc-issuer", srv.URL, "--annotations", "tag=v1", image}
		if out := c.mustRun(nil, verifyArgs...); strings.Count(out, `"Subject":"`+identity+`"`) != 1 {
			t.Errorf("pre-restart signature:\n%s", out)
		}
		// The log goes on from where it was, consistently.
		idx := klCosign2Sign(t, c, srv, after, image)
		if uint64(idx) != head.TreeSize {
			t.Errorf("first entry after restart has index %d, want %d", idx, head.TreeSize)
		}
		var now struct {
			RootHash string `json:"rootHash"`
			TreeSize uint64 `json:"treeSize"`
		}
		raw := getOK(t, srv.URL+"/api/v1/log", nil)
		if err := json.Unmarshal(raw, &now); err != nil || now.TreeSize != head.TreeSize+1 {
			t.Fatalf("log info after restart: %v %s", err, raw)
		}
		var cp struct {
			Hashes []string `json:"hashes"`
		}
		raw = getOK(t, fmt.Sprintf("%s/api/v1/log/proof?firstSize=%d&lastSize=%d", srv.URL, head.TreeSize, now.TreeSize), nil)
		if err := json.Unmarshal(raw, &cp); err != nil {
			t.Fatalf("consistency proof: %v %s", err, raw)
		}
		var hashes [][]byte
		for _, h := range cp.Hashes {
			b, _ := hex.DecodeString(h)
			hashes = append(hashes, b)
		}
		r1, _ := hex.DecodeString(head.RootHash)
		r2, _ := hex.DecodeString(now.RootHash)
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, head.TreeSize, now.TreeSize, hashes, r1, r2); err != nil {
			t.Errorf("consistency between the heads before and after the restart: %v", err)
		}
		// Both signatures, before and after the restart, verify.
		if out := c.mustRun(nil, verifyArgs...); strings.Count(out, `"Subject":"`+identity+`"`) != 2 {
			t.Errorf("want both signatures verified:\n%s", out)
		}
	})
}
