package sign

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
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testPassword = "hallmark-test" // password of testdata/cosign-v2.6.5.key

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// verifyBlob checks a cosign-style signature: ECDSA/RSA over SHA-256 of
// the data, Ed25519 over the data.
func verifyBlob(t *testing.T, pub crypto.PublicKey, data, sig []byte) bool {
	t.Helper()
	h := sha256.Sum256(data)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, h[:], sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil
	case ed25519.PublicKey:
		return ed25519.Verify(k, data, sig)
	}
	t.Fatalf("unexpected key type %T", pub)
	return false
}

type publicKeyEqualer interface{ Equal(crypto.PublicKey) bool }

func TestGenerateKeyPair(t *testing.T) {
	privPEM, pubPEM, err := GenerateKeyPair([]byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	block, rest := pem.Decode(privPEM)
	if block == nil || block.Type != SigstorePrivateKeyPEMType || len(rest) != 0 {
		t.Fatalf("private key PEM = %q", privPEM)
	}
	// The body must be go-securesystemslib's JSON, field for field, with
	// the parameters cosign v2.6.5 writes.
	var body struct {
		KDF struct {
			Name   string         `json:"name"`
			Params map[string]int `json:"params"`
			Salt   []byte         `json:"salt"`
		} `json:"kdf"`
		Cipher struct {
			Name  string `json:"name"`
			Nonce []byte `json:"nonce"`
		} `json:"cipher"`
		Ciphertext []byte `json:"ciphertext"`
	}
	if err := json.Unmarshal(block.Bytes, &body); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(block.Bytes, []byte(`{"kdf":{"name":"scrypt","params":{"N":65536,"r":8,"p":1},"salt":"`)) ||
		!bytes.Contains(block.Bytes, []byte(`"},"cipher":{"name":"nacl/secretbox","nonce":"`)) ||
		!bytes.Contains(block.Bytes, []byte(`"},"ciphertext":"`)) {
		t.Errorf("body layout differs from cosign's: %s", block.Bytes)
	}
	if len(body.KDF.Salt) != 32 || len(body.Cipher.Nonce) != 24 {
		t.Errorf("salt %d bytes, nonce %d bytes; want 32 and 24", len(body.KDF.Salt), len(body.Cipher.Nonce))
	}
	if pb, _ := pem.Decode(pubPEM); pb == nil || pb.Type != PublicKeyPEMType {
		t.Fatalf("public key PEM = %q", pubPEM)
	}

	key, err := LoadPrivateKey(privPEM, []byte("s3cret"))
	if err != nil {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", key)
	}
	pub, err := LoadPublicKey(pubPEM)
	if err != nil {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	if !pub.(publicKeyEqualer).Equal(key.Public()) {
		t.Errorf("public key file does not match the private key")
	}
	for _, pw := range []string{"", "s3cre", "s3cret "} {
		if _, err := LoadPrivateKey(privPEM, []byte(pw)); !errors.Is(err, ErrWrongPassword) {
			t.Errorf("password %q: error = %v, want ErrWrongPassword", pw, err)
		}
	}
}

func TestGenerateKeyPairEmptyPassword(t *testing.T) {
	privPEM, _, err := GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(privPEM, []byte{}); err != nil {
		t.Errorf("empty password: %v", err)
	}
	if _, err := LoadPrivateKey(privPEM, []byte("x")); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("error = %v, want ErrWrongPassword", err)
	}
}

// TestCosignGeneratedKey loads a key pair written by cosign v2.6.5
// generate-key-pair and checks a signature cosign sign-blob made with it.
func TestCosignGeneratedKey(t *testing.T) {
	key, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte(testPassword))
	if err != nil {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	pub, err := LoadPublicKey(readTestdata(t, "cosign-v2.6.5.pub"))
	if err != nil {
		t.Fatalf("LoadPublicKey: %v", err)
	}
	if !pub.(publicKeyEqualer).Equal(key.Public()) {
		t.Fatalf("cosign.pub does not match cosign.key")
	}
	blob := readTestdata(t, "blob.txt")
	sig, err := base64.StdEncoding.DecodeString(string(readTestdata(t, "cosign-v2.6.5.sig")))
	if err != nil {
		t.Fatal(err)
	}
	if !verifyBlob(t, pub, blob, sig) {
		t.Errorf("cosign's signature does not verify with the loaded public key")
	}
	ours, err := SignBytes(key, blob)
	if err != nil {
		t.Fatal(err)
	}
	if !verifyBlob(t, pub, blob, ours) {
		t.Errorf("our signature with cosign's key does not verify")
	}
	if _, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte("wrong")); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("wrong password: error = %v, want ErrWrongPassword", err)
	}
}

