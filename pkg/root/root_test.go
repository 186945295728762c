package root_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sgroot "github.com/sigstore/sigstore-go/pkg/root"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// fixture is a CA chain (intermediate, root) and two log keys.
type fixture struct {
	chain      []*x509.Certificate
	tlogKey    crypto.PublicKey
	ctKey      crypto.PublicKey
	start      time.Time
	baseURL    string
	trustedRaw []byte
	tr         *root.TrustedRoot
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	now := time.Now().Add(-time.Hour)
	rootKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	interKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	mk := func(cn string, pub crypto.PublicKey, parent *x509.Certificate, signer crypto.Signer) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()),
			Subject:   pkix.Name{Organization: []string{"Example"}, CommonName: cn},
			NotBefore: now, NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	r := mk("Example root", rootKey.Public(), nil, rootKey)
	i := mk("Example intermediate", interKey.Public(), r, rootKey)
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ck, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &fixture{chain: []*x509.Certificate{i, r}, tlogKey: tk.Public(), ctKey: ck.Public(), start: now, baseURL: "http://127.0.0.1:5000"}
	tl, err := root.NewLog(f.baseURL, f.tlogKey, now)
	if err != nil {
		t.Fatal(err)
	}
	ct, err := root.NewLog(f.baseURL, f.ctKey, now)
	if err != nil {
		t.Fatal(err)
	}
	f.tr = &root.TrustedRoot{MediaType: root.TrustedRootMediaType, Tlogs: []root.TransparencyLog{tl},
		CertificateAuthorities: []root.CertificateAuthority{root.NewCA(f.baseURL, f.chain, now)}, Ctlogs: []root.TransparencyLog{ct}}
	if f.trustedRaw, err = f.tr.Marshal(); err != nil {
		t.Fatal(err)
	}
	return f
}

func logID(pub crypto.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	d := sha256.Sum256(der)
	return hex.EncodeToString(d[:])
}

// TestTrustedRootAcceptedBySigstoreGo: what Marshal writes is what
// sigstore-go's own parser accepts, with the logs keyed by the log IDs
// clients compute, the chain root last and the validity start kept.
func TestTrustedRootAcceptedBySigstoreGo(t *testing.T) {
	f := newFixture(t)
	sg, err := sgroot.NewTrustedRootFromJSON(f.trustedRaw)
	if err != nil {
		t.Fatalf("sigstore-go rejects the trusted root: %v\n%s", err, f.trustedRaw)
	}
	tl, ok := sg.RekorLogs()[logID(f.tlogKey)]
	if !ok {
		t.Fatalf("sigstore-go does not find the tlog under its key id; has %v", sg.RekorLogs())
	}
	if tl.BaseURL != f.baseURL || !tl.ValidityPeriodStart.Equal(f.start.Truncate(time.Second)) {
		t.Errorf("tlog %s valid from %v", tl.BaseURL, tl.ValidityPeriodStart)
	}
	if _, ok := sg.CTLogs()[logID(f.ctKey)]; !ok {
		t.Fatal("sigstore-go does not find the CT log under its key id")
	}
	cas := sg.FulcioCertificateAuthorities()
	if len(cas) != 1 {
		t.Fatalf("%d CAs", len(cas))
	}
	fca := cas[0].(*sgroot.FulcioCertificateAuthority)
	if !fca.Root.Equal(f.chain[1]) || len(fca.Intermediates) != 1 || !fca.Intermediates[0].Equal(f.chain[0]) || fca.URI != f.baseURL {
		t.Errorf("CA parsed as root %s, %d intermediates, uri %s", fca.Root.Subject, len(fca.Intermediates), fca.URI)
	}
	// Our own parser agrees and the encoding is stable.
	back, err := root.Parse(f.trustedRaw)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.Marshal()
	if !bytes.Equal(again, f.trustedRaw) {
		t.Errorf("re-encoding changed the bytes:\n%s\n%s", f.trustedRaw, again)
	}
	m, err := back.Material()
	if err != nil || m.TlogKeys[logID(f.tlogKey)].Key == nil || m.CTLogKeys[logID(f.ctKey)].Key == nil || len(m.CAs) != 1 {
		t.Fatalf("material: %v", err)
	}
	if _, err := f.chain[0].Verify(x509.VerifyOptions{Roots: m.CAs[0].Roots}); err != nil {
		t.Errorf("intermediate does not verify against the material's roots: %v", err)
	}
}

