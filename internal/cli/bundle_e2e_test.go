package cli_test

// The bundle layout (sigstore bundle referrers, cosign v3's default and
// hallmark's) end to end: hallmark signs and attests, real cosign v3, real
// cosign v2 and sigstore-go verify; images that carry both layouts; and
// sign-blob / verify-blob in both directions, keyless and with keys.

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgroot "github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/bundle"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// imageBundles reads the sigstore bundle referrers of img.
func imageBundles(t *testing.T, img name.Digest) []oci.ReferrerBundle {
	t.Helper()
	h, _ := v1.NewHash(img.DigestStr())
	bs, err := oci.NewClient(oci.ClientConfig{}).BundleReferrers(context.Background(), img.Context(), h)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// sigstoreGo is sigstore-go's verifier with the trusted root at path,
// requiring what a keyless bundle from Hallmark carries: an SCT, a log
// entry and its integrated time.
func sigstoreGo(t *testing.T, path string) *sgverify.Verifier {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := sgroot.NewTrustedRootFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	v, err := sgverify.NewVerifier(tr, sgverify.WithSignedCertificateTimestamps(1), sgverify.WithTransparencyLog(1), sgverify.WithIntegratedTimestamps(1))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signCosign3 signs img keylessly with cosign v3 (bundle layout, services
// from Hallmark's signing config).
func (e *klEnv) signCosign3(img name.Digest, args ...string) {
	e.t.Helper()
	e.cs3.ok(append(append([]string{"sign", "-y", "--signing-config", filepath.Join(e.trustDir, root.SigningConfigFile), "--trusted-root", e.trustedRoot(),
		"--identity-token", e.token(klProject)}, args...), img.String())...)
}

// signCosign2 signs img keylessly with cosign v2 (legacy layout unless
// args say --new-bundle-format).
func (e *klEnv) signCosign2(img name.Digest, args ...string) {
	e.t.Helper()
	e.cs.ok(append(append([]string{"sign", "-y", "--fulcio-url", e.srv.URL, "--rekor-url", e.srv.URL, "--trusted-root", e.trustedRoot(),
		"--identity-token", e.token(klProject)}, args...), img.String())...)
}

// TestBundleHallmarkSignsCosignVerifies: hallmark sign and attest write the
// bundle layout by default; cosign v3 verifies them (stdout byte for byte
// as hallmark's, -a checked), cosign v2 verifies the signature (it reads
// bundles once there are any), and sigstore-go verifies the bundle read
// from the registry for the image's digest and the signer's identity.
func TestBundleHallmarkSignsCosignVerifies(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	if e.cs3 == nil {
		t.Skip("cosign3 is not installed (scripts/install-peers)")
	}
	img := pushImage(t, srv.Addr, klProject, "b1")
	env := append(e.gitlabEnv(klProject, "b1"), "SIGSTORE_ID_TOKEN="+e.token(klProject))
	r := e.hm.okEnv(env, "sign", "-y", "--ci-annotations", "--bundle", "sig.sigstore.json", img.String())
	if !strings.Contains(r.stderr, "Pushing signature to: "+img.Context().Name()) || !tlogIndexRE.MatchString(r.stderr) {
		t.Errorf("hallmark sign stderr:\n%s", r.stderr)
	}
	if m, _ := remoteManifest(t, sigTagOf(t, img)); len(m.Layers) != 0 {
		t.Error("the bundle layout also wrote the legacy .sig tag")
	}
	bs := imageBundles(t, img)
	if len(bs) != 1 || bs[0].PredicateType != payload.CosignSignPredicateType {
		t.Fatalf("bundle referrers: %+v", bs)
	}
	if file, _ := os.ReadFile(e.hm.path("sig.sigstore.json")); string(file) != string(bs[0].Raw) {
		t.Errorf("--bundle wrote other bytes than the referrer holds")
	}

	args := e.verifyArgs("-a", "tag=b1", "-a", "com.gitlab.ci.commit.sha="+klSHA)
	c3 := e.cs3.ok(append(append([]string{}, args...), "--trusted-root", e.trustedRoot(), img.String())...)
	hv := e.hm.ok(append(append([]string{}, args...), img.String())...)
	if c3.stdout != hv.stdout {
		t.Errorf("hallmark verify stdout differs from cosign v3's:\ncosign:   %q\nhallmark: %q", c3.stdout, hv.stdout)
	}
	if !strings.Contains(hv.stderr, "Layouts checked: legacy "+sigTagOf(t, img).TagStr()+": none; sigstore bundle referrers: 1 of 1 bundle(s) verified") {
		t.Errorf("hallmark verify does not say which layout it checked:\n%s", hv.stderr)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(hv.stdout)), &out); err != nil || len(out) != 1 {
		t.Fatalf("verify output: %v\n%s", err, hv.stdout)
	}
	if opt := out[0]["optional"].(map[string]any); len(opt) != 11 || opt["com.gitlab.ci.job.url"] != srv.URL+"/"+klProject+"/-/jobs/"+klJob {
		t.Errorf("optional: %v", opt)
	}
	// Both refuse an annotation that was not signed.
	e.cs3.fail(1, append(e.verifyArgs("-a", "tag=other", "--trusted-root", e.trustedRoot()), img.String())...)
	if r := e.hm.fail(12, append(e.verifyArgs("-a", "tag=other"), img.String())...); !strings.Contains(r.stderr, `annotation "tag" is "b1"`) {
		t.Errorf("hallmark -a tag=other: %s", r)
	}
	// cosign v2 reads the bundle (and checks no annotation: it passes
	// -a tag=other, the false pass hallmark and cosign v3 do not make).
	e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=b1"), img.String())...)
	e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=other"), img.String())...)

	// sigstore-go: the bundle is about this image, by this identity.
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(bs[0].Raw); err != nil {
		t.Fatalf("sigstore-go cannot read hallmark's bundle: %v", err)
	}
	h, _ := v1.NewHash(img.DigestStr())
	digest, _ := hex.DecodeString(h.Hex)
	id, _ := sgverify.NewShortCertificateIdentity(srv.URL, "", e.identity, "")
	v := sigstoreGo(t, e.trustedRoot())
	res, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest), sgverify.WithCertificateIdentity(id)))
	if err != nil {
		t.Fatalf("sigstore-go rejects hallmark's bundle: %v", err)
	}
	if res.Statement == nil || res.Statement.PredicateType != payload.CosignSignPredicateType || res.Signature.Certificate.SourceRepositoryDigest != klSHA {
		t.Errorf("sigstore-go result: %+v", res)
	}
	other := append([]byte{}, digest...)
	other[0] ^= 1
	if _, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", other), sgverify.WithCertificateIdentity(id))); err == nil {
		t.Error("sigstore-go accepted the bundle for another image")
	}

	// hallmark attest: cosign v3 and hallmark verify the attestation.
	pred := e.hm.path("pred.json")
	os.WriteFile(pred, []byte(`{"buildDefinition":{"buildType":"https://example/bt"},"runDetails":{"builder":{"id":"https://example/b"}}}`), 0o600)
	e.hm.ok("attest", "-y", "--identity-token", e.token(klProject), "--predicate", pred, "--type", "slsaprovenance1", img.String())
	vaArgs := []string{"verify-attestation", "--type", "slsaprovenance1", "--certificate-identity", e.identity, "--certificate-oidc-issuer", srv.URL}
	c3a := e.cs3.ok(append(append([]string{}, vaArgs...), "--trusted-root", e.trustedRoot(), img.String())...)
	ha := e.hm.ok(append(append([]string{}, vaArgs...), img.String())...)
	for _, o := range []string{c3a.stdout, ha.stdout} {
		if !strings.Contains(o, `"payloadType":"application/vnd.in-toto+json"`) {
			t.Errorf("verify-attestation output: %s", o)
		}
	}
	if !strings.Contains(ha.stderr, "sigstore bundle referrers: 1 of 1 bundle(s) verified") {
		t.Errorf("verify-attestation layouts:\n%s", ha.stderr)
	}
	// The attestation is not taken for a signature of the image.
	if hv2 := e.hm.ok(append(e.verifyArgs(), img.String())...); hv2.stdout != e.hm.ok(append(e.verifyArgs("--new-bundle-format"), img.String())...).stdout ||
		strings.Count(hv2.stdout, `"critical"`) != 1 {
		t.Errorf("verify after attest: %s", hv2.stdout)
	}
}

