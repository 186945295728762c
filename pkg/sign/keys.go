package sign

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"

	"github.com/hallmark-dev/hallmark/pkg/internal/scrypt"
)

// PEM block types of the key files cosign reads and writes.
const (
	// SigstorePrivateKeyPEMType is what cosign generate-key-pair writes.
	SigstorePrivateKeyPEMType = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// CosignPrivateKeyPEMType is the same format as written by older cosign.
	CosignPrivateKeyPEMType = "ENCRYPTED COSIGN PRIVATE KEY"
	// PKCS8PrivateKeyPEMType is an unencrypted PKCS #8 key.
	PKCS8PrivateKeyPEMType = "PRIVATE KEY"
	// ECPrivateKeyPEMType is an unencrypted SEC 1 ECDSA key.
	ECPrivateKeyPEMType = "EC PRIVATE KEY"
	// RSAPrivateKeyPEMType is an unencrypted PKCS #1 RSA key.
	RSAPrivateKeyPEMType = "RSA PRIVATE KEY"
	// PublicKeyPEMType is a PKIX public key (cosign.pub).
	PublicKeyPEMType = "PUBLIC KEY"
)

// Key errors. Match them with errors.Is.
var (
	// ErrWrongPassword: the password does not decrypt the key (or the
	// ciphertext was altered; the two cannot be told apart).
	ErrWrongPassword = errors.New("wrong password for the encrypted private key")
	// ErrInvalidKey: the input is not a key in a format this package reads.
	ErrInvalidKey = errors.New("invalid key")
	// ErrUnsupportedKeyRef: a key reference scheme (KMS, k8s://...) that is
	// not implemented.
	ErrUnsupportedKeyRef = errors.New("unsupported key reference")
)

// The go-securesystemslib "encrypted" format cosign wraps private keys in:
// scrypt derives a 32-byte key from the password, NaCl secretbox encrypts
// the PKCS #8 DER. Field names and order are that library's JSON.
const (
	kdfScrypt       = "scrypt"
	cipherSecretbox = "nacl/secretbox"
	saltSize        = 32
	nonceSize       = 24
	secretboxKeyLen = 32
	// scryptN is the work factor cosign v2.6 (go-securesystemslib v0.9
	// "Standard") writes. Reading also accepts the library's legacy 2^15
	// and OWASP 2^17; r and p are always 8 and 1.
	scryptN = 1 << 16
	scryptR = 8
	scryptP = 1
)

// scryptNAccepted are the work factors a key file may carry. Anything else
// is refused before deriving, so a hostile file cannot make us burn memory.
var scryptNAccepted = map[int]bool{1 << 15: true, 1 << 16: true, 1 << 17: true}

type encryptedKey struct {
	KDF struct {
		Name   string `json:"name"`
		Params struct {
			N int `json:"N"`
			R int `json:"r"`
			P int `json:"p"`
		} `json:"params"`
		Salt []byte `json:"salt"`
	} `json:"kdf"`
	Cipher struct {
		Name  string `json:"name"`
		Nonce []byte `json:"nonce"`
	} `json:"cipher"`
	Ciphertext []byte `json:"ciphertext"`
}

// GenerateKeyPair creates an ECDSA P-256 key pair in cosign's file
// formats: the private key encrypted with password as an "ENCRYPTED
// SIGSTORE PRIVATE KEY" PEM block (cosign.key) and the PKIX "PUBLIC KEY"
// PEM (cosign.pub). An empty password is allowed, as in cosign.
func GenerateKeyPair(password []byte) (privPEM, pubPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating ECDSA P-256 key: %w", err)
	}
	privPEM, err = EncryptPrivateKey(key, password)
	if err != nil {
		return nil, nil, err
	}
	pubPEM, err = PublicKeyPEM(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding public key: %w", err)
	}
	return privPEM, pubPEM, nil
}

// EncryptPrivateKey writes key (ECDSA, RSA or Ed25519) as cosign's
// encrypted key file, as cosign import-key-pair does.
func EncryptPrivateKey(key crypto.PrivateKey, password []byte) ([]byte, error) {
	return encryptPrivateKey(key, password, scryptN)
}

func encryptPrivateKey(key crypto.PrivateKey, password []byte, n int) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding private key as PKCS #8: %w", ErrInvalidKey, err)
	}
	body, err := sealKeyBody(der, password, n)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEMType, Bytes: body}), nil
}

