package cli_test

// Keyless signing end to end with the real hallmark CLI, a real Hallmark
// server (built-in OIDC issuer, CA, transparency log, registry) and real
// cosign v2.6.5 / v3.1.3, the only trust being what `hallmark trust init`
// stored (and, for cosign, that same trusted root file or the PEM files of
// `hallmark trust export`).

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// TestKeylessHallmarkSignsCosignVerifies: hallmark signs keylessly (token
// from SIGSTORE_ID_TOKEN, the eleven CI annotations, trust and services
// from `hallmark trust init`); cosign v2 verifies with only Hallmark's
// trusted root (and with the legacy PEM files), cosign v3 too; hallmark
// verify prints byte for byte what cosign prints, in json and text.
func TestKeylessHallmarkSignsCosignVerifies(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	img := pushImage(t, srv.Addr, klProject, "v1")
	env := append(e.gitlabEnv(klProject, "v1"), "SIGSTORE_ID_TOKEN="+e.token(klProject))
	r := e.hm.okEnv(env, "sign", "--new-bundle-format=false", "-y", "--ci-annotations", img.String())
	for _, want := range []string{"Generating ephemeral keys...", "Retrieving signed certificate...", "Successfully verified SCT...",
		"transparency log at " + srv.URL, "Pushing signature to: " + img.Context().Name()} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("hallmark sign stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if !tlogIndexRE.MatchString(r.stderr) {
		t.Errorf("hallmark sign printed no tlog index:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "secret-job-token") {
		t.Errorf("the job token leaked into the output")
	}

	// cosign v2 verifies with the trusted root only, the annotations too.
	args := e.verifyArgs("-a", "tag=v1", "-a", "com.gitlab.ci.commit.sha="+klSHA, "-a", "com.gitlab.ci.pipeline.id="+klPipeline)
	cv := e.cs.ok(append(append([]string{}, args...), "--trusted-root", e.trustedRoot(), img.String())...)
	hv := e.hm.ok(append(append([]string{}, args...), img.String())...)
	if cv.stdout != hv.stdout {
		t.Errorf("hallmark verify stdout differs from cosign's:\ncosign:   %q\nhallmark: %q", cv.stdout, hv.stdout)
	}
	if cv.stderr != hv.stderr {
		t.Errorf("hallmark verify stderr differs from cosign's:\ncosign:\n%s\nhallmark:\n%s", cv.stderr, hv.stderr)
	}
	var out []map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(hv.stdout)), &out); err != nil || len(out) != 1 {
		t.Fatalf("verify output: %v\n%s", err, hv.stdout)
	}
	opt := out[0]["optional"].(map[string]any)
	for k, want := range map[string]string{"Subject": e.identity, "Issuer": srv.URL, "1.3.6.1.4.1.57264.1.1": srv.URL, "tag": "v1",
		"com.gitlab.ci.job.url": srv.URL + "/" + klProject + "/-/jobs/" + klJob, "com.gitlab.ci.user.name": "Alice Example"} {
		if opt[k] != want {
			t.Errorf("optional[%q] = %v, want %q", k, opt[k], want)
		}
	}
	if len(opt) != 11+4 {
		t.Errorf("optional has %d keys, want the 11 CI annotations and cosign's 4: %v", len(opt), opt)
	}

	// -o text: the same lines on both streams.
	ct := e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-o", "text"), img.String())...)
	ht := e.hm.ok(append(e.verifyArgs("-o", "text"), img.String())...)
	if ct.stdout != ht.stdout || ct.stderr != ht.stderr {
		t.Errorf("-o text differs:\ncosign:\n%s\nhallmark:\n%s", ct, ht)
	}
	if !strings.Contains(ht.stderr, "Certificate subject: "+e.identity) || !strings.Contains(ht.stderr, "Certificate issuer URL: "+srv.URL) {
		t.Errorf("-o text lacks the certificate lines:\n%s", ht.stderr)
	}

	// cosign v2 with its legacy environment trust (no trusted root), and
	// hallmark with the same variables and no stored trusted root.
	cl := e.cs.okEnv(e.legacyEnv(), append(e.verifyArgs("-a", "tag=v1"), img.String())...)
	hl := e.hm.okEnv(append(e.legacyEnv(), "HALLMARK_TRUST_DIR="+t.TempDir()), append(e.verifyArgs("-a", "tag=v1"), img.String())...)
	if cl.stdout != hl.stdout {
		t.Errorf("with SIGSTORE_* trust: cosign %q, hallmark %q", cl.stdout, hl.stdout)
	}
	if r := e.hm.runEnv([]string{"HALLMARK_TRUST_DIR=" + t.TempDir()}, "", append(e.verifyArgs(), img.String())...); r.code != 1 ||
		!strings.Contains(r.stderr, "hallmark trust init") {
		t.Errorf("no trust at all: %s", r)
	}
	// cosign v3 too.
	if e.cs3 != nil {
		c3 := e.cs3.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=v1"), img.String())...)
		if c3.stdout != hv.stdout {
			t.Errorf("cosign v3 prints other bytes than hallmark:\n%q\n%q", c3.stdout, hv.stdout)
		}
	}

	// --provenance: every CI annotation the certificate attests matches.
	p := e.hm.ok(append(e.verifyArgs("--provenance"), img.String())...)
	if p.stdout != e.hm.ok(append(e.verifyArgs(), img.String())...).stdout {
		t.Errorf("--provenance changed standard output")
	}
	for _, ann := range []string{"com.gitlab.ci.commit.sha", "org.opencontainers.image.revision", "com.gitlab.ci.commit.ref.name",
		"com.gitlab.ci.project.path", "org.opencontainers.image.source", "com.gitlab.ci.job.url", "com.gitlab.ci.job.id", "com.gitlab.ci.pipeline.url"} {
		if !regexpLine(p.stderr, ann, "match") {
			t.Errorf("provenance of %s is not a match:\n%s", ann, p.stderr)
		}
	}
	if strings.Contains(p.stderr, "contradiction") || !regexpLine(p.stderr, "tag", "not attested") {
		t.Errorf("provenance table:\n%s", p.stderr)
	}
}