// relabel returns pemBytes with its (first) block type replaced.
func relabel(t *testing.T, pemBytes []byte, typ string) []byte {
	t.Helper()
	b, _ := pem.Decode(pemBytes)
	b.Type = typ
	return pem.EncodeToMemory(b)
}

func TestLoadPrivateKeyFormats(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	legacy, err := encryptPrivateKey(ecKey, []byte("pw"), 1<<15)
	if err != nil {
		t.Fatal(err)
	}
	owasp, err := encryptPrivateKey(ecKey, []byte("pw"), 1<<17)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edEncrypted, err := EncryptPrivateKey(edKey, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		pem      []byte
		password string
		wantType string
	}{
		{"cosign v2.6.5 generate-key-pair", readTestdata(t, "cosign-v2.6.5.key"), testPassword, "*ecdsa.PrivateKey"},
		{"older cosign PEM type", relabel(t, readTestdata(t, "cosign-v2.6.5.key"), CosignPrivateKeyPEMType), testPassword, "*ecdsa.PrivateKey"},
		{"scrypt N=2^15 (legacy)", legacy, "pw", "*ecdsa.PrivateKey"},
		{"scrypt N=2^17 (OWASP)", owasp, "pw", "*ecdsa.PrivateKey"},
		{"encrypted Ed25519", edEncrypted, "pw", "ed25519.PrivateKey"},
		{"openssl EC PARAMETERS + EC PRIVATE KEY", readTestdata(t, "ec-sec1-with-params.pem"), "ignored", "*ecdsa.PrivateKey"},
		{"openssl PKCS #8 EC", readTestdata(t, "ec-pkcs8.pem"), "", "*ecdsa.PrivateKey"},
		{"openssl PKCS #8 Ed25519", readTestdata(t, "ed25519-pkcs8.pem"), "", "ed25519.PrivateKey"},
		{"openssl PKCS #1 RSA", readTestdata(t, "rsa-pkcs1.pem"), "", "*rsa.PrivateKey"},
		{"text before the PEM block", append([]byte("comment line\n"), readTestdata(t, "ec-pkcs8.pem")...), "", "*ecdsa.PrivateKey"},
	}
	blob := []byte("payload")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := LoadPrivateKey(tc.pem, []byte(tc.password))
			if err != nil {
				t.Fatalf("LoadPrivateKey: %v", err)
			}
			if got := typeName(key); got != tc.wantType {
				t.Errorf("key type %s, want %s", got, tc.wantType)
			}
			sig, err := SignBytes(key, blob)
			if err != nil {
				t.Fatal(err)
			}
			if !verifyBlob(t, key.Public(), blob, sig) {
				t.Errorf("signature does not verify")
			}
		})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case *ecdsa.PrivateKey:
		return "*ecdsa.PrivateKey"
	case *rsa.PrivateKey:
		return "*rsa.PrivateKey"
	case ed25519.PrivateKey:
		return "ed25519.PrivateKey"
	}
	return "other"
}

// encryptedPEM builds an encrypted key file around an arbitrary body.
func encryptedPEM(body []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: body})
}

