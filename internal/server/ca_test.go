package server_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ct "github.com/google/certificate-transparency-go"
	"github.com/google/certificate-transparency-go/ctutil"
	cttls "github.com/google/certificate-transparency-go/tls"
	ctx509 "github.com/google/certificate-transparency-go/x509"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/keystore"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// caMint mints a built-in issuer token for project grp/app on main (klMint)
// and decodes its claims.
func caMint(t *testing.T, srv *testenv.Server) (token string, claims map[string]any) {
	t.Helper()
	token = klMint(t, srv)
	parts := strings.Split(token, ".")
	payload, err := decodeSegment(parts[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		t.Fatalf("token payload: %v", err)
	}
	return token, claims
}

func decodeSegment(s string) ([]byte, error) {
	return jsonB64.DecodeString(s)
}

func caPost(t *testing.T, url, token string, body []byte) (int, []byte) {
	t.Helper()
	resp, b := call(t, http.MethodPost, url, token, body, "Content-Type", "application/json")
	return resp.StatusCode, b
}

func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

// ctPublicKey reads the CT log key the CA keeps in the data dir.
func ctPublicKey(t *testing.T, dataDir string) crypto.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "keys", "ctlog.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keystore.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

// TestServerCAKeylessFlow: a token from the built-in issuer buys a
// certificate from the server's CA over the legacy API; the chain and the
// embedded SCT verify, the identity is the project's CI config URI, and the
// CA survives a restart.
func TestServerCAKeylessFlow(t *testing.T) {
	dataDir := t.TempDir()
	var bundle []byte
	t.Run("first start", func(t *testing.T) {
		srv := testenv.StartServer(t, func(c *config.Server) { c.DataDir = dataDir })
		token, claims := caMint(t, srv)
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKIXPublicKey(k.Public())
		d := sha256.Sum256([]byte(claims["sub"].(string)))
		proof, _ := ecdsa.SignASN1(rand.Reader, k, d[:])
		body, _ := json.Marshal(map[string]any{
			"publicKey":          map[string]any{"content": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})},
			"signedEmailAddress": proof, "certificateSigningRequest": nil,
		})
		status, resp := caPost(t, srv.URL+"/api/v1/signingCert", token, body)
		if status != http.StatusCreated {
			t.Fatalf("signingCert: %d %s", status, resp)
		}
		chain := pemCerts(t, resp)
		if len(chain) != 3 {
			t.Fatalf("%d certificates", len(chain))
		}
		// The CA's endpoints are counted in /metrics like every other route.
		if _, m := call(t, http.MethodGet, srv.URL+"/metrics", "", nil); !strings.Contains(string(m), `hallmark_http_requests_total{code="201",method="POST",route="fulcio_v1_signing_cert"} 1`) {
			t.Error("the v1 signingCert request is not in /metrics")
		}
		roots, inters := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(chain[2])
		inters.AddCert(chain[1])
		if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
			t.Fatal(err)
		}
		wantSAN := srv.URL + "/grp/app//.gitlab-ci.yml@refs/heads/main"
		if len(chain[0].URIs) != 1 || chain[0].URIs[0].String() != wantSAN {
			t.Errorf("SAN %v, want %s", chain[0].URIs, wantSAN)
		}
		for _, e := range chain[0].Extensions {
			if e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 57264, 1, 1}) && string(e.Value) != srv.URL {
				t.Errorf("issuer extension %q, want %q", e.Value, srv.URL)
			}
		}
		leaf, _ := ctx509.ParseCertificate(chain[0].Raw)
		issuer, _ := ctx509.ParseCertificate(chain[1].Raw)
		var sct ct.SignedCertificateTimestamp
		if len(leaf.SCTList.SCTList) != 1 {
			t.Fatal("no embedded SCT")
		}
		if _, err := cttls.Unmarshal(leaf.SCTList.SCTList[0].Val, &sct); err != nil {
			t.Fatal(err)
		}
		if err := ctutil.VerifySCT(ctPublicKey(t, dataDir), []*ctx509.Certificate{leaf, issuer}, &sct, true); err != nil {
			t.Fatalf("SCT: %v", err)
		}
		bundle = getOK(t, srv.URL+"/api/v2/trustBundle", nil)
		if !bytes.Contains(getOK(t, srv.URL+"/api/v2/configuration", nil), []byte(`"issuerUrl":"`+srv.URL+`"`)) {
			t.Error("configuration does not list the built-in issuer")
		}
	})
	t.Run("after restart", func(t *testing.T) {
		srv := testenv.StartServer(t, func(c *config.Server) { c.DataDir = dataDir })
		if got := getOK(t, srv.URL+"/api/v2/trustBundle", nil); !bytes.Equal(got, bundle) {
			t.Error("trust bundle changed across restart")
		}
	})
}