// regexpLine reports whether some line of s starts (after spaces) with
// first and ends with last.
func regexpLine(s, first, last string) bool {
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == first && strings.HasSuffix(strings.TrimSpace(l), last) {
			return true
		}
	}
	return false
}

// TestKeylessCosignSignsHallmarkVerifies: cosign v2 (legacy .sig) and
// cosign v3 (sigstore bundle referrer) sign against Hallmark; hallmark
// verify accepts both with the stored trust and prints what cosign prints.
func TestKeylessCosignSignsHallmarkVerifies(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)

	t.Run("cosign v2", func(t *testing.T) {
		img := pushImage(t, srv.Addr, klProject, "c2")
		e.cs.ok("sign", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", e.trustedRoot(),
			"--identity-token", e.token(klProject), "-a", "tag=c2", img.String())
		cv := e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=c2"), img.String())...)
		hv := e.hm.ok(append(e.verifyArgs("-a", "tag=c2"), img.String())...)
		if cv.stdout != hv.stdout || cv.stderr != hv.stderr {
			t.Errorf("hallmark verify output differs from cosign's:\ncosign:\n%s\nhallmark:\n%s", cv, hv)
		}
		// By tag too (header names the tag, the digest is resolved).
		tagged := img.Context().Tag("c2").String()
		cv = e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot()), tagged)...)
		hv = e.hm.ok(append(e.verifyArgs(), tagged)...)
		if cv.stdout != hv.stdout || cv.stderr != hv.stderr {
			t.Errorf("by tag:\ncosign:\n%s\nhallmark:\n%s", cv, hv)
		}
	})

	t.Run("cosign v3 bundle", func(t *testing.T) {
		if e.cs3 == nil {
			t.Skip("cosign3 is not installed (scripts/install-peers)")
		}
		img := pushImage(t, srv.Addr, klProject, "c3")
		e.cs3.ok("sign", "-y", "--signing-config", filepath.Join(e.trustDir, root.SigningConfigFile), "--trusted-root", e.trustedRoot(),
			"--identity-token", e.token(klProject), "-a", "tag=c3", img.String())
		cv := e.cs3.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "-a", "tag=c3"), img.String())...)
		hv := e.hm.ok(append(e.verifyArgs("-a", "tag=c3"), img.String())...)
		if cv.stdout != hv.stdout {
			t.Errorf("hallmark verify stdout differs from cosign v3's:\ncosign:   %q\nhallmark: %q", cv.stdout, hv.stdout)
		}
		if !strings.Contains(hv.stdout, `"type":"https://sigstore.dev/cosign/sign/v1"`) || !strings.Contains(hv.stdout, `"tag":"c3"`) {
			t.Errorf("bundle output: %s", hv.stdout)
		}
		r := e.hm.fail(12, append(e.verifyArgs("-a", "tag=other"), img.String())...)
		if !strings.Contains(r.stderr, `annotation "tag" is "c3"`) {
			t.Errorf("annotation mismatch on a bundle: %s", r)
		}
		r = e.hm.fail(12, "verify", "--certificate-identity", srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main",
			"--certificate-oidc-issuer", srv.URL, img.String())
		if !strings.Contains(r.stderr, "none of the expected identities matched") {
			t.Errorf("identity mismatch on a bundle: %s", r)
		}
	})
}

