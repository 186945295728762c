package sign_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/sign"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "verify", "testdata", "keyless", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwt(header, claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + ".c2ln"
}

func TestTokenSubject(t *testing.T) {
	for _, tc := range []struct {
		claims, want, err string
	}{
		{`{"sub":"project_path:grp/app:ref_type:branch:ref:main"}`, "project_path:grp/app:ref_type:branch:ref:main", ""},
		{`{"sub":"u","email":"a@example.com","email_verified":true}`, "a@example.com", ""},
		{`{"sub":"u","email":"a@example.com","email_verified":"true"}`, "a@example.com", ""},
		{`{"sub":"u","email":"a@example.com"}`, "", "not verified by the identity provider"},
		{`{}`, "", "neither an email nor a sub"},
		{`[1]`, "", "not JSON"},
	} {
		got, err := sign.TokenSubject(jwt(`{"alg":"RS256"}`, tc.claims))
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q %v", tc.claims, got, err)
		}
	}
	if _, err := sign.TokenSubject("not-a-jwt"); err == nil {
		t.Error("not a JWT accepted")
	}
	if !sign.IsRS256JWT(jwt(`{"alg":"RS256","kid":"k"}`, `{}`)) || sign.IsRS256JWT(jwt(`{"alg":"ES256"}`, `{}`)) || sign.IsRS256JWT("/path/to/token") {
		t.Error("IsRS256JWT")
	}
	if sign.TokenIssuer(jwt(`{"alg":"RS256"}`, `{"iss":"https://gitlab.example"}`)) != "https://gitlab.example" {
		t.Error("TokenIssuer")
	}
}

// testCA is a small CA for the Fulcio client tests.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newTestCA(t *testing.T) *testCA {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{key: k, cert: c}
}

func (ca *testCA) issue(t *testing.T, pub any) []byte {
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, EmailAddresses: []string{"a@example.com"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
}

// TestFulcioClient: the v1 request is cosign's (bearer token, PEM public
// key, proof of possession over the token's subject) and bad answers are
// refused with the CA's message.
func TestFulcioClient(t *testing.T) {
	ca := newTestCA(t)
	token := jwt(`{"alg":"RS256"}`, `{"sub":"alice","iss":"https://issuer.example"}`)
	mode := "ok"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/signingCert" || r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "bad request line", http.StatusBadRequest)
			return
		}
		var req struct {
			PublicKey struct {
				Content []byte `json:"content"`
			} `json:"publicKey"`
			SignedEmailAddress []byte          `json:"signedEmailAddress"`
			CSR                json.RawMessage `json:"certificateSigningRequest"`
		}
		raw, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(raw, &req); err != nil || string(req.CSR) != "null" {
			http.Error(w, "body "+string(raw), http.StatusBadRequest)
			return
		}
		pub, err := verify.ParsePublicKey(req.PublicKey.Content)
		h := sha256.Sum256([]byte("alice"))
		if err != nil || !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), h[:], req.SignedEmailAddress) {
			http.Error(w, "proof of possession", http.StatusBadRequest)
			return
		}
		switch mode {
		case "ok":
			w.WriteHeader(http.StatusCreated)
			w.Write(ca.issue(t, pub))
		case "other key":
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			w.WriteHeader(http.StatusCreated)
			w.Write(ca.issue(t, &k.PublicKey))
		case "denied":
			http.Error(w, `{"code":401,"message":"token audience"}`, http.StatusUnauthorized)
		case "garbage":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte("not pem"))
		}
	}))
	defer srv.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f := &sign.Fulcio{URL: srv.URL}
	cc, err := f.SigningCert(context.Background(), token, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(cc.Chain) != 1 || !strings.HasPrefix(string(cc.ChainPEM), "-----BEGIN CERTIFICATE") || cc.Leaf.EmailAddresses[0] != "a@example.com" {
		t.Errorf("chain: %+v", cc)
	}
	// The chain checks against a trusted root: the test CA is not one of
	// a real root's, so keyless signing refuses it.
	m := &root.Material{CAs: []root.CA{{Roots: x509.NewCertPool()}}}
	if err := sign.CheckCertificate(cc, m, true); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Errorf("untrusted CA: %v", err)
	}
	m.CAs[0].Roots.AddCert(ca.cert)
	if err := sign.CheckCertificate(cc, m, true); err != nil {
		t.Errorf("trusted CA: %v", err)
	}
	if err := sign.CheckCertificate(cc, m, false); !errors.Is(err, verify.ErrSCT) {
		t.Errorf("no SCT: %v", err)
	}
	for m, want := range map[string]string{"other key": "certificate for another key", "denied": "401 Unauthorized", "garbage": "no PEM certificate"} {
		mode = m
		if _, err := f.SigningCert(context.Background(), token, key); err == nil || !errors.Is(err, sign.ErrCertificate) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", mode, err)
		}
	}
}