// TestBundleKeyHallmarkCosign3: with keys, hallmark's bundle verifies with
// cosign v3 and cosign v3's with hallmark, both printing the same.
func TestBundleKeyHallmarkCosign3(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	if e.cs3 == nil {
		t.Skip("cosign3 is not installed (scripts/install-peers)")
	}
	pw := []string{"COSIGN_PASSWORD=pw"}
	e.hm.okEnv(pw, "generate-key-pair")
	sc := filepath.Join(e.trustDir, root.SigningConfigFile)
	for _, signer := range []string{"hallmark", "cosign3"} {
		img := pushImage(t, srv.Addr, klProject, "k-"+signer)
		if signer == "hallmark" {
			e.hm.okEnv(pw, "sign", "-y", "--key", "cosign.key", "-a", "by=hallmark", img.String())
		} else {
			e.cs3.okEnv(pw, "sign", "-y", "--key", "cosign.key", "--signing-config", sc, "--trusted-root", e.trustedRoot(), "-a", "by=hallmark", img.String())
		}
		c3 := e.cs3.ok("verify", "--key", "cosign.pub", "--trusted-root", e.trustedRoot(), "-a", "by=hallmark", img.String())
		hv := e.hm.ok("verify", "--key", "cosign.pub", "-a", "by=hallmark", img.String())
		if c3.stdout != hv.stdout || !strings.Contains(hv.stdout, `"optional":{"by":"hallmark"}`) {
			t.Errorf("signed by %s: cosign v3 %q, hallmark %q", signer, c3.stdout, hv.stdout)
		}
		e.hm.fail(12, "verify", "--key", "cosign.pub", "-a", "by=cosign", img.String())
	}
	// COSIGN_REPOSITORY: the referrer is stored (and read) there.
	img := pushImage(t, srv.Addr, klProject, "k-repo")
	store := []string{"COSIGN_REPOSITORY=" + srv.Addr + "/grp/sigstore"}
	e.hm.okEnv(append(store, pw...), "sign", "-y", "--key", "cosign.key", img.String())
	if bs := imageBundles(t, img); len(bs) != 0 {
		t.Errorf("the bundle was stored in the image's repository: %+v", bs)
	}
	e.hm.okEnv(store, "verify", "--key", "cosign.pub", img.String())
	e.hm.fail(10, "verify", "--key", "cosign.pub", img.String())
}

