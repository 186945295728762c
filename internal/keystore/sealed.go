package keystore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// KEKSize is the size of a key encryption key: AES-256.
const KEKSize = 32

// ErrWrongKEK is returned for an item the key encryption key does not open.
var ErrWrongKEK = errors.New("keystore: the key encryption key does not open the keys in the database; every replica needs the same key (--key-encryption-key-file or HALLMARK_KEY_ENCRYPTION_KEY)")

// ParseKEK decodes a key encryption key as given in its file or
// environment variable: 32 bytes, base64 (`openssl rand -base64 32`) or
// hex (`openssl rand -hex 32`), surrounding white space ignored. Errors
// never repeat the input.
func ParseKEK(raw []byte) ([]byte, error) {
	s := string(bytes.TrimSpace(raw))
	for _, dec := range []func(string) ([]byte, error){
		hex.DecodeString, base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString,
	} {
		if k, err := dec(s); err == nil && len(k) == KEKSize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("keystore: the key encryption key must be %d random bytes in base64 (openssl rand -base64 32) or hex (openssl rand -hex 32); got %d characters that are neither", KEKSize, len(s))
}

// Sealed is a Store that encrypts every item's data (AES-256-GCM with the
// key encryption key, a random nonce per item, the item name as
// associated data, so a row moved to another name does not open) before
// it reaches the Store underneath (a database table), and decrypts what
// it reads.
type Sealed struct {
	under Store
	aead  cipher.AEAD
}

var _ Store = (*Sealed)(nil)

// sealVersion is the first byte of sealed data: the format (nonce, then
// ciphertext with tag), so a later format or key can be told apart.
const sealVersion = 1

// NewSealed returns the store that keeps its items sealed with kek (32
// bytes, see ParseKEK) in under.
func NewSealed(under Store, kek []byte) (*Sealed, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("keystore: the key encryption key must be %d bytes", KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	return &Sealed{under: under, aead: aead}, nil
}

func associated(name string) []byte { return []byte("hallmark keystore item\x00" + name) }

func (s *Sealed) seal(name string, data []byte) ([]byte, error) {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(data)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("keystore: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], data, associated(name)), nil
}

// open decrypts what seal wrote for name.
func (s *Sealed) open(name string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("keystore: item %s is not sealed data of this version (corrupt row?)", name)
	}
	data, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], associated(name))
	if err != nil {
		return nil, fmt.Errorf("%w (item %s)", ErrWrongKEK, name)
	}
	return data, nil
}

// Get implements Store.
func (s *Sealed) Get(ctx context.Context, name string) (Item, error) {
	it, err := s.under.Get(ctx, name)
	if err != nil {
		return Item{}, err
	}
	if it.Data, err = s.open(name, it.Data); err != nil {
		return Item{}, err
	}
	return it, nil
}

// Create implements Store.
func (s *Sealed) Create(ctx context.Context, it Item) error {
	var err error
	if it.Data, err = s.seal(it.Name, it.Data); err != nil {
		return err
	}
	return s.under.Create(ctx, it)
}

// Delete implements Store.
func (s *Sealed) Delete(ctx context.Context, name string) error { return s.under.Delete(ctx, name) }

// List implements Store.
func (s *Sealed) List(ctx context.Context, prefix string) ([]Item, error) {
	items, err := s.under.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	for i := range items {
		if items[i].Data, err = s.open(items[i].Name, items[i].Data); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// Where implements Store.
func (s *Sealed) Where(name string) string { return s.under.Where(name) + " (sealed)" }
