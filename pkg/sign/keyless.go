package sign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/payload"
	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// KeylessConfig configures NewKeylessSigner.
type KeylessConfig struct {
	// CA issues the certificate (Fulcio v1 API).
	CA *Fulcio
	// Token is the raw OIDC ID token naming the signer's identity.
	Token string
	// Trust holds the CA roots and CT log keys the issued certificate is
	// checked against (chain for code signing, embedded or detached SCT).
	Trust *root.Material
	// SkipSCT skips the SCT check (cosign's --insecure-skip-verify).
	SkipSCT bool
	// Log, when set, records every signature; entries are verified (SET,
	// inclusion proof) before they are returned.
	Log *TransparencyLog
}

// KeylessSigner signs with an ephemeral ECDSA P-256 key certified by a
// Fulcio-compatible CA for the identity in an OIDC token, and records each
// signature in a Rekor-compatible log, as cosign v2 does by default. One
// certificate serves every signature of the signer (one sign command).
type KeylessSigner struct {
	key  *ecdsa.PrivateKey
	cert *CertificateChain
	log  *TransparencyLog
	// checked is closed when the certificate check (chain, SCT) is done;
	// checkErr is its outcome. Signatures are returned only after it
	// passed; it runs while the first signature is being logged.
	checked  chan struct{}
	checkErr error
}

// NewKeylessSigner generates the ephemeral key and gets its certificate
// for it, and starts checking the certificate: it must chain to a CA of
// the trusted root for code signing and carry an SCT of a trusted CT log.
// No signature is returned before that check passed (Verified).
func NewKeylessSigner(ctx context.Context, cfg KeylessConfig) (*KeylessSigner, error) {
	if cfg.Token == "" {
		return nil, errors.New("keyless signing needs an OIDC identity token (--identity-token or SIGSTORE_ID_TOKEN)")
	}
	if cfg.CA == nil || cfg.CA.URL == "" {
		return nil, errors.New("keyless signing needs a certificate authority URL (--fulcio-url, or the signing config from 'hallmark trust init')")
	}
	if cfg.Trust == nil {
		return nil, errors.New("keyless signing needs the trusted root to check the certificate and log entry (--trusted-root, or 'hallmark trust init')")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cc, err := cfg.CA.SigningCert(ctx, cfg.Token, key)
	if err != nil {
		return nil, err
	}
	k := &KeylessSigner{key: key, cert: cc, log: cfg.Log, checked: make(chan struct{})}
	go func() {
		defer close(k.checked)
		if err := CheckCertificate(cc, cfg.Trust, cfg.SkipSCT); err != nil {
			k.checkErr = fmt.Errorf("the certificate from %s: %w", cfg.CA.URL, err)
		}
	}()
	return k, nil
}

// Verified waits for the certificate check and returns its outcome.
func (k *KeylessSigner) Verified() error {
	<-k.checked
	return k.checkErr
}

// CheckCertificate checks an issued certificate against the trusted root:
// it chains to one of its CAs for code signing, a CA trusted now (the
// signature about to be made will be logged about now), and (unless
// skipSCT) has a valid embedded SCT, or a valid detached one, from one of
// its CT logs, issued while that log's key is trusted.
func CheckCertificate(cc *CertificateChain, trust *root.Material, skipSCT bool) error {
	chain, err := verify.VerifyChain(cc.Leaf, cc.Chain, trust.CAs)
	if err != nil {
		return err
	}
	if err := chain.TrustedAt(time.Now(), "the certificate is used"); err != nil {
		return err
	}
	if skipSCT {
		return nil
	}
	err = chain.VerifySCT(trust.CTLogKeys)
	if err != nil && len(cc.DetachedSCT) > 0 {
		err = verify.VerifyDetachedSCT(cc.DetachedSCT, cc.Leaf, chain.Issuer(), trust.CTLogKeys)
	}
	return err
}

// Certificate returns the signing certificate.
func (k *KeylessSigner) Certificate() *x509.Certificate { return k.cert.Leaf }

// PublicKey returns the ephemeral public key.
func (k *KeylessSigner) PublicKey() crypto.PublicKey { return &k.key.PublicKey }

// Sign implements Signer: the signature over payload with the certificate
// and chain and, with a log, the verified log entry as cosign's bundle.
func (k *KeylessSigner) Sign(ctx context.Context, p []byte) (*Signature, error) {
	sig, err := SignBytes(k.key, p)
	if err != nil {
		return nil, err
	}
	out := &Signature{Payload: p, Signature: sig, Certificate: k.cert.LeafPEM, Chain: k.cert.ChainPEM}
	if k.log != nil {
		h := sha256.Sum256(p)
		entry, err := rekor.NewHashedRekord(rekor.Hash{Algorithm: "sha256", Value: hex.EncodeToString(h[:])}, sig, k.cert.LeafPEM)
		if err != nil {
			return nil, err
		}
		if err := out.logged(ctx, k.log, entry, h[:], sig, k.cert.Leaf.Raw); err != nil {
			return nil, errors.Join(err, k.Verified())
		}
	}
	if err := k.Verified(); err != nil {
		return nil, err
	}
	return out, nil
}

// SignDSSE implements AttestationSigner.
func (k *KeylessSigner) SignDSSE(ctx context.Context, payloadType string, body []byte) (*Signature, error) {
	s, err := signDSSE(ctx, k.key, k.cert.LeafPEM, k.cert.ChainPEM, k.cert.Leaf.Raw, k.log, payloadType, body)
	if err != nil {
		return nil, errors.Join(err, k.Verified())
	}
	if err := k.Verified(); err != nil {
		return nil, err
	}
	return s, nil
}

// logged uploads entry and records the verified entry on s.
func (s *Signature) logged(ctx context.Context, log *TransparencyLog, entry, contentSHA256, sig, keyDER []byte) error {
	e, err := log.Upload(ctx, entry, contentSHA256, sig, keyDER)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rekor.BundleOf(e))
	if err != nil {
		return err
	}
	s.Bundle, s.LogIndex, s.Entry = b, e.LogIndex, e
	return nil
}

// AttestationSigner signs DSSE envelopes (cosign attest).
type AttestationSigner interface {
	// SignDSSE signs body (of payloadType) as a DSSE envelope; the
	// returned Signature's Payload is the envelope JSON and Signature is
	// empty (cosign leaves the layer's signature annotation empty).
	SignDSSE(ctx context.Context, payloadType string, body []byte) (*Signature, error)
}

// signDSSE makes and (with a log) logs a DSSE envelope.
func signDSSE(ctx context.Context, key crypto.Signer, certPEM, chainPEM, keyDER []byte, log *TransparencyLog, payloadType string, body []byte) (*Signature, error) {
	env := payload.NewEnvelope(payloadType, body)
	pae := payload.PAE(payloadType, body)
	sig, err := SignBytes(key, pae)
	if err != nil {
		return nil, err
	}
	env.AddSignature("", sig)
	envJSON, err := env.Bytes()
	if err != nil {
		return nil, err
	}
	out := &Signature{Payload: envJSON, Certificate: certPEM, Chain: chainPEM, RawSignature: sig}
	if log != nil {
		material := certPEM
		if material == nil {
			if material, err = PublicKeyPEM(key.Public()); err != nil {
				return nil, err
			}
		}
		entry, err := rekor.NewDSSE(envJSON, material)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(body)
		if err := out.logged(ctx, log, entry, h[:], sig, keyDER); err != nil {
			return nil, err
		}
	}
	return out, nil
}
