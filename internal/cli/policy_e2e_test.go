package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// statusesOf is the signatures of img by layer and signature manifest,
// read once the index is idle.
func statusesOf(t *testing.T, base string, img name.Digest) map[string]keylessAPISignature {
	t.Helper()
	var body struct {
		IndexState string                `json:"indexState"`
		Signatures []keylessAPISignature `json:"signatures"`
	}
	apiGetAs(t, base, "/api/v1/images/"+img.Context().RepositoryStr()+"/signatures?digest="+img.DigestStr(), "", "", http.StatusOK, &body)
	if body.IndexState != "indexed" {
		t.Fatalf("%s: index state %q after waiting for the index", img, body.IndexState)
	}
	out := map[string]keylessAPISignature{}
	for _, s := range body.Signatures {
		out[s.Layer+" "+s.Manifest] = s
	}
	return out
}

// only is the one signature of img.
func only(t *testing.T, base string, img name.Digest) keylessAPISignature {
	t.Helper()
	sigs := statusesOf(t, base, img)
	if len(sigs) != 1 {
		t.Fatalf("%s: %d signatures, want 1: %+v", img, len(sigs), sigs)
	}
	for _, s := range sigs {
		return s
	}
	panic("unreachable")
}

func wantStatus(t *testing.T, what string, s keylessAPISignature, status, detail string) {
	t.Helper()
	if s.Status != status || !strings.Contains(s.StatusDetail, detail) {
		t.Errorf("%s: %s (%s); want %s with %q", what, s.Status, s.StatusDetail, status, detail)
	}
}

// rewriteSignaturePayloads pushes the signature manifest under tag again
// with every layer's blob changed by edit (annotations kept).
func rewriteSignaturePayloads(t *testing.T, tag name.Tag, edit func([]byte) []byte) {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		nl := static.NewLayer(edit(b), m.Layers[i].MediaType)
		if out, err = mutate.Append(out, mutate.Addendum{Layer: nl, Annotations: m.Layers[i].Annotations, MediaType: m.Layers[i].MediaType}); err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(tag, out); err != nil {
		t.Fatal(err)
	}
}