// mutateBody decodes a legacy-N encrypted key body, applies f and re-encodes it.
func mutateBody(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p, err := encryptPrivateKey(key, []byte("pw"), 1<<15)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(p)
	var m map[string]any
	if err := json.Unmarshal(block.Bytes, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, _ := json.Marshal(m)
	return encryptedPEM(b)
}

func TestLoadPrivateKeyErrors(t *testing.T) {
	notPKCS8, err := sealKeyBody([]byte("not a key"), []byte("pw"), 1<<15)
	if err != nil {
		t.Fatal(err)
	}
	rsaSmall, _ := rsa.GenerateKey(rand.Reader, 1024)
	rsaSmallDER := x509.MarshalPKCS1PrivateKey(rsaSmall)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalECPrivateKey(p224)
	kdf := func(m map[string]any) map[string]any { return m["kdf"].(map[string]any) }
	tests := []struct {
		name string
		pem  []byte
		want error
		text string // substring of the error
	}{
		{"empty", nil, ErrInvalidKey, "no PEM-encoded private key"},
		{"garbage", []byte("this is not a key"), ErrInvalidKey, "no PEM-encoded private key"},
		{"only EC PARAMETERS", []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), ErrInvalidKey, "no PEM-encoded"},
		{"public key", readTestdata(t, "cosign-v2.6.5.pub"), ErrInvalidKey, `"PUBLIC KEY" is not a private key`},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), ErrInvalidKey, "not a private key"},
		{"encrypted body not JSON", encryptedPEM([]byte("{oops")), ErrInvalidKey, "not the expected JSON"},
		{"encrypted body empty", encryptedPEM(nil), ErrInvalidKey, "not the expected JSON"},
		{"unknown KDF", mutateBody(t, func(m map[string]any) { kdf(m)["name"] = "pbkdf2" }), ErrInvalidKey, `key derivation "pbkdf2"`},
		{"unknown cipher", mutateBody(t, func(m map[string]any) { m["cipher"].(map[string]any)["name"] = "aes" }), ErrInvalidKey, `cipher "aes"`},
		{"huge scrypt N refused", mutateBody(t, func(m map[string]any) { kdf(m)["params"].(map[string]any)["N"] = 1 << 30 }), ErrInvalidKey, "N=1073741824"},
		{"scrypt r changed", mutateBody(t, func(m map[string]any) { kdf(m)["params"].(map[string]any)["r"] = 1 }), ErrInvalidKey, "r=1"},
		{"short nonce", mutateBody(t, func(m map[string]any) { m["cipher"].(map[string]any)["nonce"] = "AAAA" }), ErrInvalidKey, "nonce is 3 bytes"},
		{"short ciphertext", mutateBody(t, func(m map[string]any) { m["ciphertext"] = "AAAA" }), ErrInvalidKey, "too short"},
		{"ciphertext not base64", mutateBody(t, func(m map[string]any) { m["ciphertext"] = "!!" }), ErrInvalidKey, "JSON"},
		{"tampered ciphertext", mutateBody(t, func(m map[string]any) {
			ct, _ := base64.StdEncoding.DecodeString(m["ciphertext"].(string))
			ct[len(ct)-1] ^= 1
			m["ciphertext"] = base64.StdEncoding.EncodeToString(ct)
		}), ErrWrongPassword, "COSIGN_PASSWORD"},
		{"other salt", mutateBody(t, func(m map[string]any) { kdf(m)["salt"] = base64.StdEncoding.EncodeToString(make([]byte, 32)) }), ErrWrongPassword, "wrong password"},
		{"decrypts to non-PKCS8", encryptedPEM(notPKCS8), ErrInvalidKey, "not a PKCS #8 key"},
		{"PKCS8 block with garbage", pem.EncodeToMemory(&pem.Block{Type: PKCS8PrivateKeyPEMType, Bytes: []byte{0x30, 0}}), ErrInvalidKey, "not PKCS #8"},
		{"EC block with garbage", pem.EncodeToMemory(&pem.Block{Type: ECPrivateKeyPEMType, Bytes: []byte("x")}), ErrInvalidKey, "not a SEC 1 key"},
		{"RSA block with garbage", pem.EncodeToMemory(&pem.Block{Type: RSAPrivateKeyPEMType, Bytes: []byte("x")}), ErrInvalidKey, "not a PKCS #1 key"},
		{"RSA 1024 too small", pem.EncodeToMemory(&pem.Block{Type: RSAPrivateKeyPEMType, Bytes: rsaSmallDER}), ErrInvalidKey, "1024 bits"},
		{"P-224 refused", pem.EncodeToMemory(&pem.Block{Type: ECPrivateKeyPEMType, Bytes: p224DER}), ErrInvalidKey, "P-224"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, err := LoadPrivateKey(tc.pem, []byte("pw"))
			if !errors.Is(err, tc.want) || key != nil {
				t.Fatalf("LoadPrivateKey = %v, %v; want error %v", key, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not contain %q", err, tc.text)
			}
		})
	}
}