// TestCosignKeylessSignVerify runs real cosign v2.6.5 (legacy Fulcio v1 API)
// against the server: sign with a built-in issuer token, the SCT checked
// with the CA's CT key (no --insecure-skip-verify), then verify the
// identity and issuer with only the CA chain and CT key as trust.
func TestCosignKeylessSignVerify(t *testing.T) {
	cosign := testenv.Peer(t, "cosign")
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "off" })
	token, _ := caMint(t, srv)

	ref, err := name.ParseReference(srv.Addr + "/grp/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := random.Image(512, 1)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	dgst, _ := img.Digest()
	image := srv.Addr + "/grp/app@" + dgst.String()

	dir := t.TempDir()
	ctDER, _ := x509.MarshalPKIXPublicKey(ctPublicKey(t, srv.DataDir))
	ctFile := filepath.Join(dir, "ctlog.pub")
	os.WriteFile(ctFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ctDER}), 0o600)
	rootFile := filepath.Join(dir, "fulcio-chain.pem")
	os.WriteFile(rootFile, getOK(t, srv.URL+"/api/v1/rootCert", nil), 0o600)

	env := testenv.ToolEnv(t, dir, false, "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE="+ctFile, "SIGSTORE_ROOT_FILE="+rootFile)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(cosign, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("sign", "-y", "--fulcio-url", srv.URL, "--tlog-upload=false", "--identity-token", token, image)
	if err != nil {
		t.Fatalf("cosign sign: %v\n%s", err, out)
	}
	t.Logf("cosign sign:\n%s", out)
	if !strings.Contains(out, "Successfully verified SCT") {
		t.Errorf("cosign sign did not verify the SCT:\n%s", out)
	}
	identity := srv.URL + "/grp/app//.gitlab-ci.yml@refs/heads/main"
	out, err = run("verify", "--insecure-ignore-tlog", "--certificate-identity", identity, "--certificate-oidc-issuer", srv.URL, image)
	if err != nil {
		t.Fatalf("cosign verify: %v\n%s", err, out)
	}
	t.Logf("cosign verify:\n%s", out)
	if !strings.Contains(out, `"Subject":"`+identity+`"`) || !strings.Contains(out, `"Issuer":"`+srv.URL+`"`) {
		t.Errorf("cosign verify output lacks subject/issuer:\n%s", out)
	}
	// Wrong identity and wrong issuer are refused.
	if out, err := run("verify", "--insecure-ignore-tlog", "--certificate-identity", srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main", "--certificate-oidc-issuer", srv.URL, image); err == nil {
		t.Errorf("verify with another identity succeeded:\n%s", out)
	}
	if out, err := run("verify", "--insecure-ignore-tlog", "--certificate-identity", identity, "--certificate-oidc-issuer", "https://gitlab.com", image); err == nil {
		t.Errorf("verify with another issuer succeeded:\n%s", out)
	}
	// The embedded SCT is checked at verify time too: another CT key fails.
	otherCT, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKIXPublicKey(otherCT.Public())
	os.WriteFile(ctFile+".other", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: otherDER}), 0o600)
	env = append(env, "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE="+ctFile+".other")
	if out, err := run("verify", "--insecure-ignore-tlog", "--certificate-identity", identity, "--certificate-oidc-issuer", srv.URL, image); err == nil {
		t.Errorf("verify with another CT log key succeeded:\n%s", out)
	} else if !strings.Contains(out, "ctfe public key not found") && !strings.Contains(out, "SCT") {
		t.Errorf("verify with another CT log key failed for another reason:\n%s", out)
	}
}

var jsonB64 = base64RawURL{}

type base64RawURL struct{}

func (base64RawURL) DecodeString(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(s)
}

