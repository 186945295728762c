package keystore

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Dir is a directory of PEM private keys.
type Dir struct{ path string }

// Open returns the key directory at path, creating it (0700) if needed.
func Open(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("keystore: create %s: %w", path, err)
	}
	return &Dir{path: path}, nil
}

// Dir is the directory's path (for files kept beside the keys).
func (d *Dir) Dir() string { return d.path }

// Path returns the file path of the key called name.
func (d *Dir) Path(name string) string { return filepath.Join(d.path, name+".pem") }

// Kind selects the algorithm of a generated key.
type Kind int

// Key kinds.
const (
	ECDSAP256 Kind = iota
	ECDSAP384
	Ed25519
	RSA2048
)

// LoadOrCreate returns the key called name, generating one of kind and
// storing it first if the file does not exist. An existing file of another
// key type is returned as it is; an unreadable one is an error (never
// silently replaced: that would change the server's identity).
func (d *Dir) LoadOrCreate(name string, kind Kind) (crypto.Signer, error) {
	p := d.Path(name)
	raw, err := os.ReadFile(p)
	if err == nil {
		return Parse(raw)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keystore: read %s: %w", p, err)
	}
	k, err := Generate(kind)
	if err != nil {
		return nil, err
	}
	if err := d.Put(name, k); err != nil {
		return nil, err
	}
	return k, nil
}

// Load returns the existing key called name; an error wrapping
// os.ErrNotExist when there is none.
func (d *Dir) Load(name string) (crypto.Signer, error) {
	p := d.Path(name)
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("keystore: read %s: %w", p, err)
	}
	return Parse(raw)
}

// Put stores k as the key called name (PKCS#8 PEM, 0600). It refuses to
// replace an existing key (the error wraps os.ErrExist).
func (d *Dir) Put(name string, k crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return fmt.Errorf("keystore: encode %s: %w", name, err)
	}
	return WriteFile(d.Path(name), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// Remove deletes the key called name (a retired key); a missing key is
// not an error.
func (d *Dir) Remove(name string) error {
	if err := os.Remove(d.Path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keystore: %w", err)
	}
	return nil
}

// Generate creates a new private key of kind (not stored: see Put).
func Generate(kind Kind) (crypto.Signer, error) {
	switch kind {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	}
	return nil, fmt.Errorf("keystore: unknown key kind %d", kind)
}

// Parse decodes a PEM private key (PKCS#8, SEC 1 "EC PRIVATE KEY" or PKCS#1).
func Parse(raw []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, errors.New("keystore: no PEM block in key file")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("keystore: unsupported PEM block %q", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: parse %s: %w", b.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keystore: %T is not a signing key", k)
	}
	return s, nil
}

// WriteFile writes data to path atomically (temp file, fsync, rename, fsync
// of the directory) with mode 0600. It refuses to replace an existing file.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keystore: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("keystore: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keystore: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	// Link, not rename: fails if another process created the file first,
	// so two replicas starting together cannot end up with different keys.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("keystore: %s was created concurrently; restart to load it: %w", path, err)
		}
		return fmt.Errorf("keystore: install %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