// TestPublicTrustMaterialParses: sigstore's public-good trusted root and
// staging signing config (real files) parse.
func TestPublicTrustMaterialParses(t *testing.T) {
	tr, err := root.Load(filepath.Join("testdata", "public-trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Tlogs) == 0 || len(tr.CertificateAuthorities) == 0 || len(tr.Ctlogs) == 0 || len(tr.TimestampAuthorities) == 0 {
		t.Errorf("public trusted root parsed incompletely: %d tlogs %d CAs %d ctlogs %d TSAs",
			len(tr.Tlogs), len(tr.CertificateAuthorities), len(tr.Ctlogs), len(tr.TimestampAuthorities))
	}
	sc, err := root.LoadSigningConfig(filepath.Join("testdata", "public-signing_config.v0.2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.CAURLs) == 0 || sc.CAURLs[0].MajorAPIVersion != 1 || sc.RekorTlogConfig.Selector != root.SelectorAny {
		t.Errorf("public signing config parsed as %+v", sc)
	}
	// The public signing config points at staging, the public root at
	// production: CheckAgainst notices.
	if err := sc.CheckAgainst(tr); !errors.Is(err, root.ErrInvalid) {
		t.Errorf("staging signing config checked against the production root: %v", err)
	}
}

// TestSigningConfigAcceptedBySigstoreGo: the signing config for one
// Hallmark server is accepted by sigstore-go, which selects the server as
// Fulcio (API 1) and Rekor v1.
func TestSigningConfigAcceptedBySigstoreGo(t *testing.T) {
	f := newFixture(t)
	sc := root.NewSigningConfig(f.baseURL, "127.0.0.1:5000", f.start)
	raw, err := sc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sg, err := sgroot.NewSigningConfigFromJSON(raw)
	if err != nil {
		t.Fatalf("sigstore-go rejects the signing config: %v\n%s", err, raw)
	}
	now := time.Now()
	ca, err := sgroot.SelectService(sg.FulcioCertificateAuthorityURLs(), []uint32{1}, now)
	if err != nil || ca.URL != f.baseURL {
		t.Errorf("CA selection: %v %+v", err, ca)
	}
	logs, err := sgroot.SelectServices(sg.RekorLogURLs(), sg.RekorLogURLsConfig(), []uint32{1, 2}, now)
	if err != nil || len(logs) != 1 || logs[0].URL != f.baseURL || logs[0].MajorAPIVersion != 1 {
		t.Errorf("log selection: %v %+v", err, logs)
	}
	back, err := root.ParseSigningConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := back.CheckAgainst(f.tr); err != nil {
		t.Errorf("signing config for the fixture's server does not match its trusted root: %v", err)
	}
	other := root.NewSigningConfig("https://evil.example", "evil", f.start)
	if err := other.CheckAgainst(f.tr); !errors.Is(err, root.ErrInvalid) || !strings.Contains(err.Error(), "evil.example") {
		t.Errorf("signing config naming another CA passed the check: %v", err)
	}
}

// mutate decodes the fixture's trusted root into generic JSON, applies fn
// and re-encodes it.
func mutate(t *testing.T, raw []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, _ := json.Marshal(m)
	return b
}

func first(m map[string]any, key string) map[string]any {
	return m[key].([]any)[0].(map[string]any)
}

// TestParseRejectsMalformed: every rule sigstore-go enforces is enforced
// with a message naming the problem.
func TestParseRejectsMalformed(t *testing.T) {
	f := newFixture(t)
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKIXPublicKey(otherKey.Public())
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"not JSON", []byte("{"), "not valid"},
		{"empty", nil, "not valid"},
		{"array", []byte("[]"), "not valid"},
		{"trailing data", append(append([]byte{}, f.trustedRaw...), []byte("{}")...), "after the JSON"},
		{"v0.2 media type", mutate(t, f.trustedRaw, func(m map[string]any) {
			m["mediaType"] = "application/vnd.dev.sigstore.trustedroot.v0.2+json"
		}), "media type"},
		{"unknown field", mutate(t, f.trustedRaw, func(m map[string]any) { m["tlog"] = []any{} }), "unknown field"},
		{"hash algorithm", mutate(t, f.trustedRaw, func(m map[string]any) { first(m, "tlogs")["hashAlgorithm"] = "SHA2_384" }), "hash algorithm"},
		{"log id of another key", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "tlogs")["publicKey"].(map[string]any)["rawBytes"] = otherDER
		}), "logId"},
		{"garbage key", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "ctlogs")["publicKey"].(map[string]any)["rawBytes"] = []byte("not a key")
		}), "public key"},
		{"no key", mutate(t, f.trustedRaw, func(m map[string]any) { delete(first(m, "tlogs"), "publicKey") }), "no public key"},
		{"key details", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "tlogs")["publicKey"].(map[string]any)["keyDetails"] = "PKIX_ED25519"
		}), "keyDetails"},
		{"no validity start", mutate(t, f.trustedRaw, func(m map[string]any) {
			delete(first(m, "tlogs")["publicKey"].(map[string]any), "validFor")
		}), "validFor.start"},
		{"bad time", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "tlogs")["publicKey"].(map[string]any)["validFor"] = map[string]any{"start": "yesterday"}
		}), "not valid"},
		{"end before start", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "certificateAuthorities")["validFor"] = map[string]any{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
		}), "validFor.end"},
		{"empty chain", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "certificateAuthorities")["certChain"] = map[string]any{"certificates": []any{}}
		}), "no certificates"},
		{"garbage certificate", mutate(t, f.trustedRaw, func(m map[string]any) {
			first(m, "certificateAuthorities")["certChain"] = map[string]any{"certificates": []any{map[string]any{"rawBytes": []byte("junk")}}}
		}), "certificate 0"},
		{"nothing trusted", mutate(t, f.trustedRaw, func(m map[string]any) {
			m["tlogs"], m["certificateAuthorities"] = []any{}, []any{}
		}), "neither"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := root.Parse(c.raw)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.raw)
			}
			if !errors.Is(err, root.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not wrap ErrInvalid or mention %q", err, c.want)
			}
		})
	}
}

