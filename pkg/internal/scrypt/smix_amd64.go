//go:build !purego

package scrypt

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/binary"
)

const fastPath = true

// blockWords is the size of one BlockMix block with r = 8, in 32-bit words.
const blockWords = 2 * 8 * 16

//go:noescape
func fillScalar(v *uint32, k uintptr, last *uint32)

//go:noescape
func mixScalar(x, y, v *uint32, mask, k uintptr)

// chunk is how many BlockMix calls one assembly call makes. Assembly
// functions cannot be preempted, so the work is handed over in pieces of a
// millisecond or so.
const chunk = 2048

// keyFast is Key for r = 8 and a power-of-two N no larger than maxN.
func keyFast(password, salt []byte, N, p, keyLen int) ([]byte, error) {
	b, err := pbkdf2.Key(sha256.New, string(password), salt, 1, p*4*blockWords)
	if err != nil {
		return nil, err
	}
	v, release, err := allocate(N * blockWords * 4)
	if err != nil {
		return nil, err
	}
	defer release()
	for i := 0; i < p; i++ {
		romix(b[i*4*blockWords:(i+1)*4*blockWords], v, N)
	}
	return pbkdf2.Key(sha256.New, string(password), b, 1, keyLen)
}

// romix runs scrypt's ROMix on the 1 KiB block b in place, using v
// (N blocks) as scratch.
func romix(b []byte, v []uint32, n int) {
	var x, y [blockWords]uint32
	for i := range x {
		v[i] = binary.LittleEndian.Uint32(b[i*4:])
	}
	fill(v, n, &x)
	mix(&x, &y, v, n)
	for i, w := range x {
		binary.LittleEndian.PutUint32(b[i*4:], w)
	}
}

// fill writes v[k+1] = BlockMix(v[k]) for every block of v and leaves
// BlockMix of the last one in x.
func fill(v []uint32, n int, x *[blockWords]uint32) {
	_ = v[n*blockWords-1]
	for s := 0; s < n; s += chunk {
		k := min(chunk, n-s)
		last := &x[0]
		if s+k < n {
			last = &v[(s+k)*blockWords]
		}
		fillScalar(&v[s*blockWords], uintptr(k), last)
	}
}

// mix runs ROMix's second loop: n times x = BlockMix(x xor v[Integerify(x)]).
// n is a power of two, so chunk-sized pieces are even and end with the
// result back in x.
func mix(x, y *[blockWords]uint32, v []uint32, n int) {
	_ = v[n*blockWords-1]
	for s := 0; s < n; s += chunk {
		mixScalar(&x[0], &y[0], &v[0], uintptr(n-1), uintptr(min(chunk, n-s)))
	}
}