// sealKeyBody encrypts plaintext into the encrypted-key JSON body.
func sealKeyBody(plaintext, password []byte, n int) ([]byte, error) {
	var ek encryptedKey
	ek.KDF.Name = kdfScrypt
	ek.KDF.Params.N, ek.KDF.Params.R, ek.KDF.Params.P = n, scryptR, scryptP
	ek.KDF.Salt = make([]byte, saltSize)
	ek.Cipher.Name = cipherSecretbox
	ek.Cipher.Nonce = make([]byte, nonceSize)
	if _, err := io.ReadFull(rand.Reader, ek.KDF.Salt); err != nil {
		return nil, fmt.Errorf("generating salt: %w", err)
	}
	if _, err := io.ReadFull(rand.Reader, ek.Cipher.Nonce); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	boxKey, err := scrypt.Key(password, ek.KDF.Salt, n, scryptR, scryptP, secretboxKeyLen)
	if err != nil {
		return nil, fmt.Errorf("deriving encryption key: %w", err)
	}
	ek.Ciphertext = secretbox.Seal(nil, plaintext, (*[nonceSize]byte)(ek.Cipher.Nonce), (*[secretboxKeyLen]byte)(boxKey))
	return json.Marshal(ek)
}

// LoadPrivateKey reads a private key PEM: cosign's encrypted formats
// ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"),
// decrypted with password, or an unencrypted "PRIVATE KEY" (PKCS #8),
// "EC PRIVATE KEY" (SEC 1; a preceding "EC PARAMETERS" block as openssl
// writes is skipped) or "RSA PRIVATE KEY" (PKCS #1), for which password is
// ignored. Keys are ECDSA (P-256/384/521), RSA (>= 2048 bits) or Ed25519.
func LoadPrivateKey(pemBytes []byte, password []byte) (crypto.Signer, error) {
	block, err := firstPEMBlock(pemBytes, "private key")
	if err != nil {
		return nil, err
	}
	var key any
	switch block.Type {
	case SigstorePrivateKeyPEMType, CosignPrivateKeyPEMType:
		der, err := decryptKey(block.Bytes, password)
		if err != nil {
			return nil, err
		}
		if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
			return nil, fmt.Errorf("%w: decrypted %s is not a PKCS #8 key: %v", ErrInvalidKey, block.Type, err)
		}
	case PKCS8PrivateKeyPEMType:
		if key, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%w: %s block is not PKCS #8: %v", ErrInvalidKey, block.Type, err)
		}
	case ECPrivateKeyPEMType:
		if key, err = x509.ParseECPrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%w: %s block is not a SEC 1 key: %v", ErrInvalidKey, block.Type, err)
		}
	case RSAPrivateKeyPEMType:
		if key, err = x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%w: %s block is not a PKCS #1 key: %v", ErrInvalidKey, block.Type, err)
		}
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a private key; want %q (cosign generate-key-pair), %q, %q or %q",
			ErrInvalidKey, block.Type, SigstorePrivateKeyPEMType, PKCS8PrivateKeyPEMType, ECPrivateKeyPEMType, RSAPrivateKeyPEMType)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T keys cannot sign", ErrInvalidKey, key)
	}
	if err := checkPublicKey(signer.Public()); err != nil {
		return nil, err
	}
	return signer, nil
}

// KeyNeedsPassword reports whether pemBytes holds an encrypted cosign key,
// so that a password must be asked for before LoadPrivateKey.
func KeyNeedsPassword(pemBytes []byte) bool {
	block, err := firstPEMBlock(pemBytes, "private key")
	return err == nil && (block.Type == SigstorePrivateKeyPEMType || block.Type == CosignPrivateKeyPEMType)
}

// decryptKey opens cosign's encrypted JSON body and returns the PKCS #8 DER.
func decryptKey(body, password []byte) ([]byte, error) {
	var ek encryptedKey
	if err := json.Unmarshal(body, &ek); err != nil {
		return nil, fmt.Errorf("%w: encrypted key body is not the expected JSON: %v", ErrInvalidKey, err)
	}
	p := ek.KDF.Params
	switch {
	case ek.KDF.Name != kdfScrypt:
		return nil, fmt.Errorf("%w: key derivation %q is not supported (want %q)", ErrInvalidKey, ek.KDF.Name, kdfScrypt)
	case ek.Cipher.Name != cipherSecretbox:
		return nil, fmt.Errorf("%w: cipher %q is not supported (want %q)", ErrInvalidKey, ek.Cipher.Name, cipherSecretbox)
	case !scryptNAccepted[p.N] || p.R != scryptR || p.P != scryptP:
		return nil, fmt.Errorf("%w: scrypt parameters N=%d r=%d p=%d are not supported (want N=32768, 65536 or 131072 with r=8 p=1)",
			ErrInvalidKey, p.N, p.R, p.P)
	case len(ek.Cipher.Nonce) != nonceSize:
		return nil, fmt.Errorf("%w: secretbox nonce is %d bytes, want %d", ErrInvalidKey, len(ek.Cipher.Nonce), nonceSize)
	case len(ek.Ciphertext) < secretbox.Overhead:
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, too short to hold a key", ErrInvalidKey, len(ek.Ciphertext))
	}
	boxKey, err := scrypt.Key(password, ek.KDF.Salt, p.N, p.R, p.P, secretboxKeyLen)
	if err != nil {
		return nil, fmt.Errorf("%w: deriving decryption key: %v", ErrInvalidKey, err)
	}
	der, ok := secretbox.Open(nil, ek.Ciphertext, (*[nonceSize]byte)(ek.Cipher.Nonce), (*[secretboxKeyLen]byte)(boxKey))
	if !ok {
		return nil, fmt.Errorf("%w (or the key file is damaged): give the password the key was created with, e.g. in COSIGN_PASSWORD", ErrWrongPassword)
	}
	return der, nil
}