func TestParseSigningConfigRejectsMalformed(t *testing.T) {
	good, _ := root.NewSigningConfig("http://127.0.0.1:5000", "op", time.Now()).Marshal()
	m := func(fn func(m map[string]any)) []byte { return mutate(t, good, fn) }
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"not JSON", []byte("nope"), "not valid"},
		{"v0.1 media type", m(func(m map[string]any) { m["mediaType"] = "application/vnd.dev.sigstore.signingconfig.v0.1+json" }), "media type"},
		{"relative url", m(func(m map[string]any) { first(m, "caUrls")["url"] = "/api" }), "absolute"},
		{"ftp url", m(func(m map[string]any) { first(m, "rekorTlogUrls")["url"] = "ftp://x" }), "absolute"},
		{"api version 0", m(func(m map[string]any) { first(m, "caUrls")["majorApiVersion"] = 0 }), "majorApiVersion"},
		{"selector", m(func(m map[string]any) { m["rekorTlogConfig"] = map[string]any{"selector": "SOME"} }), "selector"},
		{"exact without count", m(func(m map[string]any) { m["tsaConfig"] = map[string]any{"selector": "EXACT"} }), "count"},
		{"unknown field", m(func(m map[string]any) { m["fulcioUrls"] = []any{} }), "unknown field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := root.ParseSigningConfig(c.raw); err == nil || !errors.Is(err, root.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an ErrInvalid mentioning %q", err, c.want)
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	f := newFixture(t)
	sum := sha256.Sum256(f.trustedRaw)
	fp := root.Fingerprint(f.trustedRaw)
	if fp != hex.EncodeToString(sum[:]) {
		t.Fatalf("fingerprint %s", fp)
	}
	upper := strings.ToUpper(fp)
	var colons []string
	for i := 0; i < len(upper); i += 2 {
		colons = append(colons, upper[i:i+2])
	}
	for _, pin := range []string{fp, upper, "sha256:" + fp, "SHA256:" + upper, strings.Join(colons, ":"), "  " + fp + "\n"} {
		if err := root.CheckFingerprint(f.trustedRaw, pin); err != nil {
			t.Errorf("pin %q: %v", pin, err)
		}
	}
	other := strings.Repeat("ab", 32)
	err := root.CheckFingerprint(f.trustedRaw, other)
	if !errors.Is(err, root.ErrFingerprintMismatch) || !strings.Contains(err.Error(), fp) || !strings.Contains(err.Error(), other) {
		t.Errorf("mismatch: %v", err)
	}
	tampered := bytes.Replace(f.trustedRaw, []byte("127.0.0.1"), []byte("127.0.0.2"), 1)
	if err := root.CheckFingerprint(tampered, fp); !errors.Is(err, root.ErrFingerprintMismatch) {
		t.Errorf("tampered trusted root passed the pin: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), fp[:62], fp + "00"} {
		if _, err := root.NormalizeFingerprint(bad); err == nil {
			t.Errorf("fingerprint %q accepted", bad)
		}
	}
}

