package cli_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/cli"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// runTrustCLI runs the hallmark command line in-process.
func runTrustCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// servedTrust returns the server's trusted root and signing config as kept
// in its data dir (the out-of-band source of the fingerprint).
func servedTrust(t *testing.T, srv *testenv.Server) (tr, sc []byte) {
	t.Helper()
	var err error
	if tr, err = os.ReadFile(filepath.Join(srv.DataDir, "trust", root.TrustedRootFile)); err != nil {
		t.Fatal(err)
	}
	if sc, err = os.ReadFile(filepath.Join(srv.DataDir, "trust", root.SigningConfigFile)); err != nil {
		t.Fatal(err)
	}
	return tr, sc
}

func TestTrustInitPinned(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	trRaw, scRaw := servedTrust(t, srv)
	fp := root.Fingerprint(trRaw)
	dir := filepath.Join(t.TempDir(), "trust")
	t.Setenv(root.EnvTrustDir, dir)
	installed := func() bool {
		_, err := os.Stat(filepath.Join(dir, root.TrustedRootFile))
		return err == nil
	}

	// No fingerprint: refused, the fingerprint seen is printed for an
	// out-of-band comparison, nothing is installed.
	_, stderr, code := runTrustCLI(t, "trust", "init", "--server", srv.URL)
	if code == 0 || !strings.Contains(stderr, "refusing") || !strings.Contains(stderr, fp) || installed() {
		t.Fatalf("init without a fingerprint: code %d installed %v\n%s", code, installed(), stderr)
	}
	// Wrong fingerprint: refused.
	other := strings.Repeat("0", 64)
	_, stderr, code = runTrustCLI(t, "trust", "init", "--server", srv.URL, "--fingerprint", other)
	if code == 0 || !strings.Contains(stderr, "fingerprint mismatch") || !strings.Contains(stderr, fp) || installed() {
		t.Fatalf("init with a wrong fingerprint: code %d installed %v\n%s", code, installed(), stderr)
	}
	// Not a fingerprint.
	_, stderr, code = runTrustCLI(t, "trust", "init", "--server", srv.URL, "--fingerprint", "abc")
	if code == 0 || !strings.Contains(stderr, "not a SHA-256") {
		t.Fatalf("init with a malformed fingerprint: code %d\n%s", code, stderr)
	}
	// Not a server URL.
	_, stderr, code = runTrustCLI(t, "trust", "init", "--server", "127.0.0.1:5000", "--fingerprint", fp)
	if code == 0 || !strings.Contains(stderr, "want http(s)://host") {
		t.Fatalf("init with a bad URL: code %d\n%s", code, stderr)
	}

	// The right fingerprint, in openssl's style: installed in the default
	// directory, byte for byte what the server serves.
	stdout, stderr, code := runTrustCLI(t, "trust", "init", "--server", srv.URL+"/", "--fingerprint", "SHA256:"+strings.ToUpper(fp))
	if code != 0 {
		t.Fatalf("init: code %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, fp) {
		t.Errorf("init output lacks the fingerprint:\n%s", stdout)
	}
	p, _ := root.DefaultTrustedRootPath()
	if got, _ := os.ReadFile(p); !bytes.Equal(got, trRaw) {
		t.Error("installed trusted root differs from the served one")
	}
	p, _ = root.DefaultSigningConfigPath()
	if got, _ := os.ReadFile(p); !bytes.Equal(got, scRaw) {
		t.Error("installed signing config differs from the served one")
	}
	if _, err := root.Load(filepath.Join(dir, root.TrustedRootFile)); err != nil {
		t.Errorf("installed trusted root does not load: %v", err)
	}

	// --dir installs elsewhere.
	alt := t.TempDir()
	if _, stderr, code := runTrustCLI(t, "trust", "init", "--server", srv.URL, "--fingerprint", fp, "--dir", alt); code != 0 {
		t.Fatalf("init --dir: %s", stderr)
	}
	if _, err := root.LoadSigningConfig(filepath.Join(alt, root.SigningConfigFile)); err != nil {
		t.Error(err)
	}
}

// TestTrustInitRefusesTampering: a man in the middle who alters the
// trusted root, or the signing config, is caught.
func TestTrustInitRefusesTampering(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	trRaw, _ := servedTrust(t, srv)
	fp := root.Fingerprint(trRaw)
	target, _ := url.Parse(srv.URL)
	mitm := func(path string, rewrite func([]byte) []byte) *httptest.Server {
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.ModifyResponse = func(resp *http.Response) error {
			if resp.Request.URL.Path != path {
				return nil
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			resp.Body.Close()
			b = rewrite(b)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Del("Content-Length")
			return nil
		}
		s := httptest.NewServer(proxy)
		t.Cleanup(s.Close)
		return s
	}
	dir := t.TempDir()

	// The trusted root with another log key: the pin does not match.
	tr, err := root.Parse(trRaw)
	if err != nil {
		t.Fatal(err)
	}
	evil := mitm("/api/v1/trusted_root.json", func([]byte) []byte {
		forged := *tr
		forged.Tlogs = append([]root.TransparencyLog{}, tr.Ctlogs...) // the CT key as log key
		b, _ := forged.Marshal()
		return b
	})
	_, stderr, code := runTrustCLI(t, "trust", "init", "--server", evil.URL, "--fingerprint", fp, "--dir", dir)
	if code == 0 || !strings.Contains(stderr, "fingerprint mismatch") {
		t.Fatalf("forged trusted root accepted: code %d\n%s", code, stderr)
	}

	// The genuine trusted root but a signing config that sends tokens and
	// signatures to another CA: refused.
	evil = mitm("/api/v1/signing_config.json", func(b []byte) []byte {
		return bytes.ReplaceAll(b, []byte(`"url": "`+srv.URL+`"`), []byte(`"url": "https://ca.evil.example"`))
	})
	_, stderr, code = runTrustCLI(t, "trust", "init", "--server", evil.URL, "--fingerprint", fp, "--dir", dir)
	if code == 0 || !strings.Contains(stderr, "ca.evil.example") || !strings.Contains(stderr, "not a certificate authority of the trusted root") {
		t.Fatalf("redirecting signing config accepted: code %d\n%s", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files installed despite the refusals: %v", ents)
	}
}

func TestTrustExport(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	trRaw, scRaw := servedTrust(t, srv)
	fp := root.Fingerprint(trRaw)

	online := filepath.Join(t.TempDir(), "online")
	stdout, stderr, code := runTrustCLI(t, "trust", "export", "--server", srv.URL, "--out-dir", online)
	if code != 0 {
		t.Fatalf("export --server: %s", stderr)
	}
	for _, want := range []string{fp, "hallmark trust init --server " + srv.URL + " --fingerprint " + fp,
		"export SIGSTORE_ROOT_FILE=" + filepath.Join(online, root.FulcioChainFile),
		"export SIGSTORE_REKOR_PUBLIC_KEY=" + filepath.Join(online, root.RekorKeyFile),
		"export SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + filepath.Join(online, root.CTLogKeyFile)} {
		if !strings.Contains(stdout, want) {
			t.Errorf("export output lacks %q:\n%s", want, stdout)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(line, "#") && !strings.HasPrefix(line, "export ") {
			t.Errorf("output line %q is not shell-evaluable", line)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(online, root.TrustedRootFile)); !bytes.Equal(got, trRaw) {
		t.Error("exported trusted root differs from the served one")
	}
	if got, _ := os.ReadFile(filepath.Join(online, root.SigningConfigFile)); !bytes.Equal(got, scRaw) {
		t.Error("exported signing config differs from the served one")
	}
	// The legacy files hold the CA chain (intermediate, self-signed root)
	// and the two log keys.
	chain, _ := os.ReadFile(filepath.Join(online, root.FulcioChainFile))
	var certs []*x509.Certificate
	for b, rest := pem.Decode(chain); b != nil; b, rest = pem.Decode(rest) {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || certs[0].CheckSignatureFrom(certs[1]) != nil || certs[1].CheckSignatureFrom(certs[1]) != nil {
		t.Errorf("fulcio chain: %d certificates, not intermediate then self-signed root", len(certs))
	}
	for _, f := range []string{root.RekorKeyFile, root.CTLogKeyFile} {
		raw, _ := os.ReadFile(filepath.Join(online, f))
		b, _ := pem.Decode(raw)
		if b == nil || b.Type != "PUBLIC KEY" {
			t.Errorf("%s is not a PEM public key", f)
		} else if _, err := x509.ParsePKIXPublicKey(b.Bytes); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}

	// Offline from the data dir: the same files.
	offline := filepath.Join(t.TempDir(), "offline")
	if _, stderr, code := runTrustCLI(t, "trust", "export", "--data-dir", srv.DataDir, "--out-dir", offline); code != 0 {
		t.Fatalf("export --data-dir: %s", stderr)
	}
	for _, f := range []string{root.TrustedRootFile, root.SigningConfigFile, root.FulcioChainFile, root.RekorKeyFile, root.CTLogKeyFile} {
		a, _ := os.ReadFile(filepath.Join(online, f))
		b, err := os.ReadFile(filepath.Join(offline, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between --server and --data-dir exports (%v)", f, err)
		}
	}

	// Refusals.
	if _, stderr, code := runTrustCLI(t, "trust", "export", "--data-dir", srv.DataDir, "--server", srv.URL); code == 0 || !strings.Contains(stderr, "not both") {
		t.Errorf("both sources: %d %s", code, stderr)
	}
	_, stderr, code = runTrustCLI(t, "trust", "export", "--data-dir", t.TempDir(), "--out-dir", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "has it run") {
		t.Errorf("empty data dir: %d %s", code, stderr)
	}
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot.v0.2+json"}`))
	}))
	defer bad.Close()
	_, stderr, code = runTrustCLI(t, "trust", "export", "--server", bad.URL, "--out-dir", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "media type") {
		t.Errorf("invalid trusted root exported: %d %s", code, stderr)
	}
}
