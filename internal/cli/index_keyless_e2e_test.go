package cli_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// keylessAPISignature is a signature as the provenance API returns it.
type keylessAPISignature struct {
	apiSignature
	CertIssuer     string            `json:"certificateIssuer"`
	LogIndex       *int64            `json:"logIndex"`
	CertExtensions map[string]string `json:"certificateExtensions"`
}

func apiGetAs(t *testing.T, base, path, user, pass string, wantStatus int, out any) {
	t.Helper()
	testenv.WaitIndexed(t, base)
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s as %q: %s, want %d", path, user, resp.Status, wantStatus)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
}

func keylessSearch(t *testing.T, base, param, user, pass string) []keylessAPISignature {
	t.Helper()
	var body struct {
		Results []keylessAPISignature `json:"results"`
	}
	apiGetAs(t, base, "/api/v1/search?"+param, user, pass, http.StatusOK, &body)
	return body.Results
}

// TestSignatureIndexKeyless: keyless signatures made with the server's own
// CA and log (by hallmark, cosign v2 and cosign v3) are indexed as
// verified with their identity, issuer, log index and certificate
// extensions, searchable by extension (commit, pipeline job, runner
// environment) and identity; a tampered SET is indexed invalid; a
// certificate of another CA is unverified.
func TestSignatureIndexKeyless(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	e := newKeylessEnv(t, srv)
	tok := e.token(klProject)
	jobURL := srv.URL + "/" + klProject + "/-/jobs/" + klJob

	hmImg := pushImage(t, srv.Addr, klProject, "hm")
	e.hm.okEnv(append(e.gitlabEnv(klProject, "hm"), "SIGSTORE_ID_TOKEN="+tok), "sign", "--new-bundle-format=false", "-y", "--ci-annotations", hmImg.String())
	csImg := pushImage(t, srv.Addr, klProject, "cs")
	e.cs.ok("sign", "-y", "--fulcio-url", srv.URL, "--rekor-url", srv.URL, "--trusted-root", e.trustedRoot(), "--identity-token", tok, csImg.String())
	signed := []string{hmImg.String(), csImg.String()}
	if e.cs3 != nil {
		cs3Img := pushImage(t, srv.Addr, klProject, "cs3")
		e.cs3.ok("sign", "-y", "--signing-config", filepath.Join(e.trustDir, "signing_config.json"), "--trusted-root", e.trustedRoot(),
			"--identity-token", tok, cs3Img.String())
		signed = append(signed, cs3Img.String())
	}
	for _, ref := range signed {
		img, _ := name.NewDigest(ref)
		var body struct {
			Signatures []keylessAPISignature `json:"signatures"`
		}
		apiGetAs(t, srv.URL, "/api/v1/images/"+klProject+"/signatures?digest="+img.DigestStr(), "", "", http.StatusOK, &body)
		if len(body.Signatures) != 1 {
			t.Fatalf("%s: %d signatures indexed", ref, len(body.Signatures))
		}
		s := body.Signatures[0]
		if s.Status != "verified" || s.Signer != e.identity || s.CertIssuer != srv.URL || s.LogIndex == nil ||
			s.CertExtensions["1.3.6.1.4.1.57264.1.13"] != klSHA || s.CertExtensions["1.3.6.1.4.1.57264.1.21"] != jobURL ||
			s.CertExtensions["1.3.6.1.4.1.57264.1.14"] != "refs/heads/main" || s.CertExtensions["1.3.6.1.4.1.57264.1.8"] != srv.URL {
			t.Errorf("%s indexed as %+v", ref, s)
		}
		if !strings.Contains(s.StatusDetail, "this server's CA") {
			t.Errorf("status detail: %s", s.StatusDetail)
		}
	}
	// Incident queries: everything built from this commit, by this job,
	// on self-hosted runners, by this identity.
	for _, q := range []string{"certificate=sourceRepositoryDigest=" + klSHA, "certificate=13=" + klSHA,
		"certificate=" + url.QueryEscape("1.3.6.1.4.1.57264.1.21="+jobURL), "certificate=runInvocationURI=" + url.QueryEscape(jobURL),
		"identity=" + url.QueryEscape(e.identity)} {
		if got := keylessSearch(t, srv.URL, q, "", ""); len(got) != len(signed) {
			t.Errorf("search %s: %d results, want %d", q, len(got), len(signed))
		}
	}
	if got := keylessSearch(t, srv.URL, "certificate=sourceRepositoryDigest=0000", "", ""); len(got) != 0 {
		t.Errorf("search for another commit: %+v", got)
	}
	apiGetAs(t, srv.URL, "/api/v1/search?certificate=noSuchExtension=x", "", "", http.StatusBadRequest, nil)
	// The signed annotations and the certificate are kept apart: an
	// annotation search does not see certificate fields.
	if got := keylessSearch(t, srv.URL, "annotation=com.gitlab.ci.commit.sha="+klSHA, "", ""); len(got) != 1 {
		t.Errorf("annotation search: %d results, want only hallmark's signature with CI annotations", len(got))
	}

	t.Run("tampered SET is invalid", func(t *testing.T) {
		rewriteSignatures(t, sigTagOf(t, hmImg), func(_ int, ann map[string]string) {
			var b map[string]any
			json.Unmarshal([]byte(ann["dev.sigstore.cosign/bundle"]), &b)
			p := b["Payload"].(map[string]any)
			p["integratedTime"] = p["integratedTime"].(float64) + 1
			raw, _ := json.Marshal(b)
			ann["dev.sigstore.cosign/bundle"] = string(raw)
		})
		var body struct {
			Signatures []keylessAPISignature `json:"signatures"`
		}
		apiGetAs(t, srv.URL, "/api/v1/images/"+klProject+"/signatures?digest="+hmImg.DigestStr(), "", "", http.StatusOK, &body)
		statuses := map[string]string{}
		for _, s := range body.Signatures {
			statuses[s.Status] = s.StatusDetail
		}
		if d, ok := statuses["invalid"]; !ok || !strings.Contains(d, "signed entry timestamp does not verify") {
			t.Errorf("tampered SET not indexed as invalid: %+v", body.Signatures)
		}
	})

	t.Run("another server's CA is unverified", func(t *testing.T) {
		other := testenv.StartServer(t, nil)
		oe := newKeylessEnv(t, other)
		img := pushImage(t, srv.Addr, klProject, "foreign")
		oe.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", oe.token(klProject), img.String())
		var body struct {
			Signatures []keylessAPISignature `json:"signatures"`
		}
		apiGetAs(t, srv.URL, "/api/v1/images/"+klProject+"/signatures?digest="+img.DigestStr(), "", "", http.StatusOK, &body)
		if len(body.Signatures) != 1 || body.Signatures[0].Status != "unverified" || !strings.Contains(body.Signatures[0].StatusDetail, "not issued by this server's CA") {
			t.Errorf("foreign CA: %+v", body.Signatures)
		}
	})
}