// TestKeylessNegative: each broken or mismatched signature is rejected
// with a message naming what was wrong.
func TestKeylessNegative(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	img := pushImage(t, srv.Addr, klProject, "neg")
	tok := e.token(klProject)
	tokFile := filepath.Join(e.hm.dir, "token.jwt")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// --identity-token given as a file (cosign reads non-JWT values as paths).
	e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", tokFile, "-a", "tag=neg", "-a", "com.gitlab.ci.commit.sha="+klSHA, img.String())
	e.hm.ok(append(e.verifyArgs(), img.String())...)

	check := func(t *testing.T, r result, code int, wants ...string) {
		t.Helper()
		if r.code != code {
			t.Errorf("exit %d, want %d: %s", r.code, code, r)
		}
		for _, w := range wants {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
			}
		}
	}
	t.Run("identity mismatch", func(t *testing.T) {
		other := srv.URL + "/grp/other//.gitlab-ci.yml@refs/heads/main"
		check(t, e.hm.run("verify", "--certificate-identity", other, "--certificate-oidc-issuer", srv.URL, img.String()), 12,
			"identity check failed: none of the expected identities matched what was in the certificate, got subjects ["+e.identity+"] with issuer "+srv.URL)
	})
	t.Run("issuer mismatch", func(t *testing.T) {
		check(t, e.hm.run("verify", "--certificate-identity", e.identity, "--certificate-oidc-issuer", "https://gitlab.com", img.String()), 12,
			"none of the expected identities matched", "with issuer "+srv.URL)
	})
	t.Run("regexps are unanchored, as cosign's", func(t *testing.T) {
		e.hm.ok("verify", "--certificate-identity-regexp", "grp/app", "--certificate-oidc-issuer-regexp", "127", img.String())
		check(t, e.hm.run("verify", "--certificate-identity-regexp", "^grp/app", "--certificate-oidc-issuer-regexp", "127", img.String()), 12, "none of the expected identities")
		check(t, e.hm.run("verify", "--certificate-identity-regexp", "(", "--certificate-oidc-issuer", srv.URL, img.String()), 1, "not a valid regular expression")
	})
	t.Run("missing identity flags", func(t *testing.T) {
		check(t, e.hm.run("verify", "--certificate-identity", e.identity, img.String()), 1,
			"--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for verification in keyless mode")
		check(t, e.hm.run("verify", "--certificate-oidc-issuer", srv.URL, img.String()), 1,
			"--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode")
	})
	t.Run("another server's trusted root", func(t *testing.T) {
		other := newKeylessEnv(t, testenv.StartServer(t, nil))
		check(t, e.hm.run(append(e.verifyArgs("--trusted-root", other.trustedRoot()), img.String())...), 12,
			"certificate check failed: certificate does not chain to a trusted root")
		// With this server's CA but the other server's log key: the SET
		// is from a log the trusted root does not name.
		mixed := mixTrust(t, e.trustedRoot(), other.trustedRoot(), "tlogs")
		check(t, e.hm.run(append(e.verifyArgs("--trusted-root", mixed), img.String())...), 12,
			"transparency log check failed", "rekor log public key not found for payload")
	})
	t.Run("bad SCT", func(t *testing.T) {
		other := newKeylessEnv(t, testenv.StartServer(t, nil))
		mixed := mixTrust(t, e.trustedRoot(), other.trustedRoot(), "ctlogs")
		check(t, e.hm.run(append(e.verifyArgs("--trusted-root", mixed), img.String())...), 12,
			"certificate transparency (SCT) check failed", "which is not in the trusted root")
		// The same with --insecure-ignore-sct passes.
		e.hm.ok(append(e.verifyArgs("--trusted-root", mixed, "--insecure-ignore-sct"), img.String())...)
	})
	t.Run("trust outside its validFor", func(t *testing.T) {
		// The trusted root edited so that the log key, the CT log key or
		// the CA was retired before the signature was logged (its SCT
		// issued), or became trusted only after: hallmark refuses it and
		// names the key or CA and its window; the window ending exactly
		// then still trusts (ends inclusive, as sigstore-go).
		man, err := remoteManifest(t, sigTagOf(t, img))
		if err != nil {
			t.Fatal(err)
		}
		ann := man.Layers[0].Annotations
		b, err := rekor.ParseBundle(ann[oci.AnnotationBundle])
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(b.Payload.IntegratedTime, 0)
		leaf, err := verify.ParseCertificatePEM([]byte(ann[oci.AnnotationCertificate]))
		if err != nil {
			t.Fatal(err)
		}
		sct := embeddedSCTTime(t, leaf)
		f := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
		fn := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
		for _, tc := range []struct {
			name, field string
			start, end  time.Time
			wants       []string
		}{
			{"log key retired", "tlogs", at.Add(-time.Hour), at.Add(-time.Second), []string{"transparency log check failed",
				"transparency log key " + b.Payload.LogID + " is trusted from " + f(at.Add(-time.Hour)) + " until " + f(at.Add(-time.Second)) + "; the entry (index",
				") was integrated at " + f(at)}},
			{"log key not yet active", "tlogs", at.Add(time.Second), time.Time{}, []string{"transparency log check failed",
				"is trusted from " + f(at.Add(time.Second)) + " on; the entry"}},
			{"CT log key retired", "ctlogs", sct.Add(-time.Hour), sct.Add(-time.Millisecond), []string{"certificate transparency (SCT) check failed",
				"is trusted from " + fn(sct.Add(-time.Hour)) + " until " + fn(sct.Add(-time.Millisecond)) + "; the SCT was issued at " + fn(sct)}},
			{"CA retired", "certificateAuthorities", at.Add(-time.Hour), at.Add(-time.Second), []string{"certificate check failed",
				"certificate authority " + srv.URL + " is trusted from " + f(at.Add(-time.Hour)) + " until " + f(at.Add(-time.Second)) + "; the signature was logged at " + f(at)}},
			{"log key retired when the entry was integrated", "tlogs", at.Add(-time.Hour), at, nil},
			{"CT log key retired when the SCT was issued", "ctlogs", sct.Add(-time.Hour), sct, nil},
			{"CA retired when the signature was logged", "certificateAuthorities", at.Add(-time.Hour), at, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				edited := retireTrust(t, e.trustedRoot(), tc.field, tc.start, tc.end)
				args := append(e.verifyArgs("--trusted-root", edited), img.String())
				if tc.wants == nil {
					e.hm.ok(args...)
				} else {
					check(t, e.hm.run(args...), 12, tc.wants...)
				}
				// cosign v2 and v3 (sigstore-go underneath), given the same
				// edited trusted root, agree.
				for _, cs := range []*tool{e.cs, e.cs3} {
					if cs == nil {
						continue
					}
					if r := cs.run(args...); (r.code == 0) != (tc.wants == nil) {
						t.Errorf("%s disagrees: %s", cs.name, r)
					}
				}
			})
		}
		// hallmark sign checks its certificate and log entry against the
		// windows too: it refuses to attach a signature whose CA or log key
		// is retired now.
		now := time.Now().Truncate(time.Second)
		for _, tc := range []struct{ name, field, want string }{
			{"sign with a retired CA", "certificateAuthorities", "; the certificate is used at "},
			{"sign with a retired log key", "tlogs", ") was integrated at "},
		} {
			t.Run(tc.name, func(t *testing.T) {
				edited := retireTrust(t, e.trustedRoot(), tc.field, now.Add(-2*time.Hour), now.Add(-time.Hour))
				fresh := pushImage(t, srv.Addr, klProject, "retired")
				check(t, e.hm.run("sign", "--new-bundle-format=false", "-y", "--trusted-root", edited, "--identity-token", tokFile, fresh.String()), 1,
					"is trusted from "+f(now.Add(-2*time.Hour))+" until "+f(now.Add(-time.Hour)), tc.want)
				if m, _ := remoteManifest(t, sigTagOf(t, fresh)); len(m.Layers) > 0 {
					t.Error("a signature was attached")
				}
			})
		}
	})
	t.Run("provenance contradiction", func(t *testing.T) {
		forged := pushImage(t, srv.Addr, klProject, "forged")
		e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", tokFile, "-a", "com.gitlab.ci.commit.sha=0000000000000000000000000000000000000000",
			"-a", "com.gitlab.ci.commit.ref.name=release", forged.String())
		e.hm.ok(append(e.verifyArgs(), forged.String())...) // without --provenance the signature is fine
		check(t, e.hm.run(append(e.verifyArgs("--provenance"), forged.String())...), 12,
			`provenance check failed: provenance contradicts the signing certificate: com.gitlab.ci.commit.ref.name="release" but the certificate attests "refs/heads/main"`,
			`com.gitlab.ci.commit.sha="0000000000000000000000000000000000000000" but the certificate attests "`+klSHA+`"`)
	})

	// Tampering with the stored signature: a copy of the image's
	// signatures is edited, verified, then restored.
	sigTag := sigTagOf(t, img)
	tamper := func(t *testing.T, edit func(ann map[string]string), wants ...string) {
		t.Helper()
		orig := map[string]string{}
		rewriteSignatures(t, sigTag, func(_ int, ann map[string]string) {
			for k, v := range ann {
				orig[k] = v
			}
			edit(ann)
		})
		defer rewriteSignatures(t, sigTag, func(_ int, ann map[string]string) {
			for k := range ann {
				delete(ann, k)
			}
			for k, v := range orig {
				ann[k] = v
			}
		})
		check(t, e.hm.run(append(e.verifyArgs(), img.String())...), 12, wants...)
		// cosign agrees that it is broken.
		if r := e.cs.run(append(e.verifyArgs("--trusted-root", e.trustedRoot()), img.String())...); r.code == 0 {
			t.Errorf("cosign accepted the tampered signature: %s", r)
		}
	}
	editBundle := func(fn func(b map[string]any)) func(map[string]string) {
		return func(ann map[string]string) {
			var b map[string]any
			if err := json.Unmarshal([]byte(ann["dev.sigstore.cosign/bundle"]), &b); err != nil {
				t.Fatal(err)
			}
			fn(b)
			raw, _ := json.Marshal(b)
			ann["dev.sigstore.cosign/bundle"] = string(raw)
		}
	}
	t.Run("tampered log entry", func(t *testing.T) {
		tamper(t, editBundle(func(b map[string]any) {
			p := b["Payload"].(map[string]any)
			body, _ := base64.StdEncoding.DecodeString(p["body"].(string))
			body = []byte(strings.Replace(string(body), `"kind":"hashedrekord"`, `"kind":"hashedrekord" `, 1))
			p["body"] = base64.StdEncoding.EncodeToString(body)
		}), "transparency log check failed: signed entry timestamp does not verify")
	})
	t.Run("tampered log index", func(t *testing.T) {
		tamper(t, editBundle(func(b map[string]any) {
			p := b["Payload"].(map[string]any)
			p["logIndex"] = p["logIndex"].(float64) + 1000
		}), "signed entry timestamp does not verify")
	})
	t.Run("SET from another key", func(t *testing.T) {
		other := pushImage(t, srv.Addr, klProject, "other")
		e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", tokFile, other.String())
		var otherSET string
		img, _ := remoteManifest(t, sigTagOf(t, other))
		var ob map[string]any
		json.Unmarshal([]byte(img.Layers[0].Annotations["dev.sigstore.cosign/bundle"]), &ob)
		otherSET = ob["SignedEntryTimestamp"].(string)
		tamper(t, editBundle(func(b map[string]any) { b["SignedEntryTimestamp"] = otherSET }), "signed entry timestamp does not verify")
	})
	t.Run("bundle of another signature", func(t *testing.T) {
		other := pushImage(t, srv.Addr, klProject, "other2")
		e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", tokFile, other.String())
		m, _ := remoteManifest(t, sigTagOf(t, other))
		otherBundle := m.Layers[0].Annotations["dev.sigstore.cosign/bundle"]
		tamper(t, func(ann map[string]string) { ann["dev.sigstore.cosign/bundle"] = otherBundle }, "logged entry does not match the signature")
	})
	t.Run("signature swapped", func(t *testing.T) {
		tamper(t, func(ann map[string]string) {
			sig, _ := base64.StdEncoding.DecodeString(ann["dev.cosignproject.cosign/signature"])
			sig[len(sig)-3] ^= 1
			ann["dev.cosignproject.cosign/signature"] = base64.StdEncoding.EncodeToString(sig)
		}, "signature check failed")
	})

	t.Run("no transparency log", func(t *testing.T) {
		nolog := pushImage(t, srv.Addr, klProject, "nolog")
		r := e.hm.ok("sign", "--new-bundle-format=false", "--tlog-upload=false", "--identity-token", tokFile, nolog.String())
		if strings.Contains(r.stderr, "transparency log at") || strings.Contains(r.stderr, "tlog entry") {
			t.Errorf("--tlog-upload=false talked about the log:\n%s", r.stderr)
		}
		check(t, e.hm.run(append(e.verifyArgs(), nolog.String())...), 12, "signature has no transparency log bundle")
		// Without the log the certificate must be valid now: it still is.
		r = e.hm.ok(append(e.verifyArgs("--insecure-ignore-tlog"), nolog.String())...)
		if !strings.Contains(r.stderr, "WARNING: Skipping tlog verification") {
			t.Errorf("no warning:\n%s", r.stderr)
		}
		e.cs.ok(append(e.verifyArgs("--trusted-root", e.trustedRoot(), "--insecure-ignore-tlog"), nolog.String())...)
		// ...but not once it has expired (10-minute certificates): checked
		// with the library at a later time.
		tr, err := root.Load(e.trustedRoot())
		if err != nil {
			t.Fatal(err)
		}
		m, _ := tr.Material()
		trust := verify.NewTrust([]*root.Material{m})
		policy := verify.Policy{IgnoreTlogUnsafe: true, Now: time.Now().Add(time.Hour),
			Identities: []verify.Identity{{Subject: e.identity, Issuer: srv.URL}}}
		_, err = verify.Image(context.Background(), oci.NewClient(oci.ClientConfig{}), verify.Target{Image: nolog}, trust, policy)
		if err == nil || !strings.Contains(err.Error(), "expected a signed timestamp to verify an expired certificate") {
			t.Errorf("an expired certificate without a log entry: %v", err)
		}
		// With the log entry, the certificate only had to be valid when
		// it was logged: the signed image still verifies an hour later.
		policy.IgnoreTlogUnsafe = false
		if _, err := verify.Image(context.Background(), oci.NewClient(oci.ClientConfig{}), verify.Target{Image: img}, trust, policy); err != nil {
			t.Errorf("a logged signature an hour later: %v", err)
		}
	})

	t.Run("privacy prompt", func(t *testing.T) {
		p := pushImage(t, srv.Addr, klProject, "prompt")
		r := e.hm.runEnv(nil, "", "sign", "--new-bundle-format=false", "--identity-token", tokFile, p.String())
		if r.code == 0 || !strings.Contains(r.stderr, "Are you sure you would like to continue? [y/N]") || !strings.Contains(r.stderr, "user declined the prompt") {
			t.Errorf("declined prompt: %s", r)
		}
		r = e.hm.runEnv(nil, "y\n", "sign", "--new-bundle-format=false", "--identity-token", tokFile, p.String())
		if r.code != 0 || !tlogIndexRE.MatchString(r.stderr) {
			t.Errorf("accepted prompt: %s", r)
		}
		e.hm.okEnv([]string{"COSIGN_YES=true"}, "sign", "--new-bundle-format=false", "--identity-token", tokFile, p.String())
	})
	t.Run("token problems", func(t *testing.T) {
		p := pushImage(t, srv.Addr, klProject, "tok")
		check(t, e.hm.run("sign", "--new-bundle-format=false", "-y", p.String()), 1, "no OIDC identity token for keyless signing")
		check(t, e.hm.run("sign", "--new-bundle-format=false", "-y", "--identity-token", filepath.Join(e.hm.dir, "missing.jwt"), p.String()), 1, "reading id token")
		// A token for audience other than sigstore: the CA says why.
		r := e.hm.ok("token", "issue", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", klProject, "--ref", "main", "--aud", "other")
		check(t, e.hm.runEnv([]string{"SIGSTORE_ID_TOKEN=" + strings.TrimSpace(r.stdout)}, "", "sign", "--new-bundle-format=false", "-y", p.String()), 1,
			"getting a signing certificate failed", "/api/v1/signingCert returned")
	})
}