// trustFiles writes a signing config pointing at the server's CA (Fulcio v2
// API) and a trusted root with the CA chain and CT key, as cosign 3 and
// sigstore-go consume them.
func trustFiles(t *testing.T, srv *testenv.Server, dir string, ctKey crypto.PublicKey) (signingConfig, trustedRoot string) {
	t.Helper()
	var tb struct {
		Chains []struct {
			Certificates []string `json:"certificates"`
		} `json:"chains"`
	}
	if err := json.Unmarshal(getOK(t, srv.URL+"/api/v2/trustBundle", nil), &tb); err != nil {
		t.Fatal(err)
	}
	var certs []map[string]string
	var root *x509.Certificate
	for _, p := range tb.Chains[0].Certificates {
		c := pemCerts(t, []byte(p))[0]
		certs = append(certs, map[string]string{"rawBytes": base64.StdEncoding.EncodeToString(c.Raw)})
		root = c
	}
	if ctKey == nil {
		ctKey = ctPublicKey(t, srv.DataDir)
	}
	ctDER, _ := x509.MarshalPKIXPublicKey(ctKey)
	logID := sha256.Sum256(ctDER)
	start := root.NotBefore.UTC().Format(time.RFC3339)
	tr := map[string]any{
		"mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
		"tlogs":     []any{},
		"certificateAuthorities": []any{map[string]any{
			"subject":   map[string]any{"organization": root.Subject.Organization[0], "commonName": root.Subject.CommonName},
			"uri":       srv.URL,
			"certChain": map[string]any{"certificates": certs},
			"validFor":  map[string]any{"start": start},
		}},
		"ctlogs": []any{map[string]any{
			"baseUrl":       srv.URL,
			"hashAlgorithm": "SHA2_256",
			"publicKey":     map[string]any{"rawBytes": base64.StdEncoding.EncodeToString(ctDER), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": map[string]any{"start": start}},
			"logId":         map[string]any{"keyId": base64.StdEncoding.EncodeToString(logID[:])},
		}},
		"timestampAuthorities": []any{},
	}
	sc := map[string]any{
		"mediaType":       "application/vnd.dev.sigstore.signingconfig.v0.2+json",
		"caUrls":          []any{map[string]any{"url": srv.URL, "majorApiVersion": 1, "validFor": map[string]any{"start": start}, "operator": "hallmark"}},
		"oidcUrls":        []any{},
		"rekorTlogUrls":   []any{},
		"rekorTlogConfig": map[string]any{"selector": "ANY"},
		"tsaUrls":         []any{},
		"tsaConfig":       map[string]any{"selector": "ANY"},
	}
	signingConfig, trustedRoot = filepath.Join(dir, "signing_config.json"), filepath.Join(dir, "trusted_root.json")
	for p, v := range map[string]any{signingConfig: sc, trustedRoot: tr} {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return signingConfig, trustedRoot
}

// TestCosign3KeylessSignBlob runs real cosign v3 (sigstore-go, Fulcio v2
// API, new bundle format) against the server's CA, then verifies the bundle
// with cosign 3 using only a trusted root holding the CA chain and CT key.
func TestCosign3KeylessSignBlob(t *testing.T) {
	cosign := testenv.Peer(t, "cosign3")
	srv := testenv.StartServer(t, nil)
	token, _ := caMint(t, srv)
	dir := t.TempDir()
	sc, tr := trustFiles(t, srv, dir, nil)
	blob := filepath.Join(dir, "artifact.txt")
	os.WriteFile(blob, []byte("hello hallmark\n"), 0o600)
	bundle := filepath.Join(dir, "artifact.sigstore.json")
	env := testenv.ToolEnv(t, dir, false)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(cosign, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("sign-blob", "-y", "--signing-config", sc, "--trusted-root", tr, "--identity-token", token, "--bundle", bundle, blob)
	t.Logf("cosign3 sign-blob:\n%s", out)
	if err != nil {
		t.Fatalf("cosign3 sign-blob: %v", err)
	}
	identity := srv.URL + "/grp/app//.gitlab-ci.yml@refs/heads/main"
	out, err = run("verify-blob", "--trusted-root", tr, "--bundle", bundle, "--insecure-ignore-tlog",
		"--certificate-identity", identity, "--certificate-oidc-issuer", srv.URL, blob)
	t.Logf("cosign3 verify-blob:\n%s", out)
	if err != nil {
		t.Fatalf("cosign3 verify-blob: %v", err)
	}
	// The bundle holds the CA's leaf with its embedded SCT.
	var b struct {
		VerificationMaterial struct {
			Certificate struct {
				RawBytes []byte `json:"rawBytes"`
			} `json:"certificate"`
		} `json:"verificationMaterial"`
	}
	raw, _ := os.ReadFile(bundle)
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(b.VerificationMaterial.Certificate.RawBytes)
	if err != nil || len(leaf.URIs) != 1 || leaf.URIs[0].String() != identity {
		t.Fatalf("bundle certificate: %v", err)
	}
	if out, err := run("verify-blob", "--trusted-root", tr, "--bundle", bundle, "--insecure-ignore-tlog",
		"--certificate-identity", srv.URL+"/grp/other//.gitlab-ci.yml@refs/heads/main", "--certificate-oidc-issuer", srv.URL, blob); err == nil {
		t.Errorf("verify-blob with another identity succeeded:\n%s", out)
	}
	otherCT, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDir := t.TempDir()
	_, otherTR := trustFiles(t, srv, otherDir, otherCT.Public())
	if out, err := run("verify-blob", "--trusted-root", otherTR, "--bundle", bundle, "--insecure-ignore-tlog",
		"--certificate-identity", identity, "--certificate-oidc-issuer", srv.URL, blob); err == nil {
		t.Errorf("verify-blob with another CT log key succeeded:\n%s", out)
	} else {
		t.Logf("verify-blob with another CT log key failed as expected:\n%s", out)
	}
}
