package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"hash"
)

// maxKeyInput bounds the size of a public key or CSR accepted for parsing.
const maxKeyInput = 64 << 10

// ParsePublicKey decodes a public key as Fulcio does: a PEM "PUBLIC KEY"
// (PKIX) or "RSA PUBLIC KEY" (PKCS#1) block first, then raw DER PKIX.
func ParsePublicKey(content []byte) (crypto.PublicKey, error) {
	if len(content) == 0 {
		return nil, fmt.Errorf("%w: no public key in the request (publicKey.content is empty)", ErrInvalidPublicKey)
	}
	if len(content) > maxKeyInput {
		return nil, fmt.Errorf("%w: public key of %d bytes is too large", ErrInvalidPublicKey, len(content))
	}
	if b, _ := pem.Decode(content); b != nil {
		switch b.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: PEM PUBLIC KEY: %v", ErrInvalidPublicKey, err)
			}
			return k, nil
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: PEM RSA PUBLIC KEY: %v", ErrInvalidPublicKey, err)
			}
			return k, nil
		default:
			return nil, fmt.Errorf("%w: PEM block %q; send a \"PUBLIC KEY\" block", ErrInvalidPublicKey, b.Type)
		}
	}
	k, err := x509.ParsePKIXPublicKey(content)
	if err != nil {
		return nil, fmt.Errorf("%w: neither PEM nor DER PKIX: %v", ErrInvalidPublicKey, err)
	}
	return k, nil
}

// CheckKey rejects key types and sizes Fulcio rejects: it accepts ECDSA on
// P-256, P-384 and P-521, RSA with a 2048, 3072 or 4096-bit modulus and
// public exponent 65537, and Ed25519.
func CheckKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s; use P-256, P-384 or P-521", ErrInsecureKey, k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch n := k.N.BitLen(); n {
		case 2048, 3072, 4096:
		default:
			return fmt.Errorf("%w: RSA modulus of %d bits; use 2048, 3072 or 4096", ErrInsecureKey, n)
		}
		if k.E != 65537 {
			return fmt.Errorf("%w: RSA public exponent %d; use 65537", ErrInsecureKey, k.E)
		}
		if k.N.Bit(0) == 0 {
			return fmt.Errorf("%w: RSA modulus is even", ErrInsecureKey)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrInsecureKey, len(k))
		}
		return nil
	}
	return fmt.Errorf("%w: key type %T; use ECDSA (P-256/384/521), RSA (2048-4096) or Ed25519", ErrInsecureKey, pub)
}

// ecdsaHash is the hash Fulcio's default verifier pairs with each curve.
func ecdsaHash(c elliptic.Curve) (crypto.Hash, func() hash.Hash) {
	switch c {
	case elliptic.P384():
		return crypto.SHA384, sha512.New384
	case elliptic.P521():
		return crypto.SHA512, sha512.New
	}
	return crypto.SHA256, sha256.New
}

// VerifyProof checks proof, a signature by pub over the UTF-8 bytes of
// challenge (the token's email or sub), with the key's default scheme:
// ASN.1 ECDSA with the curve's hash, RSA PKCS#1 v1.5 (or PSS) with
// SHA-256, pure Ed25519.
func VerifyProof(pub crypto.PublicKey, proof []byte, challenge string) error {
	if len(proof) == 0 {
		return fmt.Errorf("%w: no proof of possession in the request; sign the token's %s with the private key", ErrInvalidSignature, challengeHint(challenge))
	}
	msg := []byte(challenge)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		_, newHash := ecdsaHash(k.Curve)
		h := newHash()
		h.Write(msg)
		if ecdsa.VerifyASN1(k, h.Sum(nil), proof) {
			return nil
		}
	case *rsa.PublicKey:
		d := sha256.Sum256(msg)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], proof) == nil {
			return nil
		}
		if rsa.VerifyPSS(k, crypto.SHA256, d[:], proof, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil {
			return nil
		}
	case ed25519.PublicKey:
		if ed25519.Verify(k, msg, proof) {
			return nil
		}
	default:
		return fmt.Errorf("%w: key type %T", ErrInsecureKey, pub)
	}
	return fmt.Errorf("%w: the signature is not over %q by the supplied key; sign exactly that string (the token's email if verified, else its sub)", ErrInvalidSignature, challenge)
}

func challengeHint(challenge string) string {
	if challenge == "" {
		return "subject"
	}
	return fmt.Sprintf("identity %q", challenge)
}

// ParseCSR decodes a PKCS#10 request (PEM "CERTIFICATE REQUEST" or DER),
// checks its key and its self-signature (the proof of possession for the
// CSR flow) and returns the key. Every other CSR field is ignored.
func ParseCSR(raw []byte) (crypto.PublicKey, error) {
	if len(raw) > maxKeyInput {
		return nil, fmt.Errorf("%w: %d bytes is too large", ErrInvalidCSR, len(raw))
	}
	der := raw
	if b, _ := pem.Decode(raw); b != nil {
		if b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST" {
			return nil, fmt.Errorf("%w: PEM block %q; send a \"CERTIFICATE REQUEST\"", ErrInvalidCSR, b.Type)
		}
		der = b.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCSR, err)
	}
	if err := CheckKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if !csrAlgorithmAllowed(csr.PublicKey, csr.SignatureAlgorithm) {
		return nil, fmt.Errorf("%w: CSR signature algorithm %s is not allowed for a %T key (use ECDSA with the curve's hash, RSA with SHA-256, or Ed25519)", ErrInsecureKey, csr.SignatureAlgorithm, csr.PublicKey)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: CSR self-signature: %v", ErrInvalidSignature, err)
	}
	return csr.PublicKey, nil
}

// csrAlgorithmAllowed applies Fulcio's default key/hash allow-list.
func csrAlgorithmAllowed(pub crypto.PublicKey, alg x509.SignatureAlgorithm) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		h, _ := ecdsaHash(k.Curve)
		return (h == crypto.SHA256 && alg == x509.ECDSAWithSHA256) ||
			(h == crypto.SHA384 && alg == x509.ECDSAWithSHA384) ||
			(h == crypto.SHA512 && alg == x509.ECDSAWithSHA512)
	case *rsa.PublicKey:
		return alg == x509.SHA256WithRSA || alg == x509.SHA256WithRSAPSS
	case ed25519.PublicKey:
		return alg == x509.PureEd25519
	}
	return false
}
