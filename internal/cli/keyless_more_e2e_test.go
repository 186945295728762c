package cli_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// TestKeylessOfflineVerify: images in a separate registry (distribution)
// are signed with Hallmark as CA and log; then the Hallmark server is
// stopped and verification works from the stored bundle and the trusted
// root file alone, for hallmark and for cosign.
func TestKeylessOfflineVerify(t *testing.T) {
	reg := startDistribution(t)
	parent := t
	var e *klEnv
	var img name.Digest
	t.Run("sign while the server runs", func(t *testing.T) {
		srv := testenv.StartServer(t, nil) // stopped when this subtest ends
		e = newKeylessEnv(parent, srv)
		se := e.with(t)
		img = pushImage(t, reg, klProject, "offline")
		se.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", se.token(klProject), "-a", "tag=offline", img.String())
	})
	if e == nil || t.Failed() {
		t.FailNow()
	}
	if resp, err := http.Get(e.srv.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("the Hallmark server still answers at %s", e.srv.URL)
	}
	hv := e.hm.ok(append(e.verifyArgs("-a", "tag=offline"), img.String())...)
	if !strings.Contains(hv.stderr, "verified offline") || !strings.Contains(hv.stdout, `"tag":"offline"`) {
		t.Errorf("offline verify: %s", hv)
	}
	cv := e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=offline"), img.String())...)
	if cv.stdout != hv.stdout {
		t.Errorf("offline: cosign and hallmark differ:\n%q\n%q", cv.stdout, hv.stdout)
	}
	// A trusted root is still required: without it nothing verifies.
	if err := os.Remove(e.trustedRoot()); err != nil {
		t.Fatal(err)
	}
	r := e.hm.run(append(e.verifyArgs(), img.String())...)
	if r.code == 0 || !strings.Contains(r.stderr, "hallmark trust init") {
		t.Errorf("verify without a trusted root: %s", r)
	}
}

// TestKeylessLogProofChecks: hallmark sign refuses a log answer whose
// inclusion proof is for another entry or another tree, or whose SET was
// not made by the trusted log key; nothing is attached then. It never
// contacts the CA or log when verifying.
func TestKeylessLogProofChecks(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	proxy := newLogProxy(t, srv.URL)
	tok := filepath.Join(e.hm.dir, "token.jwt")
	if err := os.WriteFile(tok, []byte(e.token(klProject)), 0o600); err != nil {
		t.Fatal(err)
	}
	sign := func(img name.Digest) result {
		return e.hm.run("sign", "--new-bundle-format=false", "-y", "--identity-token", tok, "--fulcio-url", srv.URL, "--rekor-url", proxy.URL, img.String())
	}
	// Two entries so that the tree has more than one leaf.
	first := pushImage(t, srv.Addr, klProject, "p0")
	if r := sign(first); r.code != 0 {
		t.Fatalf("sign through the proxy: %s", r)
	}
	entry0 := getEntry(t, srv.URL, 0)

	cases := []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"inclusion proof of another entry", func(en map[string]any) {
			en["verification"].(map[string]any)["inclusionProof"] = entry0["verification"].(map[string]any)["inclusionProof"]
		}, "inclusion proof does not verify: the entry is not at index"},
		{"inclusion proof for another tree", func(en map[string]any) {
			p := en["verification"].(map[string]any)["inclusionProof"].(map[string]any)
			// A proof that is right for a tree with one more leaf (its
			// root and size), but the checkpoint of the real tree: it
			// proves nothing the log signed.
			p["checkpoint"] = entry0["verification"].(map[string]any)["inclusionProof"].(map[string]any)["checkpoint"]
		}, "a proof for another tree"},
		{"SET from another key", func(en map[string]any) {
			en["verification"].(map[string]any)["signedEntryTimestamp"] = entry0["verification"].(map[string]any)["signedEntryTimestamp"]
		}, "signed entry timestamp does not verify"},
		{"entry for another signature", func(en map[string]any) {
			en["body"] = entry0["body"]
		}, "logged entry does not match the signature"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fn := func(b []byte) []byte { return editEntry(t, b, tc.edit) }
			proxy.rewrite.Store(&fn)
			defer proxy.rewrite.Store(nil)
			img := pushImage(t, srv.Addr, klProject, fmt.Sprintf("p%d", i+1))
			r := sign(img)
			if r.code == 0 || !strings.Contains(r.stderr, "does not verify with the trusted root") || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("want a refusal with %q: %s", tc.want, r)
			}
			if _, err := remote.Image(sigTagOf(t, img)); err == nil {
				t.Errorf("a signature was attached although the log entry did not verify")
			}
		})
	}

	// Verification reads only the registry.
	before := proxy.requests.Load()
	e.hm.ok(append(e.verifyArgs(), first.String())...)
	if n := proxy.requests.Load(); n != before {
		t.Errorf("verify made %d requests to the log", n-before)
	}
}

