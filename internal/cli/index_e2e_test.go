package cli_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

type apiSignature struct {
	Repository   string            `json:"repository"`
	Subject      string            `json:"subject"`
	Tags         []string          `json:"tags"`
	Kind         string            `json:"kind"`
	Manifest     string            `json:"signatureManifest"`
	Layer        string            `json:"layer"`
	Signer       string            `json:"signer"`
	Status       string            `json:"status"`
	StatusDetail string            `json:"statusDetail"`
	Annotations  map[string]string `json:"annotations"`
}

// apiGet reads the provenance API once the server's index is idle (the
// index works in the background after a push).
func apiGet(t *testing.T, base, path string, out any) {
	t.Helper()
	testenv.WaitIndexed(t, base)
	getJSON(t, base, path, out)
}

// getJSON decodes the JSON answer to GET base+path into out.
func getJSON(t *testing.T, base, path string, out any) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

func imageSignatures(t *testing.T, base string, img name.Digest) []apiSignature {
	t.Helper()
	var body struct {
		Signatures []apiSignature `json:"signatures"`
	}
	apiGet(t, base, "/api/v1/images/"+img.Context().RepositoryStr()+"/signatures?digest="+img.DigestStr(), &body)
	return body.Signatures
}

func search(t *testing.T, base, key, value string) []apiSignature {
	t.Helper()
	var body struct {
		Results []apiSignature `json:"results"`
	}
	apiGet(t, base, "/api/v1/search?annotation="+url.QueryEscape(key+"="+value), &body)
	return body.Results
}

