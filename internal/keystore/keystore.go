package keystore

import (
	"context"
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
	"io/fs"
	"time"
)

// Item is one thing a Store keeps: a PEM private key, a certificate that
// belongs with one, or a small record (a rotation time, a generated
// secret). Items are created once and never rewritten.
type Item struct {
	Name    string // e.g. "rekor.pem", "ca-root-cert.pem", "ca-activated-2"
	Data    []byte
	Created time.Time // when the item was created (zero: now)
}

// Store keeps the server's keys and the records kept with them. Two
// implementations: Dir (files in <data-dir>/keys, the embedded default)
// and Sealed over a database table (replicas sharing PostgreSQL), whose
// items are encrypted at rest.
//
// Missing items are errors wrapping fs.ErrNotExist; creating an existing
// one fails with an error wrapping fs.ErrExist, so two replicas creating
// the same item at once end up with one (the loser reads the winner's).
type Store interface {
	// Get returns the item called name.
	Get(ctx context.Context, name string) (Item, error)
	// Create stores it unless an item of that name exists.
	Create(ctx context.Context, it Item) error
	// Delete removes the item called name (a retired key); a missing item
	// is not an error.
	Delete(ctx context.Context, name string) error
	// List returns the items whose names start with prefix, by name.
	List(ctx context.Context, prefix string) ([]Item, error)
	// Where names the item's location for messages: a file path, or the
	// database item. It never contains a secret.
	Where(name string) string
}

// KeyItem is the item name of the private key called name.
func KeyItem(name string) string { return name + ".pem" }

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
// storing it first if s has none. When another process stores one first,
// that key is returned. An existing key of another type is returned as it
// is; an unreadable one is an error (never silently replaced: that would
// change the server's identity).
func LoadOrCreate(ctx context.Context, s Store, name string, kind Kind) (crypto.Signer, error) {
	it, err := LoadOrCreateItem(ctx, s, KeyItem(name), func() ([]byte, error) {
		k, err := Generate(kind)
		if err != nil {
			return nil, err
		}
		return encode(name, k)
	})
	if err != nil {
		return nil, err
	}
	return parseItem(s, it)
}

// Load returns the existing key called name; an error wrapping
// fs.ErrNotExist when there is none.
func Load(ctx context.Context, s Store, name string) (crypto.Signer, error) {
	it, err := s.Get(ctx, KeyItem(name))
	if err != nil {
		return nil, err
	}
	return parseItem(s, it)
}

func parseItem(s Store, it Item) (crypto.Signer, error) {
	k, err := Parse(it.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Where(it.Name), err)
	}
	return k, nil
}

// Put stores k as the key called name (PKCS#8 PEM), created at created
// (zero: now). It refuses to replace an existing key (the error wraps
// fs.ErrExist).
func Put(ctx context.Context, s Store, name string, k crypto.Signer, created time.Time) error {
	data, err := encode(name, k)
	if err != nil {
		return err
	}
	return s.Create(ctx, Item{Name: KeyItem(name), Data: data, Created: created})
}

func encode(name string, k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("keystore: encode %s: %w", name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Remove deletes the key called name (a retired key); a missing key is
// not an error.
func Remove(ctx context.Context, s Store, name string) error {
	return s.Delete(ctx, KeyItem(name))
}

// LoadOrCreateItem returns the item called name, first storing the one
// create makes if s has none. When another process stores one first, its
// item is returned: every replica gets the same.
func LoadOrCreateItem(ctx context.Context, s Store, name string, create func() ([]byte, error)) (Item, error) {
	it, err := s.Get(ctx, name)
	if !errors.Is(err, fs.ErrNotExist) {
		return it, err
	}
	data, err := create()
	if err != nil {
		return Item{}, err
	}
	it = Item{Name: name, Data: data}
	if err := s.Create(ctx, it); errors.Is(err, fs.ErrExist) {
		return s.Get(ctx, name)
	} else if err != nil {
		return Item{}, err
	}
	return it, nil
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