// LoadPublicKey reads a "PUBLIC KEY" (PKIX, as in cosign.pub) or "RSA
// PUBLIC KEY" (PKCS #1) PEM block.
func LoadPublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, err := firstPEMBlock(pemBytes, "public key")
	if err != nil {
		return nil, err
	}
	var pub crypto.PublicKey
	switch block.Type {
	case PublicKeyPEMType:
		if pub, err = x509.ParsePKIXPublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%w: %s block is not PKIX: %v", ErrInvalidKey, block.Type, err)
		}
	case "RSA PUBLIC KEY":
		if pub, err = x509.ParsePKCS1PublicKey(block.Bytes); err != nil {
			return nil, fmt.Errorf("%w: %s block is not PKCS #1: %v", ErrInvalidKey, block.Type, err)
		}
	default:
		return nil, fmt.Errorf("%w: PEM block %q is not a public key; want %q (e.g. cosign.pub; for a private key use the matching .pub file or cosign public-key)",
			ErrInvalidKey, block.Type, PublicKeyPEMType)
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// firstPEMBlock returns the first PEM block that is not "EC PARAMETERS".
func firstPEMBlock(b []byte, what string) (*pem.Block, error) {
	rest := b
	for {
		block, r := pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM-encoded %s found (want a -----BEGIN ...----- block)", ErrInvalidKey, what)
		}
		if block.Type != "EC PARAMETERS" {
			return block, nil
		}
		rest = r
	}
}

// checkPublicKey accepts the key types and sizes cosign signs with.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		case nil:
			return fmt.Errorf("%w: ECDSA key without a curve", ErrInvalidKey)
		}
		return fmt.Errorf("%w: ECDSA curve %s is not supported (use P-256, P-384 or P-521)", ErrInvalidKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits is too small (use at least 2048)", ErrInvalidKey, k.N.BitLen())
		}
		return nil
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%w: %T keys are not supported (use ECDSA, RSA or Ed25519)", ErrInvalidKey, pub)
	}
}

// maxKeyFileSize bounds what ResolveKeyRef reads; key files are a few KB.
const maxKeyFileSize = 1 << 20

// ResolveKeyRef returns the PEM bytes a key reference names, as cosign's
// --key does: "env://NAME" reads the environment variable NAME, anything
// else is a file path. KMS and other provider URIs (awskms://, gcpkms://,
// azurekms://, hashivault://, k8s://, gitlab://, pkcs11:) are refused with
// ErrUnsupportedKeyRef.
func ResolveKeyRef(ref string) ([]byte, error) {
	return resolveKeyRef(ref, os.LookupEnv, os.Open)
}

func resolveKeyRef(ref string, lookupEnv func(string) (string, bool), open func(string) (*os.File, error)) ([]byte, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty key reference; give a key file path or env://VAR", ErrUnsupportedKeyRef)
	}
	if name, ok := strings.CutPrefix(ref, "env://"); ok {
		if name == "" {
			return nil, fmt.Errorf("%w: %q names no environment variable; use env://VAR", ErrUnsupportedKeyRef, ref)
		}
		v, ok := lookupEnv(name)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("key reference %s: environment variable %s is not set or empty; put the PEM key in it", ref, name)
		}
		return []byte(v), nil
	}
	if scheme, _, ok := strings.Cut(ref, "://"); ok && isScheme(scheme) || strings.HasPrefix(ref, "pkcs11:") {
		return nil, fmt.Errorf("%w: %q: KMS and hardware key providers are not supported; export the key to a file or use env://VAR", ErrUnsupportedKeyRef, ref)
	}
	f, err := open(ref)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", ref, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; is it really a key file?", ErrInvalidKey, ref, maxKeyFileSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: key file %s is empty", ErrInvalidKey, ref)
	}
	return b, nil
}

// isScheme reports whether s looks like a URI scheme (RFC 3986: a letter,
// then letters, digits, '+', '-', '.').
func isScheme(s string) bool {
	if s == "" || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