// TestSignatureIndex signs through a real Hallmark server with the real
// hallmark CLI and real cosign and checks what the index records, through
// the JSON API.
func TestSignatureIndex(t *testing.T) {
	hm, cs := newTools(t)
	hm.ok("generate-key-pair", "--output-key-prefix", "trusted")
	hm.ok("generate-key-pair", "--output-key-prefix", "other")
	srv := testenv.StartServer(t, func(c *config.Server) { c.TrustedKeys = []string{hm.path("trusted.pub")} })
	base := "http://" + srv.Addr

	t.Run("CI annotations, search by commit", func(t *testing.T) {
		img := pushImage(t, srv.Addr, "grp/proj", "01234567")
		hm.okEnv(envList(gitlabEnv), "sign", "--new-bundle-format=false", "--key", "trusted.key", "--tlog-upload=false", "--ci-annotations", "-y", img.String())
		found := search(t, base, "com.gitlab.ci.commit.sha", gitlabAnnotations["com.gitlab.ci.commit.sha"])
		if len(found) != 1 {
			t.Fatalf("search found %d signatures, want 1: %+v", len(found), found)
		}
		s := found[0]
		if s.Repository != "grp/proj" || s.Subject != img.DigestStr() || s.Status != "verified" || !strings.HasPrefix(s.Signer, "SHA256:") {
			t.Errorf("indexed signature %+v", s)
		}
		if len(s.Annotations) != 11 || s.Annotations["com.gitlab.ci.job.url"] != gitlabAnnotations["com.gitlab.ci.job.url"] {
			t.Errorf("annotations %v, want the 11 CI annotations", s.Annotations)
		}
		if len(s.Tags) != 1 || s.Tags[0] != "01234567" {
			t.Errorf("search result should name the image's tags, got %v", s.Tags)
		}
		if got := search(t, base, "com.gitlab.ci.commit.sha", strings.Repeat("f", 40)); len(got) != 0 {
			t.Errorf("search for another commit found %+v", got)
		}
	})

	t.Run("cosign signatures, trusted and untrusted, appended once each", func(t *testing.T) {
		img := pushImage(t, srv.Addr, "team/app", "v1")
		cs.ok("sign", "--key", "trusted.key", "--tlog-upload=false", "-a", "by=cosign", "-a", "build=1", img.String())
		sigs := imageSignatures(t, base, img)
		if len(sigs) != 1 || sigs[0].Status != "verified" || sigs[0].Annotations["by"] != "cosign" {
			t.Fatalf("after cosign sign: %+v", sigs)
		}
		cs.ok("sign", "--key", "other.key", "--tlog-upload=false", "-a", "by=cosign-other", img.String())
		hm.ok("sign", "--new-bundle-format=false", "--key", "other.key", "--tlog-upload=false", "-a", "by=hallmark-other", img.String())
		hm.ok("sign", "--new-bundle-format=false", "--key", "trusted.key", "--tlog-upload=false", "-a", "by=hallmark", "-a", "build=1", img.String())
		// Re-signing with the same key and payload adds nothing.
		hm.ok("sign", "--new-bundle-format=false", "--key", "trusted.key", "--tlog-upload=false", "-a", "by=hallmark", "-a", "build=1", img.String())
		sigs = imageSignatures(t, base, img)
		var got []string
		for _, s := range sigs {
			got = append(got, s.Annotations["by"]+":"+s.Status)
		}
		want := []string{"cosign:verified", "cosign-other:unverified", "hallmark-other:unverified", "hallmark:verified"}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("indexed %v, want each signature once, in order: %v", got, want)
		}
		if sigs[1].Signer != "" || !strings.Contains(sigs[1].StatusDetail, "does not trust") {
			t.Errorf("untrusted signature: %+v", sigs[1])
		}
		if found := search(t, base, "build", "1"); len(found) != 2 {
			t.Errorf("search build=1 found %d, want 2", len(found))
		}
		// Four layers in the signature manifest, four rows: the earlier
		// layers were not indexed again when the manifest was re-pushed.
		h, _ := v1.NewHash(img.DigestStr())
		d, err := remote.Get(img.Context().Tag(fmt.Sprintf("sha256-%s.sig", h.Hex)))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Layers []json.RawMessage }
		json.Unmarshal(d.Manifest, &m)
		if len(m.Layers) != 4 || len(sigs) != 4 {
			t.Errorf("%d layers, %d indexed signatures; want 4 and 4", len(m.Layers), len(sigs))
		}
	})

	t.Run("cosign referrers: oci-1-1 mode and sigstore bundles", func(t *testing.T) {
		img := pushImage(t, srv.Addr, "team/referrers", "v1")
		cs.okEnv([]string{"COSIGN_EXPERIMENTAL=1"}, "sign", "--key", "trusted.key", "--tlog-upload=false", "--registry-referrers-mode=oci-1-1", "-a", "mode=oci11", img.String())
		cs.ok("sign", "--key", "other.key", "--tlog-upload=false", "--new-bundle-format", img.String())
		sigs := imageSignatures(t, base, img)
		if len(sigs) != 2 {
			t.Fatalf("indexed %d referrer signatures, want 2: %+v", len(sigs), sigs)
		}
		byKind := map[string]apiSignature{}
		for _, s := range sigs {
			byKind[s.Kind] = s
		}
		if s := byKind["cosign"]; s.Status != "verified" || s.Annotations["mode"] != "oci11" {
			t.Errorf("oci-1-1 referrer: %+v", s)
		}
		if s := byKind["sigstore-bundle"]; s.Status != "unverified" || !strings.Contains(s.StatusDetail, "does not trust") {
			t.Errorf("bundle referrer by an untrusted key: %+v", s)
		}
	})

	t.Run("malformed signature manifests", func(t *testing.T) {
		img := pushImage(t, srv.Addr, "team/broken", "v1")
		other := pushImage(t, srv.Addr, "team/broken", "v2")
		key, err := sign.LoadPrivateKey(mustRead(t, hm.path("trusted.key")), []byte("e2e-password"))
		if err != nil {
			t.Fatal(err)
		}
		sigOf := func(p string) string {
			s, err := sign.SignBytes(key, []byte(p))
			if err != nil {
				t.Fatal(err)
			}
			return base64.StdEncoding.EncodeToString(s)
		}
		payload := func(d string) string {
			return `{"critical":{"identity":{"docker-reference":"x/team/broken"},"image":{"docker-manifest-digest":"` + d + `"},"type":"cosign container image signature"},"optional":{"k":"v"}}`
		}
		cases := []struct {
			name, payload string
			ann           map[string]string
			detail        string
		}{
			{"garbage payload", "\x00\x01not json", map[string]string{"dev.cosignproject.cosign/signature": sigOf("\x00\x01not json")}, "not simple-signing JSON"},
			{"garbage base64 signature", payload(img.DigestStr()), map[string]string{"dev.cosignproject.cosign/signature": "%%%"}, "annotation dev.cosignproject.cosign/signature is not standard base64"},
			{"no signature annotation", payload(img.DigestStr()), nil, "layer has no dev.cosignproject.cosign/signature annotation"},
			{"payload for another image", payload(other.DigestStr()), map[string]string{"dev.cosignproject.cosign/signature": sigOf(payload(other.DigestStr()))}, "not the image " + img.DigestStr()},
			{"truncated certificate", payload(img.DigestStr()), map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ==", "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}, "certificate"},
			{"bad signature", payload(img.DigestStr()), map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="}, "does not trust"},
		}
		var adds []mutate.Addendum
		for _, c := range cases {
			adds = append(adds, mutate.Addendum{Layer: static.NewLayer([]byte(c.payload), "application/vnd.dev.cosign.simplesigning.v1+json"), Annotations: c.ann})
		}
		sigImg, err := mutate.Append(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), adds...)
		if err != nil {
			t.Fatal(err)
		}
		h, _ := v1.NewHash(img.DigestStr())
		if err := remote.Write(img.Context().Tag(fmt.Sprintf("sha256-%s.sig", h.Hex)), sigImg); err != nil {
			t.Fatalf("the registry must store a malformed signature manifest: %v", err)
		}
		// A signature tag holding something that is not a signature
		// manifest at all (an index), for a third subject.
		third := pushImage(t, srv.Addr, "team/broken", "v3")
		h3, _ := v1.NewHash(third.DigestStr())
		if err := remote.WriteIndex(third.Context().Tag(fmt.Sprintf("sha256-%s.sig", h3.Hex)), empty.Index); err != nil {
			t.Fatal(err)
		}
		// The server is alive and the API reports every signature.
		sigs := imageSignatures(t, base, img)
		if len(sigs) != len(cases) {
			t.Fatalf("indexed %d signatures, want %d: %+v", len(sigs), len(cases), sigs)
		}
		for i, c := range cases {
			want := "invalid"
			if c.name == "bad signature" { // well-formed; no trusted key matches it
				want = "unverified"
			}
			if sigs[i].Status != want || !strings.Contains(sigs[i].StatusDetail, c.detail) {
				t.Errorf("%s: status %q detail %q; want %s with %q", c.name, sigs[i].Status, sigs[i].StatusDetail, want, c.detail)
			}
		}
		idx := imageSignatures(t, base, third)
		if len(idx) != 1 || idx[0].Status != "invalid" || !strings.Contains(idx[0].StatusDetail, "no signature layers") {
			t.Errorf("index under a signature tag: %+v", idx)
		}
		// hallmark verify names each failure too.
		r := hm.fail(12, verifyArgs("trusted.pub", img.String())...)
		for _, want := range []string{
			"signature 1 of 6", "payload is not simple-signing JSON",
			"signature 2 of 6", "is not standard base64",
			"signature 3 of 6", "layer has no dev.cosignproject.cosign/signature annotation",
			"signature 4 of 6", `payload is for "` + other.DigestStr() + `"`,
			"signature 6 of 6", "signature check failed: the key is ECDSA P-256 but the signature is not an ASN.1 ECDSA signature (4 bytes, unknown format)",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("verify output lacks %q:\n%s", want, r.stderr)
			}
		}
		resp, err := http.Get(base + "/readyz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("server not ready after malformed signatures: %v", err)
		}
		resp.Body.Close()
	})

	t.Run("a retried push indexes nothing new", func(t *testing.T) {
		// Pushing the same signature manifest bytes again (a retry) adds nothing.
		img := pushImage(t, srv.Addr, "team/retry", "v1")
		hm.ok("sign", "--new-bundle-format=false", "--key", "trusted.key", "--tlog-upload=false", img.String())
		h, _ := v1.NewHash(img.DigestStr())
		tag := img.Context().Tag(fmt.Sprintf("sha256-%s.sig", h.Hex))
		d, err := remote.Get(tag)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, base+"/v2/team/retry/manifests/"+tag.TagStr(), bytes.NewReader(d.Manifest))
		req.Header.Set("Content-Type", string(d.MediaType))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("re-push: %v %v", resp, err)
		}
		resp.Body.Close()
		if sigs := imageSignatures(t, base, img); len(sigs) != 1 || sigs[0].Layer != fmt.Sprintf("sha256:%x", sha256.Sum256(mustPayload(t, tag))) {
			t.Errorf("after a retried push: %+v", sigs)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPayload(t *testing.T, tag name.Tag) []byte {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	b.ReadFrom(rc)
	return b.Bytes()
}
