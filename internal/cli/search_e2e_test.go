package cli_test

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/internal/web"
)

// searchJSON is `hallmark search -o json`.
type searchJSON struct {
	Results []struct {
		Repository     string               `json:"repository"`
		Subject        string               `json:"subject"`
		Status         string               `json:"status"`
		Kind           string               `json:"kind"`
		Annotations    map[string]string    `json:"annotations"`
		Matches        []web.Match          `json:"matches"`
		CA             *web.CertificateJSON `json:"caRecord"`
		Contradictions []struct {
			Field, Annotation, Asserted string
			Evidence                    []string
		} `json:"contradictions"`
	} `json:"results"`
	Next string `json:"next"`
}

// TestSearchCommandAndExports: keyless signatures by hallmark (with CI
// annotations that lie about the pipeline and name the user by display
// name), cosign v2 and cosign v3, found with `hallmark search` by commit
// prefix, runner, user and pipeline on the evidence of the CA's recorded
// claims; the lying annotation matches nothing and is reported as a
// contradiction; the table fits 100 columns; CSV and NDJSON exports hold
// every result; the bundle export re-verifies offline with sigstore-go
// (and cosign verify-blob) against the server's trusted root, and a
// tampered bundle does not.
func TestSearchCommandAndExports(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	tok := strings.TrimSpace(e.hm.ok("token", "issue", "--server", srv.URL, "--data-dir", srv.DataDir, "--project", klProject, "--ref", "main",
		"--sha", klSHA, "--pipeline", klPipeline, "--job", klJob, "--user", "alice", "--runner-id", "12270835").stdout)

	hmImg := pushImage(t, srv.Addr, klProject, "hm")
	env := e.gitlabEnv(klProject, "hm")
	env = append(env, "CI_PIPELINE_ID=999", "SIGSTORE_ID_TOKEN="+tok) // the annotation lies about the pipeline
	e.hm.okEnv(env, "sign", "-y", "--ci-annotations", hmImg.String())
	csImg := pushImage(t, srv.Addr, klProject, "cs")
	e.cs.ok("sign", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", e.trustedRoot(), "--identity-token", tok, csImg.String())
	images := map[string]bool{hmImg.DigestStr(): true, csImg.DigestStr(): true}
	if e.cs3 != nil {
		cs3Img := pushImage(t, srv.Addr, klProject, "cs3")
		e.cs3.ok("sign", "-y", "--signing-config", filepath.Join(e.trustDir, "signing_config.json"), "--trusted-root", e.trustedRoot(),
			"--identity-token", tok, cs3Img.String())
		images[cs3Img.DigestStr()] = true
	}
	search := func(args ...string) searchJSON {
		t.Helper()
		r := e.hm.ok(append([]string{"search", "--server", srv.URL, "-o", "json"}, args...)...)
		var out searchJSON
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("search %v: %v\n%s", args, err, r.stdout)
		}
		return out
	}

	all := search("--commit", klSHA[:9])
	if len(all.Results) != len(images) {
		t.Fatalf("commit prefix: %d results, want %d: %+v", len(all.Results), len(images), all)
	}
	for _, r := range all.Results {
		if !images[r.Subject] || r.Status != "verified" || r.CA == nil || r.CA.Claims["runner_id"] != "12270835" || r.CA.Claims["user_login"] != "alice" {
			t.Errorf("result %+v (CA record %+v)", r, r.CA)
		}
		if len(r.Matches) == 0 || r.Matches[0].Field != "commit" || r.Matches[0].Basis != "ca-claims" || !r.Matches[0].Evidence {
			t.Errorf("commit match of %s: %+v", r.Subject, r.Matches)
		}
	}
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--runner", "12270835"}, len(images)},
		{[]string{"--user", "alice", "--status", "verified"}, len(images)},
		{[]string{"--pipeline", klPipeline}, len(images)},
		{[]string{"--pipeline", srv.URL + "/" + klProject + "/-/pipelines/" + klPipeline}, len(images)},
		{[]string{"--job", srv.URL + "/" + klProject + "/-/jobs/" + klJob, "--project", klProject}, len(images)},
		{[]string{"--pipeline", "999"}, 0},       // the annotation never overrides the token's claim
		{[]string{"--user", "Alice Example"}, 0}, // nor does the display name
		{[]string{"--runner", "1"}, 0},
		{[]string{"--commit", klSHA, "--status", "invalid"}, 0},
		{[]string{"-a", "com.gitlab.ci.pipeline.id=999"}, 1}, // asked for as an annotation: found, as one
	} {
		if got := search(tc.args...); len(got.Results) != tc.want {
			t.Errorf("search %v: %d results, want %d", tc.args, len(got.Results), tc.want)
		}
	}
	lying := search("-a", "com.gitlab.ci.pipeline.id=999")
	if r := lying.Results[0]; len(r.Contradictions) != 1 || r.Contradictions[0].Field != "pipeline" || r.Contradictions[0].Asserted != "999" ||
		len(r.Matches) != 1 || r.Matches[0].Basis != "annotation" || r.Matches[0].Evidence {
		t.Errorf("the lying annotation's result: %+v", r)
	}
	// Paging: one result a page, every image once.
	seen := map[string]bool{}
	page := search("--project", klProject, "--limit", "1")
	for i := 0; ; i++ {
		for _, r := range page.Results {
			if seen[r.Subject] {
				t.Fatalf("page %d repeats %s", i, r.Subject)
			}
			seen[r.Subject] = true
		}
		if page.Next == "" || i > len(images) {
			break
		}
		page = search("--project", klProject, "--limit", "1", "--cursor", page.Next)
	}
	if len(seen) != len(images) {
		t.Errorf("paging one by one saw %d images, want %d", len(seen), len(images))
	}

	table := e.hm.ok("search", "--server", srv.URL, "--commit", klSHA)
	lines := strings.Split(strings.TrimSpace(table.stdout), "\n")
	if len(lines) != len(images)+1 || !strings.HasPrefix(lines[0], "CREATED") {
		t.Errorf("table:\n%s", table.stdout)
	}
	for _, l := range lines {
		if len(l) > 100 {
			t.Errorf("table line of %d columns: %q", len(l), l)
		}
	}

	csvOut := e.hm.ok("search", "--server", srv.URL, "--project", klProject, "-o", "csv").stdout
	rows, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || len(rows) != len(images)+1 || rows[0][0] != "created" || rows[0][12] != "commit" {
		t.Fatalf("csv (%v):\n%s", err, csvOut)
	}
	for _, row := range rows[1:] {
		if row[12] != klSHA || row[13] != "ca-claims" || row[22] != "12270835" {
			t.Errorf("csv row %q", row)
		}
	}
	nd := e.hm.ok("search", "--server", srv.URL, "--project", klProject, "-o", "ndjson").stdout
	if n := strings.Count(nd, "\n"); n != len(images) {
		t.Errorf("ndjson: %d lines, want %d:\n%s", n, len(images), nd)
	}

	// Bundles: each re-verifies offline against the server's trusted root.
	r := e.hm.ok("search", "--server", srv.URL, "--project", klProject, "-o", "bundles")
	files := untar(t, []byte(r.stdout))
	v := e.sigstoreGo()
	id, _ := sgverify.NewShortCertificateIdentity(srv.URL, "", e.identity, "")
	verified := map[string]bool{}
	for path, b := range files {
		bpath, ok := strings.CutSuffix(path, ".sigstore.json")
		if !ok {
			continue
		}
		var sb sgbundle.Bundle
		if err := sb.UnmarshalJSON(b); err != nil {
			t.Fatalf("%s is not a bundle sigstore-go reads: %v\n%s", path, err, b)
		}
		var policy sgverify.PolicyBuilder
		image := strings.Split(path, "/")[2] // grp/app/sha256-<hex>/signature-<id>.sigstore.json
		image = strings.Replace(image, "-", ":", 1)
		if payload, ok := files[bpath+".payload.json"]; ok {
			if !bytes.Contains(payload, []byte(image)) {
				t.Errorf("%s: the payload does not name %s", path, image)
			}
			if mt := sb.GetMediaType(); mt != "application/vnd.dev.sigstore.bundle.v0.3+json" {
				t.Errorf("%s: media type %s: the inclusion proof from the server's log is missing", path, mt)
			}
			policy = sgverify.NewPolicy(sgverify.WithArtifact(bytes.NewReader(payload)), sgverify.WithCertificateIdentity(id))
		} else {
			dg, _ := hex.DecodeString(strings.TrimPrefix(image, "sha256:"))
			policy = sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", dg), sgverify.WithCertificateIdentity(id))
		}
		if _, err := v.Verify(&sb, policy); err != nil {
			t.Errorf("sigstore-go rejects the exported %s: %v", path, err)
			continue
		}
		verified[image] = true
		if payload, ok := files[bpath+".payload.json"]; ok {
			// cosign verify-blob re-verifies it offline too.
			dir := t.TempDir()
			bf, pf := filepath.Join(dir, "b.json"), filepath.Join(dir, "payload.json")
			os.WriteFile(bf, b, 0o600)
			os.WriteFile(pf, payload, 0o600)
			e.cs.ok("verify-blob", "--bundle", bf, "--new-bundle-format", "--trusted-root", e.trustedRoot(),
				"--certificate-identity", e.identity, "--certificate-oidc-issuer", srv.URL, pf)
		}
		// A tampered bundle does not verify.
		var raw map[string]any
		json.Unmarshal(b, &raw)
		if ms, ok := raw["messageSignature"].(map[string]any); ok {
			sig, _ := base64.StdEncoding.DecodeString(ms["signature"].(string))
			sig[10] ^= 1
			ms["signature"] = base64.StdEncoding.EncodeToString(sig)
			tb, _ := json.Marshal(raw)
			var bad sgbundle.Bundle
			if bad.UnmarshalJSON(tb) == nil {
				if _, err := v.Verify(&bad, policy); err == nil {
					t.Errorf("sigstore-go accepts %s with a tampered signature", path)
				}
			}
		}
	}
	if len(verified) != len(images) {
		t.Errorf("%d of %d images have a bundle that re-verifies; files: %v", len(verified), len(images), keysOf(files))
	}
	if idx := files["export.ndjson"]; strings.Count(string(idx), "\n") != len(images) || bytes.Contains(idx, []byte(`"error"`)) {
		t.Errorf("export.ndjson:\n%s", idx)
	}
}

// untar reads a tar into a map of file names to contents.
func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the export is not a tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = data
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
