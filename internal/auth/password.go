package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2id parameters (OWASP's recommendation: 19 MiB, 2 passes, 1 lane).
// They are recorded in every hash, so they can be raised later without
// invalidating stored passwords.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	// maxPasswordLength bounds the work one login can cause.
	maxPasswordLength = 1024
)

// Bounds on the parameters accepted from a stored hash, so a corrupted or
// hostile row cannot make a login allocate gigabytes.
const (
	maxArgonMemory = 1 << 20 // 1 GiB in KiB
	maxArgonTime   = 16
)

// ErrBadHash is returned for a stored password hash that cannot be parsed.
var ErrBadHash = errors.New("stored password hash is malformed")

// HashPassword returns an encoded argon2id hash of password in the PHC
// string format: $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("password is empty")
	}
	if len(password) > maxPasswordLength {
		return "", fmt.Errorf("password is longer than %d bytes", maxPasswordLength)
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// hasher bounds how many argon2id computations run at once: each takes
// ~19 MiB and a few tens of milliseconds of CPU, so unbounded concurrency
// would let a burst of logins exhaust memory.
type hasher struct{ sem chan struct{} }

func newHasher(n int) *hasher {
	if n < 1 {
		n = 1
	}
	return &hasher{sem: make(chan struct{}, n)}
}

// verify reports whether password matches the encoded hash. It waits for a
// free slot or ctx.
func (h *hasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-h.sem }()
	return VerifyPassword(encoded, password)
}

// VerifyPassword reports whether password matches the encoded argon2id hash,
// comparing in constant time.
func VerifyPassword(encoded, password string) (bool, error) {
	if len(password) > maxPasswordLength {
		return false, nil
	}
	p, err := parseHash(encoded)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

type argonParams struct {
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

func parseHash(encoded string) (argonParams, error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return argonParams{}, fmt.Errorf("%w: not an argon2id PHC string", ErrBadHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return argonParams{}, fmt.Errorf("%w: unsupported argon2 version %q", ErrBadHash, parts[2])
	}
	var p argonParams
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return argonParams{}, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return argonParams{}, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return argonParams{}, fmt.Errorf("%w: parameter %q", ErrBadHash, kv)
			}
			p.threads = uint8(n)
		default:
			return argonParams{}, fmt.Errorf("%w: unknown parameter %q", ErrBadHash, k)
		}
	}
	if p.time < 1 || p.time > maxArgonTime || p.memory < 8 || p.memory > maxArgonMemory || p.threads < 1 {
		return argonParams{}, fmt.Errorf("%w: parameters out of range", ErrBadHash)
	}
	var err error
	b64 := base64.RawStdEncoding
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return argonParams{}, fmt.Errorf("%w: salt", ErrBadHash)
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return argonParams{}, fmt.Errorf("%w: key", ErrBadHash)
	}
	return p, nil
}