// TestTrustPolicyStatuses: real signatures of every kind through real
// servers, and the status each gets under the project's trust policy:
// the project's own pipeline verified; another project's pipeline
// untrusted (naming the identity rule); a tampered payload, a signature
// for another image and a bad SET invalid; an unknown key unverified; a
// signature of another sigstore instance (its own CA and log: a
// public-good-style trusted root imported with --trusted-root) unverified
// until the policy names that root, then verified. Changing the policy
// flips existing signatures without a push; a rebuild changes nothing.
func TestTrustPolicyStatuses(t *testing.T) {
	// The other instance, and its trusted root as an operator downloads it.
	pg := testenv.StartServer(t, nil)
	pgRoot := filepath.Join(pg.DataDir, server.TrustDir, root.TrustedRootFile)
	srv := testenv.StartServer(t, func(c *config.Server) { c.TrustedRoots = []string{"pg=" + pgRoot} })
	e := newKeylessEnv(t, srv)
	pe := newKeylessEnv(t, pg)
	base := srv.URL
	e.hm.ok("project", "add", klProject, "--data-dir", srv.DataDir)
	e.hm.ok("project", "add", "other/app", "--data-dir", srv.DataDir)

	own := pushImage(t, srv.Addr, klProject, "own")
	e.hm.ok("sign", "-y", "--new-bundle-format=false", "--identity-token", e.token(klProject), "-a", "tag=own", own.String())
	foreign := pushImage(t, srv.Addr, klProject, "foreign")
	e.hm.ok("sign", "-y", "--new-bundle-format=false", "--identity-token", e.token("other/app"), foreign.String())
	tampered := pushImage(t, srv.Addr, klProject, "tampered")
	e.hm.ok("sign", "-y", "--new-bundle-format=false", "--identity-token", e.token(klProject), "-a", "tag=tampered", tampered.String())
	rewriteSignaturePayloads(t, sigTagOf(t, tampered), func(b []byte) []byte { return bytes.Replace(b, []byte(`"tampered"`), []byte(`"tamperedX"`), 1) })
	badSET := pushImage(t, srv.Addr, klProject, "badset")
	e.hm.ok("sign", "-y", "--new-bundle-format=false", "--identity-token", e.token(klProject), badSET.String())
	rewriteSignatures(t, sigTagOf(t, badSET), func(_ int, ann map[string]string) {
		var b map[string]any
		json.Unmarshal([]byte(ann["dev.sigstore.cosign/bundle"]), &b)
		p := b["Payload"].(map[string]any)
		p["integratedTime"] = p["integratedTime"].(float64) + 1
		raw, _ := json.Marshal(b)
		ann["dev.sigstore.cosign/bundle"] = string(raw)
	})
	// own's signature manifest, copied to another image's signature tag.
	wrong := pushImage(t, srv.Addr, klProject, "wrong")
	ownSig, err := remote.Image(sigTagOf(t, own))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTagOf(t, wrong), ownSig); err != nil {
		t.Fatal(err)
	}
	keyed := pushImage(t, srv.Addr, klProject, "keyed")
	pwEnv := []string{"COSIGN_PASSWORD=policy-test"}
	e.hm.okEnv(pwEnv, "generate-key-pair", "--output-key-prefix", "team")
	e.hm.okEnv(pwEnv, "sign", "-y", "--new-bundle-format=false", "--key", "team.key", "--tlog-upload=false", keyed.String())
	public := pushImage(t, srv.Addr, klProject, "public")
	pe.hm.ok("sign", "-y", "--new-bundle-format=false", "--identity-token", pe.token(klProject), public.String())

	t.Run("default policy", func(t *testing.T) {
		wantStatus(t, "own pipeline", only(t, base, own), "verified", "this server's CA")
		wantStatus(t, "another project's pipeline", only(t, base, foreign), "untrusted",
			"the default policy of project grp/app does not allow it: the identity rule (allowed: ~^"+regexp.QuoteMeta(srv.URL+"/"))
		if s := only(t, base, foreign); !strings.Contains(s.StatusDetail, srv.URL+"/other/app//.gitlab-ci.yml@refs/heads/main") {
			t.Errorf("the untrusted reason does not name the signer: %s", s.StatusDetail)
		}
		invalidAmong := func(what string, img name.Digest, detail string) {
			t.Helper()
			var got []string
			for _, s := range statusesOf(t, base, img) {
				got = append(got, s.Status)
				if s.Status == "invalid" {
					wantStatus(t, what, s, "invalid", detail)
				}
			}
			if !strings.Contains(strings.Join(got, ","), "invalid") {
				t.Errorf("%s: statuses %v, want an invalid record", what, got)
			}
		}
		invalidAmong("tampered payload", tampered, "signature")
		invalidAmong("bad SET", badSET, "signed entry timestamp does not verify")
		wantStatus(t, "signature for another image", only(t, base, wrong), "invalid", "digest claim")
		wantStatus(t, "unknown key", only(t, base, keyed), "unverified", "signed with a key the server does not trust")
		wantStatus(t, "another instance's CA and log", only(t, base, public), "unverified", "not issued by this server's CA")
	})

	// The search API returns the status and its reason.
	found := keylessSearch(t, base, "identity="+url.QueryEscape(srv.URL+"/other/app//.gitlab-ci.yml@refs/heads/main"), "", "")
	if len(found) != 1 || found[0].Status != "untrusted" || !strings.Contains(found[0].StatusDetail, "identity rule") {
		t.Errorf("search by the foreign identity: %+v", found)
	}

	t.Run("policy with the key and the other instance's root", func(t *testing.T) {
		pub, err := os.ReadFile(e.hm.path("team.pub"))
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(map[string]any{
			"roots": []string{"hallmark", "pg"},
			"keys":  []string{string(pub)},
			"identities": []map[string]string{
				{"identityRegexp": "^" + regexp.QuoteMeta(srv.URL+"/grp/app//.gitlab-ci.yml@refs/") + ".+$"},
				{"issuer": pg.URL, "identity": pe.identity},
			},
		})
		req, _ := http.NewRequest(http.MethodPut, base+"/api/v1/projects/"+klProject+"/policy", bytes.NewReader(doc))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"version":1`) || !strings.Contains(string(body), `"reevaluating":`) {
			t.Fatalf("PUT policy: %s %s", resp.Status, body)
		}
		wantStatus(t, "own pipeline", only(t, base, own), "verified", "the policy of project grp/app (version 1)")
		wantStatus(t, "the team's key", only(t, base, keyed), "verified", "verified with trusted key SHA256:")
		wantStatus(t, "the other instance", only(t, base, public), "verified", "of trust root pg")
		wantStatus(t, "another project's pipeline", only(t, base, foreign), "untrusted", "identity rule")
	})

	t.Run("policy allowing the other project only", func(t *testing.T) {
		out := e.hm.ok("project", "set-policy", klProject, "--identity-regexp", "^"+regexp.QuoteMeta(srv.URL+"/other/app//")+".*$",
			"--require-annotation", "tag=own", "--data-dir", srv.DataDir)
		if !strings.Contains(out.stderr, "version 2") {
			t.Errorf("set-policy: %s", out)
		}
		// own's pipeline is no longer allowed; foreign's is, but lacks the
		// required annotation.
		wantStatus(t, "own pipeline", only(t, base, own), "untrusted", "identity rule")
		wantStatus(t, "another project's pipeline", only(t, base, foreign), "untrusted", "required annotations rule")
		wantStatus(t, "the team's key (no longer trusted)", only(t, base, keyed), "unverified", "does not trust")
		shown := e.hm.ok("project", "policy", klProject, "--json", "--data-dir", srv.DataDir)
		if !strings.Contains(shown.stdout, `"version": 2`) || !strings.Contains(shown.stdout, `"tag": "own"`) {
			t.Errorf("project policy: %s", shown.stdout)
		}
	})

	t.Run("back to the default, and a rebuild changes nothing", func(t *testing.T) {
		e.hm.ok("project", "set-policy", klProject, "--data-dir", srv.DataDir)
		wantStatus(t, "own pipeline", only(t, base, own), "verified", "")
		wantStatus(t, "another project's pipeline", only(t, base, foreign), "untrusted", "identity rule")
		all := []name.Digest{own, foreign, tampered, badSET, wrong, keyed, public}
		snapshot := func() string {
			var lines []string
			for _, img := range all {
				for k, s := range statusesOf(t, base, img) {
					lines = append(lines, img.DigestStr()+" "+k+" "+s.Status+" "+s.StatusDetail)
				}
			}
			slices.Sort(lines)
			return strings.Join(lines, "\n")
		}
		before := snapshot()
		for range 2 {
			r := e.hm.ok("index", "rebuild", "--data-dir", srv.DataDir)
			// 9: tampered and badSET have their original manifest and the
			// rewritten one; own's manifest also signs wrong.
			if !strings.Contains(r.stderr, "queued 9 signature manifests") {
				t.Errorf("index rebuild: %s", r)
			}
			if after := snapshot(); after != before {
				t.Errorf("a rebuild changed the index:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		}
	})
}

// TestSetPolicyRefusals: set-policy refuses incomplete or invalid rules
// and unknown projects, and changes nothing then.
func TestSetPolicyRefusals(t *testing.T) {
	hm, _ := newTools(t)
	srv := testenv.StartServer(t, nil)
	dd := []string{"--data-dir", srv.DataDir}
	hm.ok(append([]string{"project", "add", "grp/app"}, dd...)...)
	if err := os.WriteFile(hm.path("policy.json"), []byte(`{"annotations":{"tag":"v1"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--issuer", "https://gitlab.example.com"}, "apply to the --identity and --identity-regexp given with them"},
		{[]string{"--identity-regexp", "("}, "does not compile"},
		{[]string{"--identity", "x", "--issuer", "gitlab.example.com"}, "not an http(s) URL"},
		{[]string{"--require-annotation", "novalue"}, "want key=value"},
		{[]string{"--key", hm.path("missing.pub")}, "--key"},
		{[]string{"--trusted-root", hm.path("policy.json")}, "trusted root #1"},
		{[]string{"--root", "Public Good"}, `root "Public Good"`},
		{[]string{"--file", hm.path("policy.json"), "--identity", "x"}, "either as --file or with the rule flags"},
	} {
		r := hm.run(append(append([]string{"project", "set-policy", "grp/app"}, c.args...), dd...)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("set-policy %v: %s; want a refusal with %q", c.args, r, c.want)
		}
	}
	r := hm.run(append([]string{"project", "set-policy", "nope/app"}, dd...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "project not found") {
		t.Errorf("set-policy of a missing project: %s", r)
	}
	shown := hm.ok(append([]string{"project", "policy", "grp/app"}, dd...)...)
	if !strings.Contains(shown.stdout, "0 (the default)") || !strings.Contains(shown.stdout, "from "+srv.URL) {
		t.Errorf("the policy after refusals:\n%s", shown.stdout)
	}
	hm.ok(append([]string{"project", "set-policy", "grp/app", "--file", hm.path("policy.json")}, dd...)...)
	if shown = hm.ok(append([]string{"project", "policy", "grp/app"}, dd...)...); !strings.Contains(shown.stdout, "required annotation  tag=v1") {
		t.Errorf("the policy from --file:\n%s", shown.stdout)
	}
}