func TestLoadPublicKey(t *testing.T) {
	rsaKey, err := LoadPrivateKey(readTestdata(t, "rsa-pkcs1.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	rsaPKCS1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(rsaKey.Public().(*rsa.PublicKey))})
	edKey, _ := LoadPrivateKey(readTestdata(t, "ed25519-pkcs8.pem"), nil)
	edPub, _ := PublicKeyPEM(edKey.Public())
	tests := []struct {
		name string
		pem  []byte
		want error // nil: must load
	}{
		{"cosign.pub", readTestdata(t, "cosign-v2.6.5.pub"), nil},
		{"RSA PKCS #1", rsaPKCS1, nil},
		{"Ed25519 PKIX", edPub, nil},
		{"empty", nil, ErrInvalidKey},
		{"garbage", []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"), ErrInvalidKey},
		{"truncated DER", pem.EncodeToMemory(&pem.Block{Type: PublicKeyPEMType, Bytes: []byte{0x30, 0x59, 0x30}}), ErrInvalidKey},
		{"private key", readTestdata(t, "cosign-v2.6.5.key"), ErrInvalidKey},
		{"RSA PKCS #1 garbage", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: []byte{1}}), ErrInvalidKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := LoadPublicKey(tc.pem)
			if tc.want == nil {
				if err != nil || pub == nil {
					t.Fatalf("LoadPublicKey = %v, %v", pub, err)
				}
				return
			}
			if !errors.Is(err, tc.want) || pub != nil {
				t.Fatalf("LoadPublicKey = %v, %v; want %v", pub, err, tc.want)
			}
		})
	}
}

func TestResolveKeyRef(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cosign.key")
	pemText := readTestdata(t, "cosign-v2.6.5.key")
	if err := os.WriteFile(keyFile, pemText, 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bigFile := filepath.Join(dir, "big.key")
	if err := os.WriteFile(bigFile, make([]byte, maxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"COSIGN_KEY_PEM": string(pemText), "BLANK": "  "}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		name string
		ref  string
		want []byte
		err  error  // sentinel, or nil when only text matters
		text string // substring of the error; "" means success
	}{
		{"file", keyFile, pemText, nil, ""},
		{"env", "env://COSIGN_KEY_PEM", pemText, nil, ""},
		{"env unset", "env://NOPE", nil, nil, "environment variable NOPE is not set or empty"},
		{"env blank", "env://BLANK", nil, nil, "BLANK is not set or empty"},
		{"env without name", "env://", nil, ErrUnsupportedKeyRef, "names no environment variable"},
		{"empty ref", "", nil, ErrUnsupportedKeyRef, "empty key reference"},
		{"missing file", filepath.Join(dir, "nope.key"), nil, os.ErrNotExist, "nope.key"},
		{"empty file", emptyFile, nil, ErrInvalidKey, "is empty"},
		{"huge file", bigFile, nil, ErrInvalidKey, "larger than"},
		{"awskms", "awskms:///arn:aws:kms:us-east-1:1:key/x", nil, ErrUnsupportedKeyRef, "KMS"},
		{"gcpkms", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", nil, ErrUnsupportedKeyRef, "KMS"},
		{"k8s", "k8s://ns/secret", nil, ErrUnsupportedKeyRef, "KMS"},
		{"pkcs11", "pkcs11:token=x", nil, ErrUnsupportedKeyRef, "KMS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveKeyRef(tc.ref, lookup, os.Open)
			if tc.text == "" {
				if err != nil || !bytes.Equal(got, tc.want) {
					t.Fatalf("resolveKeyRef = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error = %v, want one containing %q", err, tc.text)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("error %v does not match %v", err, tc.err)
			}
		})
	}
}

func TestResolveKeyRefUsesProcessEnv(t *testing.T) {
	t.Setenv("HALLMARK_TEST_KEY", "-----BEGIN PUBLIC KEY-----\n")
	got, err := ResolveKeyRef("env://HALLMARK_TEST_KEY")
	if err != nil || string(got) != "-----BEGIN PUBLIC KEY-----\n" {
		t.Errorf("ResolveKeyRef = %q, %v", got, err)
	}
}

// Compile-time check that the loader's result can drive KeySigner.
var _ Signer = KeySigner{}

func TestKeySignerWithLoadedKey(t *testing.T) {
	key, err := LoadPrivateKey(readTestdata(t, "cosign-v2.6.5.key"), []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := KeySigner{Key: key}.Sign(context.Background(), []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	if !verifyBlob(t, key.Public(), []byte("payload"), sig.Signature) {
		t.Errorf("signature does not verify")
	}
}
