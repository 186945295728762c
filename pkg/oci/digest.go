package oci

import (
	// Register the hash functions that go-digest looks up by name.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// ParseDigest parses and validates a digest, accepting only algorithms the
// registry can compute (sha256 and sha512).
func ParseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid digest %q: %w", s, err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return d, nil
	default:
		return "", fmt.Errorf("digest algorithm %q is not supported; use sha256 or sha512", d.Algorithm())
	}
}
