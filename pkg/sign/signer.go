package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// Signature is one signature ready to be attached to an image: the exact
// payload bytes and what cosign stores beside them as layer annotations.
type Signature struct {
	Payload     []byte // the signed bytes (simple-signing JSON)
	Signature   []byte // raw signature (ASN.1 DER for ECDSA)
	Certificate []byte // PEM leaf certificate (keyless), or nil
	Chain       []byte // PEM intermediates..root (keyless), or nil
	Bundle      []byte // JSON Rekor bundle (when logged), or nil
	LogIndex    int64  // log index when Bundle is set
	// Entry is the verified log entry when Bundle is set.
	Entry *rekor.LogEntry
	// RawSignature is the DSSE signature of an attestation (whose layer
	// signature annotation stays empty, as cosign writes it).
	RawSignature []byte
	// Sigstore is the signature as a sigstore bundle (SigstoreBundle),
	// when it was made for the bundle layout.
	Sigstore []byte
}

// Signer produces signatures over payloads. Key-based signing is KeySigner;
// keyless signing wraps an ephemeral key with a certificate and a log entry.
type Signer interface {
	Sign(ctx context.Context, payload []byte) (*Signature, error)
}

// KeySigner signs with a private key the way cosign does: ECDSA over the
// SHA-256 of the payload (ASN.1 signature), RSA PKCS#1 v1.5 over SHA-256,
// or plain Ed25519. With Log set, every signature is recorded in the
// transparency log (hashedrekord with the public key) and the verified
// entry is attached as cosign's bundle.
type KeySigner struct {
	Key crypto.Signer
	Log *TransparencyLog
}

// Sign implements Signer.
func (k KeySigner) Sign(ctx context.Context, payload []byte) (*Signature, error) {
	sig, err := SignBytes(k.Key, payload)
	if err != nil {
		return nil, err
	}
	out := &Signature{Payload: payload, Signature: sig}
	if k.Log != nil {
		pubPEM, err := PublicKeyPEM(k.Key.Public())
		if err != nil {
			return nil, err
		}
		der, _ := x509.MarshalPKIXPublicKey(k.Key.Public())
		h := sha256.Sum256(payload)
		entry, err := rekor.NewHashedRekord(rekor.Hash{Algorithm: "sha256", Value: hex.EncodeToString(h[:])}, sig, pubPEM)
		if err != nil {
			return nil, err
		}
		if err := out.logged(ctx, k.Log, entry, h[:], sig, der); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SignDSSE implements AttestationSigner.
func (k KeySigner) SignDSSE(ctx context.Context, payloadType string, body []byte) (*Signature, error) {
	der, err := x509.MarshalPKIXPublicKey(k.Key.Public())
	if err != nil {
		return nil, err
	}
	return signDSSE(ctx, k.Key, nil, nil, der, k.Log, payloadType, body)
}

// PublicKey returns the public half of the signing key, used to recognise
// a signature that is already attached (see AttachOptions.Verifier).
func (k KeySigner) PublicKey() crypto.PublicKey { return k.Key.Public() }

// SignBytes signs payload with key as cosign does for its key types.
func SignBytes(key crypto.Signer, payload []byte) ([]byte, error) {
	if key == nil {
		return nil, errors.New("no signing key")
	}
	switch key.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
		h := sha256.Sum256(payload)
		return key.Sign(rand.Reader, h[:], crypto.SHA256)
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, payload, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("unsupported key type %T", key.Public())
	}
}

// PublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}
