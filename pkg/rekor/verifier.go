package rekor

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// maxChainCerts bounds a certificate chain given as a verifier.
const maxChainCerts = 8

// verifier is a parsed public key or certificate from an entry, with the
// canonical PEM Rekor stores for it: the key re-encoded as a PKIX "PUBLIC
// KEY" block, or the certificate(s) re-encoded from their DER.
type verifier struct {
	key       crypto.PublicKey
	canonical []byte
}

// parseVerifier parses a PEM public key, PEM certificate or PEM certificate
// chain (leaf first; the chain must verify to its last certificate), as
// Rekor's x509 PKI type accepts them.
func parseVerifier(raw []byte) (*verifier, error) {
	block, rest := pem.Decode(raw)
	if block == nil {
		return nil, errors.New("not PEM; send a PEM certificate or PEM PUBLIC KEY, base64-encoded")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return parseChain(raw)
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC KEY does not parse: %v", err)
		}
		if err := checkKeyType(k); err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("PUBLIC KEY cannot be re-encoded: %v", err)
		}
		return &verifier{key: k, canonical: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}, nil
	case "CERTIFICATE":
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CERTIFICATE does not parse: %v", err)
		}
		if err := checkKeyType(c.PublicKey); err != nil {
			return nil, err
		}
		return &verifier{key: c.PublicKey, canonical: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})}, nil
	}
	return nil, unsupportedf("PEM block type %q; send a CERTIFICATE or PUBLIC KEY", block.Type)
}

func parseChain(raw []byte) (*verifier, error) {
	var certs []*x509.Certificate
	var canonical []byte
	for rest := raw; len(bytes.TrimSpace(rest)) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("trailing data after the PEM block(s)")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("several PEM blocks must form a certificate chain, but one block is %q", block.Type)
		}
		if len(certs) == maxChainCerts {
			return nil, fmt.Errorf("certificate chain is longer than %d certificates", maxChainCerts)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d of the chain does not parse: %v", len(certs)+1, err)
		}
		certs = append(certs, c)
		canonical = append(canonical, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(certs[len(certs)-1])
	for _, c := range certs[1 : len(certs)-1] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("certificate chain does not verify: %v", err)
	}
	if err := checkKeyType(certs[0].PublicKey); err != nil {
		return nil, err
	}
	return &verifier{key: certs[0].PublicKey, canonical: canonical}, nil
}

// checkKeyType accepts the key types Rekor's default algorithm registry
// knows: ECDSA P-256/384/521, RSA 2048-4096 bits, Ed25519.
func checkKeyType(k crypto.PublicKey) error {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return unsupportedf("ECDSA curve %s; use P-256, P-384 or P-521", k.Curve.Params().Name)
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 4096 {
			return unsupportedf("RSA key of %d bits; use 2048, 3072 or 4096 bits", n)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	}
	return unsupportedf("public key type %T; use ECDSA, RSA or Ed25519", k)
}

func describeKey(k crypto.PublicKey) string {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", k)
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return h.String()
}

// allowedDigest reports whether a hashedrekord signature by key over a
// digest of hash h is acceptable, following Rekor's default client signing
// algorithms: ECDSA P-256/SHA-256, P-384/SHA-384, P-521/SHA-512, RSA
// PKCS#1 v1.5 2048/3072/4096 with SHA-256, Ed25519(ph) with SHA-512.
func allowedDigest(k crypto.PublicKey, h crypto.Hash) error {
	var want crypto.Hash
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			want = crypto.SHA256
		case elliptic.P384():
			want = crypto.SHA384
		case elliptic.P521():
			want = crypto.SHA512
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048, 3072, 4096:
			want = crypto.SHA256
		default:
			return unsupportedf("signing algorithm: %s keys must be 2048, 3072 or 4096 bits", describeKey(k))
		}
	case ed25519.PublicKey:
		want = crypto.SHA512
	}
	if want == 0 || want != h {
		return unsupportedf("signing algorithm: a %s key with a %s digest is not allowed (use %s)", describeKey(k), hashName(h), hashName(want))
	}
	return nil
}

// verifyDigest checks sig over a precomputed digest (hashedrekord): ECDSA
// ASN.1, RSA PKCS#1 v1.5, or Ed25519ph (Ed25519 over a SHA-512 prehash).
func verifyDigest(k crypto.PublicKey, h crypto.Hash, digest, sig []byte) bool {
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case ed25519.PublicKey:
		return h == crypto.SHA512 && ed25519.VerifyWithOptions(k, digest, sig, &ed25519.Options{Hash: crypto.SHA512}) == nil
	}
	return false
}
