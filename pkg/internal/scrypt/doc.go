// Package scrypt implements the scrypt key derivation function (RFC 7914)
// for the encrypted key files cosign writes (N = 2^15..2^17, r = 8, p = 1).
//
// The result is the same as golang.org/x/crypto/scrypt's, which this package
// falls back to for parameters and platforms its fast path does not cover.
// The fast path (amd64) runs ROMix in assembly: with p = 1 scrypt is a single
// dependency chain of Salsa20 steps, so it keeps the state in general
// registers (scalar add, rotate and xor have one-cycle latency) and hands
// the memory to the kernel ahead of use. The memory cost (128 * r * N bytes)
// and so the cost of guessing a password are unchanged.
package scrypt
