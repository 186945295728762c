package scrypt

import (
	xscrypt "golang.org/x/crypto/scrypt"
)

// maxN bounds the fast path's memory (1 GiB); larger work factors go to
// x/crypto, which has its own limits.
const maxN = 1 << 20

// Key derives a keyLen-byte key from password and salt with scrypt
// parameters N (a power of two greater than 1), r and p, exactly as RFC 7914
// and golang.org/x/crypto/scrypt.Key do.
func Key(password, salt []byte, N, r, p, keyLen int) ([]byte, error) {
	if !fastPath || r != 8 || p < 1 || p > 1<<10 || N < 2 || N > maxN || N&(N-1) != 0 || keyLen < 1 {
		return xscrypt.Key(password, salt, N, r, p, keyLen)
	}
	return keyFast(password, salt, N, p, keyLen)
}
