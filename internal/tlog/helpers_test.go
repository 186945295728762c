package tlog_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/tlog"
)

func openStore(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: path})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func tlogStore(tb testing.TB, st *sqlite.Store) *sqlite.TlogStore {
	tb.Helper()
	ts, err := st.TransparencyLog(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return ts
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// testLog is a Log on a fresh SQLite file.
type testLog struct {
	*tlog.Log
	key   *ecdsa.PrivateKey
	store *sqlite.TlogStore
	path  string
}

func newTestLog(tb testing.TB, cfg tlog.Config) *testLog {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "hallmark.db")
	return openTestLog(tb, path, newKey(tb), cfg)
}

func openTestLog(tb testing.TB, path string, key *ecdsa.PrivateKey, cfg tlog.Config) *testLog {
	tb.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "rekor.test"
	}
	ts := tlogStore(tb, openStore(tb, path))
	l, err := tlog.New(context.Background(), ts, key, nil, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &testLog{Log: l, key: key, store: ts, path: path}
}

func pubPEM(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// selfSignedCert returns a PEM certificate for signer's key, issued by
// parent (self-signed when parent is nil).
func makeCert(tb testing.TB, signer crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, isCA bool) (*x509.Certificate, []byte) {
	tb.Helper()
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: fmt.Sprintf("test-%d", serial)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		BasicConstraintsValid: true, IsCA: isCA,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, signer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, signer.Public(), parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// signDigest signs an artifact as hashedrekord clients do and returns the
// algorithm name, the digest and the signature.
func signDigest(tb testing.TB, k crypto.Signer, artifact []byte) (string, []byte, []byte) {
	tb.Helper()
	var alg string
	var h crypto.Hash
	var digest []byte
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P384():
			d := sha512.Sum384(artifact)
			alg, h, digest = "sha384", crypto.SHA384, d[:]
		case elliptic.P521():
			d := sha512.Sum512(artifact)
			alg, h, digest = "sha512", crypto.SHA512, d[:]
		default:
			d := sha256.Sum256(artifact)
			alg, h, digest = "sha256", crypto.SHA256, d[:]
		}
	case *rsa.PrivateKey:
		d := sha256.Sum256(artifact)
		alg, h, digest = "sha256", crypto.SHA256, d[:]
	case ed25519.PrivateKey:
		d := sha512.Sum512(artifact)
		sig, err := k.Sign(rand.Reader, d[:], &ed25519.Options{Hash: crypto.SHA512})
		if err != nil {
			tb.Fatal(err)
		}
		return "sha512", d[:], sig
	}
	sig, err := k.Sign(rand.Reader, digest, h)
	if err != nil {
		tb.Fatal(err)
	}
	return alg, digest, sig
}

// hashedRekord builds a proposed hashedrekord entry as cosign sends it.
func hashedRekord(alg string, digest, sig, keyPEM []byte) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"0.0.1","spec":{"data":{"hash":{"algorithm":%q,"value":%q}},"signature":{"content":%q,"publicKey":{"content":%q}}},"kind":"hashedrekord"}`,
		alg, hex.EncodeToString(digest), base64.StdEncoding.EncodeToString(sig), base64.StdEncoding.EncodeToString(keyPEM)))
}

// signedEntry is a fresh valid hashedrekord entry by key k over artifact.
func signedEntry(tb testing.TB, k *ecdsa.PrivateKey, artifact []byte) []byte {
	tb.Helper()
	alg, d, sig := signDigest(tb, k, artifact)
	return hashedRekord(alg, d, sig, pubPEM(tb, k.Public()))
}

type testEnvelope struct {
	PayloadType string         `json:"payloadType"`
	Payload     string         `json:"payload"`
	Signatures  []testSigEntry `json:"signatures"`
}

type testSigEntry struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

func pae(typ string, payload []byte) []byte {
	return []byte(fmt.Sprintf("DSSEv1 %d %s %d %s", len(typ), typ, len(payload), payload))
}

// signEnvelope returns a DSSE envelope JSON signed by each key.
func signEnvelope(tb testing.TB, payload []byte, keys ...crypto.Signer) string {
	tb.Helper()
	const typ = "application/vnd.in-toto+json"
	env := testEnvelope{PayloadType: typ, Payload: base64.StdEncoding.EncodeToString(payload)}
	m := pae(typ, payload)
	for _, k := range keys {
		var sig []byte
		var err error
		switch k := k.(type) {
		case ed25519.PrivateKey:
			sig = ed25519.Sign(k, m)
		default:
			d := sha256.Sum256(m)
			sig, err = k.Sign(rand.Reader, d[:], crypto.SHA256)
		}
		if err != nil {
			tb.Fatal(err)
		}
		env.Signatures = append(env.Signatures, testSigEntry{Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	b, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// dsseEntry builds a proposed dsse entry as Rekor's Go client sends it
// (with "signatures":null).
func dsseEntry(envelope string, verifiers ...[]byte) []byte {
	vs := make([]string, len(verifiers))
	for i, v := range verifiers {
		vs[i] = base64.StdEncoding.EncodeToString(v)
	}
	spec := map[string]any{"proposedContent": map[string]any{"envelope": envelope, "verifiers": vs}, "signatures": nil}
	b, _ := json.Marshal(map[string]any{"apiVersion": "0.0.1", "kind": "dsse", "spec": spec})
	return b
}

func mustEd25519(tb testing.TB) (ed25519.PublicKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return pub, priv
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func httptestServer(tb testing.TB, h http.Handler) string {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv.URL
}
