package root

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// File names of the trust material, as `hallmark trust export` writes them,
// the server keeps them in <data-dir>/trust and `hallmark trust init`
// stores them in DefaultDir.
const (
	TrustedRootFile   = "trusted_root.json"
	SigningConfigFile = "signing_config.json"
	// Legacy PEM files for cosign v2's environment overrides.
	FulcioChainFile = "fulcio-chain.pem" // SIGSTORE_ROOT_FILE
	RekorKeyFile    = "rekor.pub"        // SIGSTORE_REKOR_PUBLIC_KEY
	CTLogKeyFile    = "ctlog.pub"        // SIGSTORE_CT_LOG_PUBLIC_KEY_FILE
)

// EnvTrustDir names the environment variable that overrides DefaultDir.
const EnvTrustDir = "HALLMARK_TRUST_DIR"

// MaxFileSize bounds how much of a trust file is read.
const MaxFileSize = 4 << 20

// ErrFingerprintMismatch is returned when trust material does not have the
// pinned fingerprint.
var ErrFingerprintMismatch = errors.New("trusted root fingerprint mismatch")

// Fingerprint is the fingerprint that pins a trusted root: the lowercase
// hex SHA-256 of the exact trusted_root.json bytes (what `sha256sum
// trusted_root.json` prints). It covers every key and certificate in the
// file: the CA chain, the transparency log key and the CT log key.
func Fingerprint(trustedRootJSON []byte) string {
	d := sha256.Sum256(trustedRootJSON)
	return hex.EncodeToString(d[:])
}

// NormalizeFingerprint accepts a SHA-256 fingerprint as 64 hex digits, in
// any case, optionally prefixed with "sha256:" and optionally with ':'
// between bytes (openssl style), and returns it as lowercase hex.
func NormalizeFingerprint(s string) (string, error) {
	f := strings.ToLower(strings.TrimSpace(s))
	f = strings.TrimPrefix(f, "sha256:")
	f = strings.ReplaceAll(f, ":", "")
	if len(f) != sha256.Size*2 {
		return "", fmt.Errorf("fingerprint %q is not a SHA-256 (want 64 hex digits, as `sha256sum trusted_root.json` prints)", s)
	}
	if _, err := hex.DecodeString(f); err != nil {
		return "", fmt.Errorf("fingerprint %q is not hexadecimal", s)
	}
	return f, nil
}

// CheckFingerprint returns nil when trustedRootJSON has the pinned
// fingerprint, else an error wrapping ErrFingerprintMismatch that shows both.
func CheckFingerprint(trustedRootJSON []byte, pinned string) error {
	want, err := NormalizeFingerprint(pinned)
	if err != nil {
		return err
	}
	if got := Fingerprint(trustedRootJSON); got != want {
		return fmt.Errorf("%w: the trusted root has SHA-256 %s, not the pinned %s", ErrFingerprintMismatch, got, want)
	}
	return nil
}

// DefaultDir is where `hallmark trust init` stores the trust material and
// `hallmark sign`/`verify` look for it: $HALLMARK_TRUST_DIR, else
// ~/.hallmark.
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvTrustDir); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory to keep the trusted root in (set %s): %w", EnvTrustDir, err)
	}
	return filepath.Join(home, ".hallmark"), nil
}

// DefaultTrustedRootPath is DefaultDir/trusted_root.json.
func DefaultTrustedRootPath() (string, error) {
	d, err := DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, TrustedRootFile), nil
}

// DefaultSigningConfigPath is DefaultDir/signing_config.json.
func DefaultSigningConfigPath() (string, error) {
	d, err := DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, SigningConfigFile), nil
}

// Load reads and validates the trusted root at path.
func Load(path string) (*TrustedRoot, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	tr, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tr, nil
}

// LoadSigningConfig reads and validates the signing config at path.
func LoadSigningConfig(path string) (*SigningConfig, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	sc, err := ParseSigningConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && isDefault(path) {
			return nil, fmt.Errorf("no trusted root at %s: run `hallmark trust init --server URL --fingerprint SHA256` or pass --trusted-root FILE: %w", path, err)
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, MaxFileSize)
	}
	return b, nil
}

func isDefault(path string) bool {
	d, err := DefaultDir()
	return err == nil && filepath.Dir(path) == filepath.Clean(d)
}

// LegacyFiles are the trust files cosign v2 reads from its environment
// overrides instead of a trusted root.
type LegacyFiles struct {
	// FulcioChain holds every CA certificate, each chain intermediate
	// first and root last (SIGSTORE_ROOT_FILE: cosign treats self-signed
	// certificates as roots, the others as intermediates).
	FulcioChain []byte
	// RekorKey and CTLogKey hold the transparency logs' and CT logs' public
	// keys as PEM PUBLIC KEY blocks (SIGSTORE_REKOR_PUBLIC_KEY,
	// SIGSTORE_CT_LOG_PUBLIC_KEY_FILE). Nil when there is no such log.
	RekorKey []byte
	CTLogKey []byte
}

// Legacy returns tr as cosign v2's legacy PEM files.
func (tr *TrustedRoot) Legacy() LegacyFiles {
	var out LegacyFiles
	var chain bytes.Buffer
	for _, ca := range tr.CertificateAuthorities {
		for _, c := range ca.CertChain.Certificates {
			_ = pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: c.RawBytes})
		}
	}
	out.FulcioChain = chain.Bytes()
	keys := func(logs []TransparencyLog) []byte {
		var b bytes.Buffer
		for _, l := range logs {
			_ = pem.Encode(&b, &pem.Block{Type: "PUBLIC KEY", Bytes: l.PublicKey.RawBytes})
		}
		return b.Bytes()
	}
	out.RekorKey = keys(tr.Tlogs)
	out.CTLogKey = keys(tr.Ctlogs)
	return out
}

// WriteFileAtomic writes data to path (mode perm) through a temporary file
// in the same directory, synced and renamed over path, so readers never see
// a partial file. An existing file with the same content is left alone.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