func TestLegacyFiles(t *testing.T) {
	f := newFixture(t)
	l := f.tr.Legacy()
	var certs []*x509.Certificate
	rest := l.FulcioChain
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 || !certs[0].Equal(f.chain[0]) || !certs[1].Equal(f.chain[1]) {
		t.Errorf("chain PEM holds %d certificates", len(certs))
	}
	for name, pair := range map[string]struct {
		pemBytes []byte
		want     crypto.PublicKey
	}{"rekor": {l.RekorKey, f.tlogKey}, "ctlog": {l.CTLogKey, f.ctKey}} {
		b, _ := pem.Decode(pair.pemBytes)
		if b == nil || b.Type != "PUBLIC KEY" {
			t.Fatalf("%s: no PEM public key", name)
		}
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil || !k.(*ecdsa.PublicKey).Equal(pair.want) {
			t.Errorf("%s key: %v", name, err)
		}
	}
}

func TestDefaultPaths(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(root.EnvTrustDir, dir)
	p, err := root.DefaultTrustedRootPath()
	if err != nil || p != filepath.Join(dir, "trusted_root.json") {
		t.Errorf("trusted root path %s %v", p, err)
	}
	p, err = root.DefaultSigningConfigPath()
	if err != nil || p != filepath.Join(dir, "signing_config.json") {
		t.Errorf("signing config path %s %v", p, err)
	}
	_, err = root.Load(filepath.Join(dir, "trusted_root.json"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "hallmark trust init") {
		t.Errorf("missing default trusted root: %v", err)
	}
	t.Setenv(root.EnvTrustDir, "")
	home := t.TempDir()
	t.Setenv("HOME", home)
	if d, err := root.DefaultDir(); err != nil || d != filepath.Join(home, ".hallmark") {
		t.Errorf("default dir %s %v", d, err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f.json")
	for _, content := range []string{"one", "two", "two"} {
		if err := root.WriteFileAtomic(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != content {
			t.Errorf("got %q want %q", got, content)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", fi.Mode())
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	big := filepath.Join(t.TempDir(), "trusted_root.json")
	os.WriteFile(big, bytes.Repeat([]byte(" "), root.MaxFileSize+1), 0o644)
	if _, err := root.Load(big); !errors.Is(err, root.ErrInvalid) {
		t.Errorf("oversized file: %v", err)
	}
}
