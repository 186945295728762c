//go:build !amd64 || purego

package scrypt

import xscrypt "golang.org/x/crypto/scrypt"

const fastPath = false

func keyFast(password, salt []byte, N, p, keyLen int) ([]byte, error) {
	return xscrypt.Key(password, salt, N, 8, p, keyLen)
}
