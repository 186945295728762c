package tuf

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

// ErrNoKey is returned when the private key of a role's key ID is not held.
var ErrNoKey = errors.New("tuf: private key not held")

// Keys holds the private keys of the repository's roles, by TUF key ID.
type Keys interface {
	// Signer returns the private key whose TUF key ID is keyID, or an
	// error wrapping ErrNoKey.
	Signer(ctx context.Context, keyID string) (crypto.Signer, error)
	// Generate creates a new key, stores it and returns it.
	Generate(ctx context.Context) (crypto.Signer, error)
	// Remove deletes a retired key; a key not held is not an error.
	Remove(ctx context.Context, keyID string) error
}

// KeyID is the TUF key ID of pub: the SHA-256 of its canonical TUF key
// form, as go-tuf and every TUF client compute it.
func KeyID(pub crypto.PublicKey) (string, error) {
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("tuf: %w", err)
	}
	return k.ID()
}

// keystoreKeys keeps the keys with the server's other keys: Ed25519, as
// the items tuf-<key id>.pem of its key store (files in <data-dir>/keys, or
// sealed in the database).
type keystoreKeys struct{ store keystore.Store }

// KeystoreKeys returns Keys kept in the key store s.
func KeystoreKeys(s keystore.Store) Keys { return keystoreKeys{store: s} }

func keyName(keyID string) (string, error) {
	if !isLowerHex(keyID, 64) {
		return "", fmt.Errorf("tuf: key ID %q is not 64 lower-case hex digits", keyID)
	}
	return "tuf-" + keyID, nil
}

func (k keystoreKeys) Signer(ctx context.Context, keyID string) (crypto.Signer, error) {
	name, err := keyName(keyID)
	if err != nil {
		return nil, err
	}
	s, err := keystore.Load(ctx, k.store, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s (restore %s from a backup, or rotate the role's key)", ErrNoKey, keyID, k.store.Where(keystore.KeyItem(name)))
	}
	if err != nil {
		return nil, err
	}
	if id, err := KeyID(s.Public()); err != nil || id != keyID {
		return nil, fmt.Errorf("tuf: %s holds a key whose ID is not %s", k.store.Where(keystore.KeyItem(name)), keyID)
	}
	return s, nil
}

func (k keystoreKeys) Generate(ctx context.Context) (crypto.Signer, error) {
	s, err := keystore.Generate(keystore.Ed25519)
	if err != nil {
		return nil, err
	}
	id, err := KeyID(s.Public())
	if err != nil {
		return nil, err
	}
	name, err := keyName(id)
	if err != nil {
		return nil, err
	}
	if err := keystore.Put(ctx, k.store, name, s, time.Time{}); err != nil {
		return nil, err
	}
	return s, nil
}

func (k keystoreKeys) Remove(ctx context.Context, keyID string) error {
	name, err := keyName(keyID)
	if err != nil {
		return err
	}
	return keystore.Remove(ctx, k.store, name)
}
