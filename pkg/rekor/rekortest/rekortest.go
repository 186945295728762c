package rekortest

import (
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
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// NewKey is a fresh ECDSA P-256 key.
func NewKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// PublicKeyPEM encodes pub as a PEM "PUBLIC KEY".
func PublicKeyPEM(tb testing.TB, pub crypto.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Cert returns a code-signing certificate (and its PEM) for signer's key,
// valid from an hour ago for two hours, issued by parent (self-signed when
// parent is nil).
func Cert(tb testing.TB, signer crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer, isCA bool) (*x509.Certificate, []byte) {
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

// SignDigest signs an artifact as hashedrekord clients do for k's key type
// and returns the algorithm name, the digest and the signature.
func SignDigest(tb testing.TB, k crypto.Signer, artifact []byte) (string, []byte, []byte) {
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

// HashedRekord is the proposed hashedrekord entry cosign sends (any bytes
// are taken, so tests can propose malformed entries).
func HashedRekord(alg string, digest, sig, keyPEM []byte) []byte {
	b, err := rekor.NewHashedRekord(rekor.Hash{Algorithm: alg, Value: hex.EncodeToString(digest)}, sig, keyPEM)
	if err != nil {
		panic(err) // marshalling strings and bytes cannot fail
	}
	return b
}

// SignedEntry is a fresh valid hashedrekord entry by key k over artifact.
func SignedEntry(tb testing.TB, k *ecdsa.PrivateKey, artifact []byte) []byte {
	tb.Helper()
	alg, d, sig := SignDigest(tb, k, artifact)
	return HashedRekord(alg, d, sig, PublicKeyPEM(tb, k.Public()))
}

// SignEnvelope returns an in-toto DSSE envelope (JSON) over payload, signed
// by each key as Rekor's dsse type verifies them: ECDSA and RSA over the
// SHA-256 of the PAE, pure Ed25519.
func SignEnvelope(tb testing.TB, body []byte, keys ...crypto.Signer) string {
	tb.Helper()
	env := payload.NewEnvelope(payload.InTotoPayloadType, body)
	m := payload.PAE(payload.InTotoPayloadType, body)
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
		env.AddSignature("", sig)
	}
	b, err := json.Marshal(env)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// DSSEEntry is a proposed dsse entry as Rekor's Go client sends it (with
// "signatures":null).
func DSSEEntry(envelope string, verifiers ...[]byte) []byte {
	vs := make([]string, len(verifiers))
	for i, v := range verifiers {
		vs[i] = base64.StdEncoding.EncodeToString(v)
	}
	spec := map[string]any{"proposedContent": map[string]any{"envelope": envelope, "verifiers": vs}, "signatures": nil}
	b, _ := json.Marshal(map[string]any{"apiVersion": rekor.APIVersion, "kind": rekor.KindDSSE, "spec": spec})
	return b
}
