package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Transparency-log errors. Match them with errors.Is; the messages around
// them say what differed. (rekor.ErrSET, rekor.ErrInclusionProof and
// rekor.ErrEntryMismatch name broken log evidence.)
var (
	// ErrUnknownLog: the entry names a log whose key is not trusted.
	ErrUnknownLog = errors.New("rekor log public key not found for payload")
	// ErrNoBundle: the signature carries no transparency-log bundle.
	ErrNoBundle = errors.New("signature has no transparency log bundle")
	// ErrCertificateValidity: the certificate was not valid when the
	// signature was logged.
	ErrCertificateValidity = errors.New("certificate not valid at the logged time")
	// ErrOutsideValidFor: a key or certificate authority of the trusted
	// root vouched for something outside its validFor window (a retired
	// or not yet active log key, CT log key or CA).
	ErrOutsideValidFor = errors.New("trusted root key or certificate authority used outside its validFor window")
)

// logKey returns the ECDSA key of the log that e names, once it is known
// to be trusted at the entry's integrated time (sigstore-go: "rekor log
// public key not valid at payload integrated time").
func logKey(e *rekor.LogEntry, keys map[string]root.LogKey) (*ecdsa.PublicKey, error) {
	key, ok := keys[strings.ToLower(e.LogID)]
	if !ok {
		return nil, fmt.Errorf("%w: transparency log %q is not in the trusted root (verify with the trusted root of the server that logged it)", ErrUnknownLog, e.LogID)
	}
	if t := time.Unix(e.IntegratedTime, 0); !key.ValidFor.Covers(t) {
		return nil, fmt.Errorf("%w: transparency log key %s is trusted %s; the entry (index %d) was integrated at %s (use a trusted root whose key for that log was valid then)",
			ErrOutsideValidFor, strings.ToLower(e.LogID), key.ValidFor, e.LogIndex, t.UTC().Format(time.RFC3339))
	}
	ek, ok := key.Key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("transparency log key %T cannot verify a signed entry timestamp (ECDSA required)", key.Key)
	}
	return ek, nil
}

// VerifySET checks the entry's signed entry timestamp with the key of the
// log it names, which must be trusted at the entry's integrated time. It
// proves the log promised to include exactly this entry at this index and
// time.
func VerifySET(e *rekor.LogEntry, keys map[string]root.LogKey) error {
	key, err := logKey(e, keys)
	if err != nil {
		return err
	}
	return rekor.VerifySET(e, key)
}

// VerifyInclusion checks the entry's inclusion proof against a checkpoint
// signed by the key of the log it names. That key must be trusted at the
// entry's integrated time (which only a SET authenticates; sigstore-go
// checks the window on the SET alone).
func VerifyInclusion(e *rekor.LogEntry, keys map[string]root.LogKey) error {
	if e.Proof == nil {
		return fmt.Errorf("%w: the entry carries no inclusion proof", rekor.ErrInclusionProof)
	}
	key, err := logKey(e, keys)
	if err != nil {
		return err
	}
	return rekor.VerifyInclusion(e, key)
}

// loggedSignature is what a log entry must bind: the digest of the signed
// content (for DSSE: of the payload), the signature and the certificate or
// public key (DER) that verifies it.
type loggedSignature struct {
	contentSHA256 []byte
	sig           []byte
	keyDER        []byte // certificate DER, or PKIX public key DER
}

// checkEntryBody checks that a canonical hashedrekord or dsse v0.0.1 body
// logs exactly want.
func checkEntryBody(body []byte, want loggedSignature) error {
	b, err := rekor.ParseBody(body)
	if err != nil {
		return err
	}
	return b.Logs(want.contentSHA256, want.sig, want.keyDER)
}

// VerifyLoggedSignature checks a log entry the way a signer does before
// attaching it: the entry logs exactly this signature (over content with
// SHA-256 contentSHA256, by the key or certificate with DER keyDER), its
// SET verifies with the log key trusted at its integrated time, and, when
// requireProof, its inclusion proof verifies against a checkpoint signed
// by that key.
func VerifyLoggedSignature(e *rekor.LogEntry, keys map[string]root.LogKey, contentSHA256, sig, keyDER []byte, requireProof bool) error {
	if err := checkEntryBody(e.Body, loggedSignature{contentSHA256: contentSHA256, sig: sig, keyDER: keyDER}); err != nil {
		return err
	}
	if err := VerifySET(e, keys); err != nil {
		return err
	}
	if requireProof || e.Proof != nil {
		return VerifyInclusion(e, keys)
	}
	return nil
}

// NextLogKey parses the next PEM public key in b (e.g. the contents of
// SIGSTORE_REKOR_PUBLIC_KEY) and returns it with its log ID, the hex
// SHA-256 of its PKIX DER, and the rest of b. ok is false when no further
// public key is found.
func NextLogKey(b []byte) (pub crypto.PublicKey, logID string, rest []byte, ok bool) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, "", nil, false
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			continue
		}
		id := sha256.Sum256(block.Bytes)
		return k, hex.EncodeToString(id[:]), b, true
	}
}

// LogKeys parses every PEM public key in b into a map from log ID (hex
// SHA-256 of the DER key) to key. PEM keys (cosign's legacy
// SIGSTORE_REKOR_PUBLIC_KEY and SIGSTORE_CT_LOG_PUBLIC_KEY_FILE) carry no
// validity window: they are trusted at any time.
func LogKeys(b []byte) map[string]root.LogKey {
	out := map[string]root.LogKey{}
	for {
		pub, id, rest, ok := NextLogKey(b)
		if !ok {
			return out
		}
		out[id], b = root.LogKey{Key: pub}, rest
	}
}
