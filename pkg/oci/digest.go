package oci

import (
	// Register the hash functions that go-digest looks up by name.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"fmt"
	"strings"

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

// DigestMatches reports whether b hashes to d ("sha256:<hex>" or
// "sha512:<hex>"), and the digest of that algorithm b does hash to (empty
// for another algorithm, which never matches).
func DigestMatches(d string, b []byte) (bool, string) {
	alg, _, ok := strings.Cut(d, ":")
	if !ok {
		return false, ""
	}
	switch alg {
	case "sha256":
		got := digest.SHA256.FromBytes(b).String()
		return got == d, got
	case "sha512":
		got := digest.SHA512.FromBytes(b).String()
		return got == d, got
	}
	return false, ""
}