// getEntry returns the log entry at index as the Rekor API serves it.
func getEntry(t *testing.T, base string, index int) map[string]any {
	t.Helper()
	raw := getEntryRaw(t, base, index)
	var m map[string]map[string]any
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 1 {
		t.Fatalf("entry %d: %v %s", index, err, raw)
	}
	for _, e := range m {
		return e
	}
	return nil
}

// getEntryRaw is the log's answer for the entry at index, {"<uuid>": {...}}.
func getEntryRaw(t *testing.T, base string, index int) []byte {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/log/entries?logIndex=%d", base, index))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("entry %d: %s %s", index, resp.Status, raw)
	}
	return raw
}

// TestKeylessBundleProofChecks: a cosign v3 bundle whose inclusion proof
// was replaced by one for another tree (the right root of a bigger tree,
// with the old checkpoint) is refused by hallmark verify.
func TestKeylessBundleProofChecks(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	if e.cs3 == nil {
		t.Skip("cosign3 is not installed (scripts/install-peers)")
	}
	img := pushImage(t, srv.Addr, klProject, "b1")
	e.cs3.ok("sign", "-y", "--signing-config", filepath.Join(e.trustDir, root.SigningConfigFile), "--trusted-root", e.trustedRoot(),
		"--identity-token", e.token(klProject), img.String())
	e.hm.ok(append(e.verifyArgs(), img.String())...)
	// Grow the tree, then take the entry's proof against the bigger tree.
	e.cs3.ok("sign", "-y", "--signing-config", filepath.Join(e.trustDir, root.SigningConfigFile), "--trusted-root", e.trustedRoot(),
		"--identity-token", e.token(klProject), pushImage(t, srv.Addr, klProject, "b2").String())
	grown := getEntry(t, srv.URL, 0)["verification"].(map[string]any)["inclusionProof"].(map[string]any)

	bundleRef, bundle := referrerBundle(t, img)
	tl := bundle["verificationMaterial"].(map[string]any)["tlogEntries"].([]any)[0].(map[string]any)
	proof := tl["inclusionProof"].(map[string]any)
	hexToB64 := func(h string) string {
		b, _ := hex.DecodeString(h)
		return base64.StdEncoding.EncodeToString(b)
	}
	proof["rootHash"] = hexToB64(grown["rootHash"].(string))
	proof["treeSize"] = fmt.Sprint(grown["treeSize"])
	var hashes []any
	for _, h := range grown["hashes"].([]any) {
		hashes = append(hashes, hexToB64(h.(string)))
	}
	proof["hashes"] = hashes
	replaceReferrerBundle(t, img, bundleRef, bundle)
	r := e.hm.run(append(e.verifyArgs(), img.String())...)
	if r.code != 12 || !strings.Contains(r.stderr, "a proof for another tree") {
		t.Errorf("bundle with a proof for another tree: %s", r)
	}
}