var layoutsRE = regexp.MustCompile(`Layouts checked: legacy \S+: (none|\d of \d signature\(s\) verified); sigstore bundle referrers: (none|\d of \d bundle\(s\) verified)`)

// layouts returns what hallmark verify said each layout held.
func layouts(t *testing.T, stderr string) (legacy, bundles string) {
	t.Helper()
	m := layoutsRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no Layouts checked line in:\n%s", stderr)
	}
	return m[1], m[2]
}

// TestMixedLayouts: an image signed in both layouts, one side by real
// cosign (v2 legacy, v3 bundle, v2 bundle) and the other by hallmark, in
// both orders. hallmark verify checks every signature of both layouts
// against the whole policy: -a passes only for a signature that carries
// the annotation itself (never because the other layout has it), says
// what each layout held, and reads one layout when asked. cosign reads
// only the bundles: v3 fails the check that the .sig satisfies, v2 passes
// any -a.
func TestMixedLayouts(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	if e.cs3 == nil {
		t.Skip("cosign3 is not installed (scripts/install-peers)")
	}
	for _, tc := range []struct {
		name string
		// sign signs img in both layouts: the legacy signature with
		// tag=legacy, the bundle with bundleAnn (cosign v2.6 signs
		// bundles without annotations).
		sign      func(e *klEnv, img name.Digest)
		bundleTag string // the bundle's tag annotation; "" when it has none
	}{
		{"cosign v2 legacy, then hallmark bundle", func(e *klEnv, img name.Digest) {
			e.signCosign2(img, "-a", "tag=legacy")
			e.hm.ok("sign", "-y", "--identity-token", e.token(klProject), "-a", "tag=bundle", img.String())
		}, "bundle"},
		{"cosign v3 bundle, then hallmark legacy", func(e *klEnv, img name.Digest) {
			e.signCosign3(img, "-a", "tag=bundle")
			e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", e.token(klProject), "-a", "tag=legacy", img.String())
		}, "bundle"},
		{"hallmark legacy, then cosign v3 bundle", func(e *klEnv, img name.Digest) {
			e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", e.token(klProject), "-a", "tag=legacy", img.String())
			e.signCosign3(img, "-a", "tag=bundle")
		}, "bundle"},
		{"hallmark bundle, then cosign v2 legacy", func(e *klEnv, img name.Digest) {
			e.hm.ok("sign", "-y", "--identity-token", e.token(klProject), "-a", "tag=bundle", img.String())
			e.signCosign2(img, "-a", "tag=legacy")
		}, "bundle"},
		{"cosign v2 bundle without annotations, then hallmark legacy", func(e *klEnv, img name.Digest) {
			e.signCosign2(img, "--new-bundle-format", "-a", "tag=ignored-by-cosign-v2")
			e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", e.token(klProject), "-a", "tag=legacy", img.String())
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.with(t)
			img := pushImage(t, srv.Addr, klProject, "mixed")
			tc.sign(e, img)
			verify := func(code int, args ...string) result {
				t.Helper()
				r := e.hm.run(append(e.verifyArgs(args...), img.String())...)
				if r.code != code {
					t.Fatalf("hallmark verify %v: want exit %d, got %s", args, code, r)
				}
				return r
			}
			bundleVerified := "1 of 1 bundle(s) verified"

			// No -a: both verify, the .sig first.
			r := verify(0)
			if l, b := layouts(t, r.stderr); l != "1 of 1 signature(s) verified" || b != bundleVerified {
				t.Errorf("no -a: legacy %q, bundles %q", l, b)
			}
			if strings.Count(r.stdout, `"critical"`) != 2 || strings.Index(r.stdout, `"tag":"legacy"`) > strings.Index(r.stdout, payload.CosignSignPredicateType) {
				t.Errorf("no -a: %s", r.stdout)
			}
			// -a tag=legacy: only the .sig signature carries it.
			r = verify(0, "-a", "tag=legacy")
			if l, b := layouts(t, r.stderr); l != "1 of 1 signature(s) verified" || b != "0 of 1 bundle(s) verified" {
				t.Errorf("-a tag=legacy: legacy %q, bundles %q", l, b)
			}
			if strings.Count(r.stdout, `"critical"`) != 1 || !strings.Contains(r.stdout, `"tag":"legacy"`) {
				t.Errorf("-a tag=legacy: %s", r.stdout)
			}
			// ... so reading only the bundles fails it.
			r = verify(12, "--new-bundle-format", "-a", "tag=legacy")
			if !strings.Contains(r.stderr, "0 in the legacy tag") && !strings.Contains(r.stderr, "the legacy tag not read") {
				t.Errorf("bundles only: %s", r.stderr)
			}
			if tc.bundleTag != "" {
				r = verify(0, "-a", "tag="+tc.bundleTag)
				if l, b := layouts(t, r.stderr); l != "0 of 1 signature(s) verified" || b != bundleVerified {
					t.Errorf("-a tag=%s: legacy %q, bundles %q", tc.bundleTag, l, b)
				}
				verify(12, "--new-bundle-format=false", "-a", "tag="+tc.bundleTag)
				r = verify(0, "--new-bundle-format", "-a", "tag="+tc.bundleTag)
				if !strings.Contains(r.stderr, ": not read (--new-bundle-format)") {
					t.Errorf("bundles only: the line does not say the legacy tag was not read:\n%s", r.stderr)
				}
			}
			// An annotation neither layout signed fails, naming both.
			r = verify(12, "-a", "tag=anything")
			if !strings.Contains(r.stderr, "2 signature(s) checked (1 in the legacy tag") || !strings.Contains(r.stderr, "1 sigstore bundle referrer(s)") ||
				strings.Count(r.stderr, "annotation check failed") != 2 {
				t.Errorf("-a tag=anything:\n%s", r.stderr)
			}

			// cosign v3 reads only the bundle.
			c3 := e.cs3.run(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=legacy"), img.String())...)
			if c3.code == 0 {
				t.Errorf("cosign v3 passed -a tag=legacy, which only the .sig signature carries: %s", c3)
			}
			if tc.bundleTag != "" {
				e.cs3.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag="+tc.bundleTag), img.String())...)
			}
			// cosign v2 reads only the bundle, and checks no annotation on it.
			e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=anything"), img.String())...)
		})
	}
}

// TestSignBlobInterop: sign-blob bundles in both formats, keyless and with
// keys, go both ways between hallmark and real cosign v2 and v3 (and
// sigstore-go reads hallmark's); a changed file, another identity or a
// bundle of another file fail.
func TestSignBlobInterop(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	if e.cs3 == nil {
		t.Skip("cosign3 is not installed (scripts/install-peers)")
	}
	blob := e.hm.path("sbom.spdx.json")
	os.WriteFile(blob, []byte(`{"spdxVersion":"SPDX-2.3","name":"app"}`+"\n"), 0o644)
	pw := []string{"COSIGN_PASSWORD=pw"}
	e.hm.okEnv(pw, "generate-key-pair")
	sc := filepath.Join(e.trustDir, root.SigningConfigFile)
	id := []string{"--certificate-identity", e.identity, "--certificate-oidc-issuer", srv.URL}
	tr := []string{"--trusted-root", e.trustedRoot()}
	hmVerify := func(bundlePath string, extra ...string) result {
		t.Helper()
		return e.hm.ok(append(append([]string{"verify-blob", "--bundle", bundlePath}, extra...), blob)...)
	}
	joined := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	t.Run("hallmark signs, cosign verifies", func(t *testing.T) {
		e := e.with(t)
		tok := e.token(klProject)
		// Keyless sigstore bundle: cosign v3, cosign v2 (--new-bundle-format) and sigstore-go.
		r := e.hm.ok("sign-blob", "-y", "--identity-token", tok, "--bundle", "kl.sigstore.json", blob)
		if !strings.Contains(r.stderr, "Wrote bundle to file kl.sigstore.json") || r.stdout != "" {
			t.Errorf("sign-blob: %s", r)
		}
		e.cs3.ok(joined([]string{"verify-blob", "--bundle", "kl.sigstore.json"}, id, tr, []string{blob})...)
		e.cs.ok(joined([]string{"verify-blob", "--new-bundle-format", "--bundle", "kl.sigstore.json"}, id, tr, []string{blob})...)
		if v := hmVerify("kl.sigstore.json", id...); !strings.Contains(v.stderr, "Verified OK") {
			t.Errorf("hallmark verify-blob: %s", v)
		}
		raw, _ := os.ReadFile(e.hm.path("kl.sigstore.json"))
		var b sgbundle.Bundle
		if err := b.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		sid, _ := sgverify.NewShortCertificateIdentity(srv.URL, "", e.identity, "")
		content, _ := os.ReadFile(blob)
		if _, err := sigstoreGo(t, e.trustedRoot()).Verify(&b, sgverify.NewPolicy(sgverify.WithArtifact(strings.NewReader(string(content))), sgverify.WithCertificateIdentity(sid))); err != nil {
			t.Errorf("sigstore-go rejects hallmark's blob bundle: %v", err)
		}

		// Keyless, cosign's older format: cosign v2 and v3 with their legacy trust.
		r = e.hm.ok("sign-blob", "-y", "--new-bundle-format=false", "--identity-token", tok, "--bundle", "kl.bundle",
			"--output-certificate", "kl.crt", blob)
		if sig := strings.TrimSpace(r.stdout); sig == "" || !strings.Contains(r.stderr, "Wrote bundle to file kl.bundle") {
			t.Errorf("legacy sign-blob: %s", r)
		}
		e.cs.okEnv(e.legacyEnv(), joined([]string{"verify-blob", "--bundle", "kl.bundle"}, id, []string{blob})...)
		e.cs3.okEnv(e.legacyEnv(), joined([]string{"verify-blob", "--bundle", "kl.bundle"}, id, []string{blob})...)
		e.cs.okEnv(e.legacyEnv(), joined([]string{"verify-blob", "--bundle", "kl.bundle", "--certificate", "kl.crt"}, id, []string{blob})...)
		hmVerify("kl.bundle", id...)

		// With a key, both formats.
		e.hm.okEnv(pw, "sign-blob", "-y", "--key", "cosign.key", "--bundle", "key.sigstore.json", blob)
		e.cs3.ok("verify-blob", "--key", "cosign.pub", "--trusted-root", e.trustedRoot(), "--bundle", "key.sigstore.json", blob)
		e.hm.okEnv(pw, "sign-blob", "-y", "--new-bundle-format=false", "--key", "cosign.key", "--bundle", "key.bundle", blob)
		e.cs.okEnv(e.legacyEnv(), "verify-blob", "--key", "cosign.pub", "--bundle", "key.bundle", blob)
		hmVerify("key.bundle", "--key", "cosign.pub")
		// Without a log: the detached signature alone.
		e.hm.okEnv(pw, "sign-blob", "--new-bundle-format=false", "--key", "cosign.key", "--tlog-upload=false", "--output-signature", "nolog.sig", blob)
		e.cs.okEnv(e.legacyEnv(), "verify-blob", "--key", "cosign.pub", "--insecure-ignore-tlog", "--signature", "nolog.sig", blob)
		e.hm.ok("verify-blob", "--key", "cosign.pub", "--insecure-ignore-tlog", "--signature", "nolog.sig", blob)
	})

	t.Run("cosign signs, hallmark verifies", func(t *testing.T) {
		e := e.with(t)
		tok := e.token(klProject)
		e.cs3.ok("sign-blob", "-y", "--signing-config", sc, "--trusted-root", e.trustedRoot(), "--identity-token", tok, "--bundle", "c3.sigstore.json", blob)
		hmVerify("c3.sigstore.json", id...)
		e.cs.ok("sign-blob", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", e.trustedRoot(), "--identity-token", tok,
			"--bundle", "c2.bundle", blob)
		hmVerify("c2.bundle", id...)
		e.cs.ok("sign-blob", "-y", "--new-bundle-format", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", e.trustedRoot(),
			"--identity-token", tok, "--bundle", "c2.sigstore.json", blob)
		hmVerify("c2.sigstore.json", id...)
		e.cs3.okEnv(pw, "sign-blob", "-y", "--key", "cosign.key", "--signing-config", sc, "--trusted-root", e.trustedRoot(), "--bundle", "c3key.sigstore.json", blob)
		hmVerify("c3key.sigstore.json", "--key", "cosign.pub")
		e.cs.okEnv(append(pw, e.legacyEnv()...), "sign-blob", "-y", "--key", "cosign.key", "--rekor-url", srv.URL, "--bundle", "c2key.bundle", blob)
		hmVerify("c2key.bundle", "--key", "cosign.pub")
	})

	t.Run("refused", func(t *testing.T) {
		e := e.with(t)
		e.hm.ok("sign-blob", "-y", "--identity-token", e.token(klProject), "--bundle", "r.sigstore.json", blob)
		e.hm.ok("sign-blob", "-y", "--new-bundle-format=false", "--identity-token", e.token(klProject), "--bundle", "r.bundle", blob)
		changed := e.hm.path("changed.json")
		os.WriteFile(changed, []byte(`{"spdxVersion":"SPDX-2.3","name":"evil"}`+"\n"), 0o644)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{joined([]string{"verify-blob", "--bundle", "r.sigstore.json"}, id, []string{changed}), "it is the bundle of another file"},
			{joined([]string{"verify-blob", "--bundle", "r.bundle"}, id, []string{changed}), "signature check failed"},
			{joined([]string{"verify-blob", "--bundle", "r.sigstore.json", "--certificate-identity", srv.URL + "/grp/other//.gitlab-ci.yml@refs/heads/main",
				"--certificate-oidc-issuer", srv.URL}, []string{blob}), "none of the expected identities matched"},
			{[]string{"verify-blob", "--key", "cosign.pub", "--bundle", "r.sigstore.json", blob}, "signature check failed"},
			{joined([]string{"verify-blob"}, id, []string{blob}), "provide --bundle FILE"},
			{joined([]string{"verify-blob", "--bundle", "sbom.spdx.json"}, id, []string{blob}), "invalid cosign bundle file"},
			{joined([]string{"verify-blob", "--bundle", "r.sigstore.json", "--signature", "x"}, id, []string{blob}), "give neither --signature nor --certificate"},
		} {
			r := e.hm.fail(1, tc.args...)
			if !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "Verified OK") {
				t.Errorf("%v: want %q in\n%s", tc.args, tc.want, r.stderr)
			}
		}
		if r := e.hm.fail(1, "sign-blob", "-y", "--identity-token", e.token(klProject), blob); !strings.Contains(r.stderr, "must specify --bundle") {
			t.Errorf("sign-blob without --bundle: %s", r)
		}
		// The bundle file of another blob does not verify this one even
		// with cosign: the digest differs.
		e.cs3.fail(1, joined([]string{"verify-blob", "--bundle", "r.sigstore.json"}, id, tr, []string{changed})...)
		if b, err := bundle.Parse(mustRead(t, e.hm.path("r.sigstore.json"))); err != nil || b.MessageSignature == nil {
			t.Errorf("hallmark's blob bundle: %+v %v", b, err)
		}
	})
}