// TestTransparencyLogUpload: a real log answer (captured) is accepted only
// for the signature it logs and with the trusted log key; a 409 fetches the
// existing entry; errors carry the log's message.
func TestTransparencyLogUpload(t *testing.T) {
	answer := testdata(t, "rekor-entry-1.json")
	status := http.StatusCreated
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/log/entries":
			if status == http.StatusConflict {
				w.Header().Set("Location", "/api/v1/log/entries/abc")
			}
			w.WriteHeader(status)
			if status == http.StatusCreated {
				w.Write(answer)
			} else {
				w.Write([]byte(`{"code":` + http.StatusText(status) + `}`))
			}
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/log/entries/abc":
			w.Write(answer)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	tr, err := root.Parse(testdata(t, "trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := tr.Material()
	var manifest struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	json.Unmarshal(testdata(t, "cosign2-signature.manifest.json"), &manifest)
	ann := manifest.Layers[len(manifest.Layers)-1].Annotations
	sig, _ := base64.StdEncoding.DecodeString(ann["dev.cosignproject.cosign/signature"])
	leaf, _ := verify.ParseCertificatePEM([]byte(ann["dev.sigstore.cosign/certificate"]))
	h := sha256.Sum256(testdata(t, "cosign2-signature.payload.json"))

	log := &sign.TransparencyLog{URL: srv.URL, Keys: m.TlogKeys}
	e, err := log.Upload(context.Background(), []byte(`{}`), h[:], sig, leaf.Raw)
	if err != nil || e.LogIndex != 1 || e.Proof == nil {
		t.Fatalf("upload: %v %+v", err, e)
	}
	if _, err := log.Upload(context.Background(), []byte(`{}`), make([]byte, 32), sig, leaf.Raw); !errors.Is(err, rekor.ErrEntryMismatch) {
		t.Errorf("entry for another payload: %v", err)
	}
	other := &sign.TransparencyLog{URL: srv.URL, Keys: nil}
	if _, err := other.Upload(context.Background(), []byte(`{}`), h[:], sig, leaf.Raw); !errors.Is(err, verify.ErrUnknownLog) {
		t.Errorf("untrusted log: %v", err)
	}
	status = http.StatusConflict
	if _, err := log.Upload(context.Background(), []byte(`{}`), h[:], sig, leaf.Raw); err != nil {
		t.Errorf("409: %v", err)
	}
	status = http.StatusBadRequest
	if _, err := log.Upload(context.Background(), []byte(`{}`), h[:], sig, leaf.Raw); !errors.Is(err, sign.ErrLogUpload) || !strings.Contains(err.Error(), "400 Bad Request") {
		t.Errorf("400: %v", err)
	}
}

func FuzzParseCertificateChain(f *testing.F) {
	var m struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	json.Unmarshal(testdata(f, "cosign2-signature.manifest.json"), &m)
	ann := m.Layers[len(m.Layers)-1].Annotations
	f.Add([]byte(ann["dev.sigstore.cosign/certificate"] + ann["dev.sigstore.cosign/chain"]))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cc, err := sign.ParseCertificateChain(b)
		if err == nil && (cc.Leaf == nil || len(cc.LeafPEM) == 0) {
			t.Fatal("no leaf without error")
		}
	})
}

func FuzzTokenSubject(f *testing.F) {
	f.Add(jwt(`{"alg":"RS256"}`, `{"sub":"x","email":"a@b","email_verified":true}`))
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		sign.TokenSubject(s)
		sign.IsRS256JWT(s)
		sign.TokenIssuer(s)
	})
}