// TestKeylessAttestations: hallmark attest (keyless, --predicate and
// --ci-provenance) is verified by cosign v2 verify-attestation (with the
// legacy PEM trust it needs) and by hallmark verify-attestation; cosign
// attest is verified by hallmark with the same output as cosign's.
func TestKeylessAttestations(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	tok := e.token(klProject)

	t.Run("hallmark attest --ci-provenance", func(t *testing.T) {
		img := pushImage(t, srv.Addr, klProject, "att1")
		env := append(e.gitlabEnv(klProject, "att1"), "SIGSTORE_ID_TOKEN="+tok)
		r := e.hm.okEnv(env, "attest", "--new-bundle-format=false", "-y", "--ci-provenance", img.String())
		if !tlogIndexRE.MatchString(r.stderr) {
			t.Errorf("no tlog index:\n%s", r.stderr)
		}
		cv := e.cs.okEnv(e.legacyEnv(), append([]string{"verify-attestation", "--type", "slsaprovenance1", "--certificate-identity", e.identity,
			"--certificate-oidc-issuer", srv.URL}, img.String())...)
		hv := e.hm.ok("verify-attestation", "--type", "slsaprovenance1", "--certificate-identity", e.identity, "--certificate-oidc-issuer", srv.URL, img.String())
		if cv.stdout != hv.stdout || cv.stderr != hv.stderr {
			t.Errorf("verify-attestation differs:\ncosign:\n%s\nhallmark:\n%s", cv, hv)
		}
		var env2 payload.Envelope
		if err := json.Unmarshal([]byte(strings.TrimSpace(hv.stdout)), &env2); err != nil {
			t.Fatal(err)
		}
		body, _ := env2.DecodePayload()
		var st struct {
			Type          string `json:"_type"`
			PredicateType string `json:"predicateType"`
			Subject       []struct {
				Name   string            `json:"name"`
				Digest map[string]string `json:"digest"`
			} `json:"subject"`
			Predicate struct {
				BuildDefinition struct {
					BuildType            string         `json:"buildType"`
					ExternalParameters   map[string]any `json:"externalParameters"`
					ResolvedDependencies []struct {
						URI    string            `json:"uri"`
						Digest map[string]string `json:"digest"`
					} `json:"resolvedDependencies"`
				} `json:"buildDefinition"`
				RunDetails struct {
					Builder  struct{ ID string } `json:"builder"`
					Metadata struct {
						InvocationID string `json:"invocationId"`
					} `json:"metadata"`
				} `json:"runDetails"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		pu := srv.URL + "/" + klProject
		bd := st.Predicate.BuildDefinition
		if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != "https://slsa.dev/provenance/v1" ||
			st.Subject[0].Name != img.Context().Name() || "sha256:"+st.Subject[0].Digest["sha256"] != img.DigestStr() ||
			bd.ExternalParameters["source"] != pu || bd.ExternalParameters["entryPoint"] != "build" ||
			bd.ResolvedDependencies[0].URI != "git+"+pu+"@refs/heads/main" || bd.ResolvedDependencies[0].Digest["gitCommit"] != klSHA ||
			st.Predicate.RunDetails.Builder.ID != pu+"/-/runners/7" || st.Predicate.RunDetails.Metadata.InvocationID != pu+"/-/jobs/"+klJob {
			t.Errorf("statement:\n%s", body)
		}
		if strings.Contains(string(body), "secret-job-token") || strings.Contains(string(body), "CI_JOB_TOKEN") {
			t.Errorf("the job token leaked into the provenance:\n%s", body)
		}
		// The default --type (custom) does not match, as in cosign.
		r = e.hm.fail(12, "verify-attestation", "--certificate-identity", e.identity, "--certificate-oidc-issuer", srv.URL, img.String())
		if !strings.Contains(r.stderr, "none of the attestations matched the predicate type") || !strings.Contains(r.stderr, "found: https://slsa.dev/provenance/v1") {
			t.Errorf("custom type: %s", r)
		}
		// The .sig verification does not mistake the attestation for a
		// signature.
		e.hm.fail(10, append(e.verifyArgs(), img.String())...)
	})

	t.Run("cosign attest, hallmark verifies", func(t *testing.T) {
		img := pushImage(t, srv.Addr, klProject, "att2")
		pred := filepath.Join(e.hm.dir, "pred.json")
		os.WriteFile(pred, []byte(`{"buildDefinition":{"buildType":"https://example/bt","externalParameters":{"source":"x"}},"runDetails":{"builder":{"id":"https://example/b"}}}`), 0o600)
		e.cs.ok("attest", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", e.trustedRoot(), "--identity-token", tok,
			"--predicate", pred, "--type", "slsaprovenance1", img.String())
		args := []string{"verify-attestation", "--type", "slsaprovenance1", "--certificate-identity", e.identity, "--certificate-oidc-issuer", srv.URL, img.String()}
		cv := e.cs.okEnv(e.legacyEnv(), args...)
		hv := e.hm.ok(args...)
		if cv.stdout != hv.stdout || cv.stderr != hv.stderr {
			t.Errorf("verify-attestation differs:\ncosign:\n%s\nhallmark:\n%s", cv, hv)
		}
		// hallmark attest with a predicate file, next to cosign's.
		r := e.hm.ok("attest", "--new-bundle-format=false", "-y", "--identity-token", tok, "--predicate", pred, "--type", "slsaprovenance1", img.String())
		if !strings.Contains(r.stderr, "Using payload from: "+pred) {
			t.Errorf("attest stderr: %s", r.stderr)
		}
		hv = e.hm.ok(args...)
		if n := strings.Count(strings.TrimSpace(hv.stdout), "\n") + 1; n != 2 {
			t.Errorf("%d attestations verified, want 2:\n%s", n, hv.stdout)
		}
		e.cs.okEnv(e.legacyEnv(), args...)
	})
}

// referrerBundle returns the digest reference and JSON of the sigstore
// bundle referring to img.
func referrerBundle(t *testing.T, img name.Digest) (name.Digest, map[string]any) {
	t.Helper()
	idx, err := remote.Referrers(img)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	for _, d := range im.Manifests {
		if !strings.HasPrefix(d.ArtifactType, "application/vnd.dev.sigstore.bundle") {
			continue
		}
		ref := img.Context().Digest(d.Digest.String())
		m, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := m.Layers()
		rc, _ := layers[0].Compressed()
		raw, _ := io.ReadAll(rc)
		rc.Close()
		var b map[string]any
		if err := json.Unmarshal(raw, &b); err != nil {
			t.Fatal(err)
		}
		return ref, b
	}
	t.Fatal("no bundle referrer")
	return name.Digest{}, nil
}

// replaceReferrerBundle replaces the bundle referrer old of img by one
// holding bundle (same subject and annotations).
func replaceReferrerBundle(t *testing.T, img name.Digest, old name.Digest, bundle map[string]any) {
	t.Helper()
	raw, err := json.Marshal(bundle)
	if err != nil {
		t.Fatal(err)
	}
	layer := static.NewLayer(raw, types.MediaType("application/vnd.dev.sigstore.bundle.v0.3+json"))
	if err := remote.WriteLayer(img.Context(), layer); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(old)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	ld, _ := layer.Digest()
	l0 := m["layers"].([]any)[0].(map[string]any)
	l0["digest"], l0["size"] = ld.String(), len(raw)
	body, _ := json.Marshal(m)
	u := fmt.Sprintf("http://%s/v2/%s/manifests/sha256:%x", img.RegistryStr(), img.RepositoryStr(), sha256.Sum256(body))
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	req.Header.Set("Content-Type", string(desc.MediaType))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT replacement referrer: %s", resp.Status)
	}
	if err := remote.Delete(old); err != nil {
		t.Fatal(err)
	}
}

// TestKeySignWithLog: key-based signing records the signature in the
// transparency log too (hashedrekord with the public key) when a log is
// configured; cosign verifies the bundle with the log key, and so does
// hallmark, without --insecure-ignore-tlog.
func TestKeySignWithLog(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	pw := []string{"COSIGN_PASSWORD=pw"}
	e.hm.okEnv(pw, "generate-key-pair")
	img := pushImage(t, srv.Addr, klProject, "key")
	r := e.hm.okEnv(pw, "sign", "--new-bundle-format=false", "-y", "--key", "cosign.key", "-a", "tag=key", img.String())
	if !tlogIndexRE.MatchString(r.stderr) {
		t.Errorf("no log entry:\n%s", r.stderr)
	}
	args := []string{"verify", "--key", "cosign.pub", "-a", "tag=key", img.String()}
	cv := e.cs.okEnv([]string{"SIGSTORE_REKOR_PUBLIC_KEY=" + filepath.Join(e.legacy, root.RekorKeyFile)}, args...)
	hv := e.hm.ok(args...)
	if cv.stdout != hv.stdout || !strings.Contains(hv.stderr, "verified offline") || !strings.Contains(hv.stdout, `"Bundle"`) {
		t.Errorf("key + log:\ncosign:\n%s\nhallmark:\n%s", cv, hv)
	}
}

// TestKeylessSigstoreGoVerifiesHallmark: sigstore-go, an independent
// verifier, accepts a signature hallmark made keylessly (certificate, SCT,
// log entry with its SET and inclusion proof) with Hallmark's trusted root,
// and refuses it for another payload or another identity.
func TestKeylessSigstoreGoVerifiesHallmark(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	img := pushImage(t, srv.Addr, klProject, "sg")
	r := e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", e.token(klProject), "-a", "tag=sg", img.String())
	m := tlogIndexRE.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no log index:\n%s", r.stderr)
	}
	var idx int
	fmt.Sscan(m[1], &idx)
	man, _ := remoteManifest(t, sigTagOf(t, img))
	ann := man.Layers[0].Annotations
	lr, err := remote.Layer(img.Context().Digest(man.Layers[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := lr.Compressed()
	payload, _ := io.ReadAll(rc)
	rc.Close()

	// The signature and its log entry as a sigstore bundle (v0.3, message
	// signature over the payload digest).
	raw := testenv.LegacyBundle(t, getEntryRaw(t, srv.URL, idx), ann, payload)
	digest := sha256.Sum256(payload)
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(raw); err != nil {
		t.Fatalf("bundle: %v\n%s", err, raw)
	}
	v := e.sigstoreGo()
	id, _ := sgverify.NewShortCertificateIdentity(srv.URL, "", e.identity, "")
	res, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest[:]), sgverify.WithCertificateIdentity(id)))
	if err != nil {
		t.Fatalf("sigstore-go rejects hallmark's keyless signature: %v", err)
	}
	if res.Signature.Certificate.SourceRepositoryDigest != klSHA || res.Signature.Certificate.SubjectAlternativeName != e.identity {
		t.Errorf("certificate summary: %+v", res.Signature.Certificate)
	}
	other := sha256.Sum256(append(payload, ' '))
	if _, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", other[:]), sgverify.WithCertificateIdentity(id))); err == nil {
		t.Error("sigstore-go accepted the signature for another payload")
	}
	otherID, _ := sgverify.NewShortCertificateIdentity(srv.URL, "", srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main", "")
	if _, err := v.Verify(&b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", digest[:]), sgverify.WithCertificateIdentity(otherID))); err == nil {
		t.Error("sigstore-go accepted another identity")
	}
}