// TestProvenanceAPIAuth: with access control on, the provenance API shows
// anonymous callers the public projects only, and authenticated callers
// what they may pull.
func TestProvenanceAPIAuth(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	pwRaw, err := os.ReadFile(filepath.Join(srv.DataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	adminPW := strings.TrimSpace(string(pwRaw))
	e := newKeylessEnv(t, srv)
	e.hm.ok("project", "add", "pub/app", "--visibility", "public", "--data-dir", srv.DataDir)
	e.hm.ok("project", "add", "priv/app", "--data-dir", srv.DataDir)
	if r := e.hm.runEnv(nil, "alice-password-1\n", "user", "add", "alice", "--password-stdin", "--data-dir", srv.DataDir); r.code != 0 {
		t.Fatalf("user add: %s", r)
	}
	e.hm.ok("project", "grant", "priv/app", "alice", "--role", "reporter", "--data-dir", srv.DataDir)
	if r := e.hm.runEnv(nil, adminPW, "login", "-u", "admin", "--password-stdin", srv.Addr); r.code != 0 {
		t.Fatalf("hallmark login: %s", r)
	}
	admin := authn.FromConfig(authn.AuthConfig{Username: "admin", Password: adminPW})
	var digests []string
	for _, repo := range []string{"pub/app", "priv/app", "other/app"} {
		img, _ := random.Image(64, 1)
		tag, _ := name.NewTag(srv.Addr + "/" + repo + ":v1")
		if err := remote.Write(tag, img, remote.WithAuth(admin)); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		digests = append(digests, d.String())
		e.hm.ok("sign", "--new-bundle-format=false", "-y", "--identity-token", e.token(repo), "-a", "release=r1", tag.Context().Digest(d.String()).String())
	}
	repos := func(rs []keylessAPISignature) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Repository+"="+r.Status)
		}
		return strings.Join(out, ",")
	}
	q := "annotation=release=r1"
	if got := repos(keylessSearch(t, srv.URL, q, "", "")); got != "pub/app=verified" {
		t.Errorf("anonymous search: %s", got)
	}
	if got := repos(keylessSearch(t, srv.URL, q, "alice", "alice-password-1")); got != "priv/app=verified,pub/app=verified" {
		t.Errorf("alice's search: %s", got)
	}
	if got := keylessSearch(t, srv.URL, q, "admin", adminPW); len(got) != 3 {
		t.Errorf("admin's search: %s", repos(got))
	}
	apiGetAs(t, srv.URL, "/api/v1/search?"+q, "alice", "wrong", http.StatusUnauthorized, nil)
	path := func(repo string, i int) string { return "/api/v1/images/" + repo + "/signatures?digest=" + digests[i] }
	apiGetAs(t, srv.URL, path("pub/app", 0), "", "", http.StatusOK, nil)
	apiGetAs(t, srv.URL, path("priv/app", 1), "", "", http.StatusNotFound, nil)
	apiGetAs(t, srv.URL, path("priv/app", 1), "alice", "alice-password-1", http.StatusOK, nil)
	apiGetAs(t, srv.URL, path("other/app", 2), "alice", "alice-password-1", http.StatusNotFound, nil)
	apiGetAs(t, srv.URL, path("other/app", 2), "admin", adminPW, http.StatusOK, nil)
}