// mixTrust writes a trusted root that is base with its field ("tlogs" or
// "ctlogs") taken from other.
func mixTrust(t *testing.T, base, other, field string) string {
	t.Helper()
	var b, o map[string]any
	for p, v := range map[string]*map[string]any{base: &b, other: &o} {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatal(err)
		}
	}
	b[field] = o[field]
	out, _ := json.MarshalIndent(b, "", "  ")
	path := filepath.Join(t.TempDir(), "mixed_trusted_root.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// retireTrust writes a copy of the trusted root base whose first entry of
// field ("tlogs", "ctlogs" or "certificateAuthorities") is valid from
// start until end (no end when zero).
func retireTrust(t *testing.T, base, field string, start, end time.Time) string {
	t.Helper()
	raw, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	var tr map[string]any
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatal(err)
	}
	entry := tr[field].([]any)[0].(map[string]any)
	if field != "certificateAuthorities" {
		entry = entry["publicKey"].(map[string]any)
	}
	v := map[string]any{"start": start.UTC().Format(time.RFC3339Nano)}
	if !end.IsZero() {
		v["end"] = end.UTC().Format(time.RFC3339Nano)
	}
	entry["validFor"] = v
	out, _ := json.MarshalIndent(tr, "", "  ")
	path := filepath.Join(t.TempDir(), "edited_trusted_root.json")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// embeddedSCTTime is the timestamp of the first SCT embedded in c.
func embeddedSCTTime(t *testing.T, c *x509.Certificate) time.Time {
	t.Helper()
	cc, err := ctx509.ParseCertificate(c.Raw)
	if cc == nil || len(cc.SCTList.SCTList) == 0 {
		t.Fatalf("no embedded SCT: %v", err)
	}
	var sct ct.SignedCertificateTimestamp
	if _, err := cttls.Unmarshal(cc.SCTList.SCTList[0].Val, &sct); err != nil {
		t.Fatal(err)
	}
	return ct.TimestampToTime(sct.Timestamp)
}

func remoteManifest(t *testing.T, tag name.Tag) (*v1.Manifest, error) {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/v2/%s/manifests/%s", tag.RegistryStr(), tag.RepositoryStr(), tag.TagStr()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m v1.Manifest
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return &m, nil
}
