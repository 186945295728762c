package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// VerifySignature checks sig over payload with pub: ECDSA (ASN.1) and RSA
// PKCS#1 v1.5 over SHA-256, or Ed25519 over the payload. When the
// signature's shape shows it was made with another kind of key than pub,
// the error says so.
func VerifySignature(pub crypto.PublicKey, payload, sig []byte) error {
	return verifySignature(pub, payload, sha256.Sum256(payload), sig)
}

// verifySignature is VerifySignature with the SHA-256 of msg computed
// once by the caller (a signature is tried with several keys, a key with
// several signatures).
func verifySignature(pub crypto.PublicKey, msg []byte, h [32]byte, sig []byte) error {
	shape := signatureShape(sig)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if ecdsa.VerifyASN1(k, h[:], sig) {
			return nil
		}
		if shape != "ECDSA" {
			return &keyMismatchError{fmt.Sprintf("the key is ECDSA %s but the signature is not an ASN.1 ECDSA signature (%d bytes, %s): verify with the key that made it", curveName(k), len(sig), shape)}
		}
		return fmt.Errorf("ECDSA signature does not verify with the ECDSA %s key", curveName(k))
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil {
			return nil
		}
		if len(sig) != k.Size() {
			return &keyMismatchError{fmt.Sprintf("the key is RSA %d but the signature is %d bytes (%s), not an RSA-%d signature: verify with the key that made it", k.N.BitLen(), len(sig), shape, k.N.BitLen())}
		}
		return fmt.Errorf("RSA signature does not verify with the RSA %d key", k.N.BitLen())
	case ed25519.PublicKey:
		if ed25519.Verify(k, msg, sig) {
			return nil
		}
		if len(sig) != ed25519.SignatureSize {
			return &keyMismatchError{fmt.Sprintf("the key is Ed25519 but the signature is %d bytes (%s), not a 64-byte Ed25519 signature: verify with the key that made it", len(sig), shape)}
		}
		return errors.New("Ed25519 signature does not verify with the Ed25519 key")
	default:
		return fmt.Errorf("unsupported public key type %T (use ECDSA, RSA or Ed25519)", pub)
	}
}

// keyMismatchError says that a signature cannot have been made with a key
// of the given type at all.
type keyMismatchError struct{ msg string }

func (e *keyMismatchError) Error() string { return e.msg }

// signatureShape guesses what kind of key made sig, for error messages.
func signatureShape(sig []byte) string {
	var es struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &es); err == nil && len(rest) == 0 && es.R != nil && es.S != nil {
		return "ECDSA"
	}
	switch len(sig) {
	case ed25519.SignatureSize:
		return "looks like Ed25519"
	case 256, 384, 512:
		return fmt.Sprintf("looks like RSA-%d", len(sig)*8)
	}
	return "unknown format"
}

func curveName(k *ecdsa.PublicKey) string {
	if k.Curve == nil {
		return "(no curve)"
	}
	return k.Curve.Params().Name
}

// ParsePublicKey parses a PEM "PUBLIC KEY" (PKIX) block, or the public key
// of a PEM certificate.
func ParsePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM block found in public key")
	}
	switch block.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		return c.PublicKey, nil
	}
	return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
}

// Fingerprint is the SHA-256 fingerprint of a public key's PKIX DER, as
// "SHA256:<base64>" (the form ssh and cosign's key hints use).
func Fingerprint(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(der)
	return "SHA256:" + base64.StdEncoding.EncodeToString(h[:]), nil
}
