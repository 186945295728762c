package verify

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"maps"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// Trust is the trust material signatures are checked against: any number
// of trusted roots (certificate authorities, CT logs and transparency logs,
// each trusted within its validFor window) and public keys. A signature
// is verifiable when some of it covers the signature: a certificate chains
// to one of the CAs, or a key verifies it; its SCT and log entry are from
// one of the logs.
type Trust struct {
	CAs []root.CA
	// CTLogKeys and TlogKeys map hex log IDs to keys.
	CTLogKeys map[string]root.LogKey
	TlogKeys  map[string]root.LogKey
	// Keys verify key-based signatures.
	Keys []Key

	// anchors speeds up chains through the CAs' intermediates (NewTrust).
	anchors *anchorCache
}

// Key is a trusted public key.
type Key struct {
	PublicKey crypto.PublicKey
	// Fingerprint is "SHA256:<base64>" of the key's PKIX DER (Fingerprint).
	Fingerprint string
	der         []byte
}

// NewKey returns pub as a trusted key, with its fingerprint.
func NewKey(pub crypto.PublicKey) (Key, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return Key{}, err
	}
	sum := sha256.Sum256(der)
	return Key{PublicKey: pub, Fingerprint: "SHA256:" + base64.StdEncoding.EncodeToString(sum[:]), der: der}, nil
}

// DER is the key's PKIX DER, the form a log entry records it in.
func (k Key) DER() []byte {
	if k.der == nil {
		k.der, _ = x509.MarshalPKIXPublicKey(k.PublicKey)
	}
	return k.der
}

// NewTrust returns the union of trusted roots (each root's CAs and log
// keys) and keys. It is safe for concurrent use by any number of Verify
// calls; it remembers which intermediates of its CAs it has verified, so
// that each later certificate they issue costs one signature check.
func NewTrust(roots []*root.Material, keys ...Key) *Trust {
	t := &Trust{CTLogKeys: map[string]root.LogKey{}, TlogKeys: map[string]root.LogKey{}, Keys: keys, anchors: &anchorCache{}}
	for _, m := range roots {
		t.AddRoot(m)
	}
	return t
}

// AddRoot adds a trusted root's CAs and log keys.
func (t *Trust) AddRoot(m *root.Material) {
	if m == nil {
		return
	}
	t.CAs = append(t.CAs, m.CAs...)
	if t.CTLogKeys == nil {
		t.CTLogKeys = map[string]root.LogKey{}
	}
	if t.TlogKeys == nil {
		t.TlogKeys = map[string]root.LogKey{}
	}
	maps.Copy(t.CTLogKeys, m.CTLogKeys)
	maps.Copy(t.TlogKeys, m.TlogKeys)
}

// ParseKey parses a PEM public key (or the key of a PEM certificate) as a
// trusted key.
func ParseKey(pemBytes []byte) (Key, error) {
	pub, err := ParsePublicKey(pemBytes)
	if err != nil {
		return Key{}, err
	}
	return NewKey(pub)
}
