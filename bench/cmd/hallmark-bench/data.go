package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
)

const (
	mib        = 1 << 20
	suffixSize = 16
)

// dataset is one file of random (incompressible) bytes, generated once and
// reused across runs. A blob of size S is its first S-16 bytes followed by a
// 16-byte suffix unique to that blob, so every push stores new content (no
// server can skip work because the blob already exists) while the digest
// costs only the 16 bytes: the SHA-256 state after the shared prefix is
// computed once per size.
type dataset struct {
	f      *os.File
	size   int64
	states map[int64][]byte // prefix length -> marshalled sha256 state
	nonce  [8]byte
	seq    atomic.Uint64
}

// payload is one blob: streamed from the data file, never held in memory.
type payload struct {
	d      *dataset
	size   int64
	suffix [suffixSize]byte
	digest string
}

func (p *payload) reader() io.Reader {
	return io.MultiReader(io.NewSectionReader(p.d.f, 0, p.size-suffixSize), bytes.NewReader(p.suffix[:]))
}

// loadData opens (creating if needed) the random data file in dir, big
// enough for every size (MiB), and computes the hash states.
func loadData(e *Env, sizes []int64) (*dataset, error) {
	maxSize := slices.Max(sizes) * mib
	if err := os.MkdirAll(e.DataDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(e.DataDir, fmt.Sprintf("random-%dMiB.bin", maxSize/mib))
	if fi, err := os.Stat(path); err != nil || fi.Size() != maxSize {
		e.Logf("generating %d MiB of random data in %s (once)", maxSize/mib, path)
		if err := writeRandom(path, maxSize); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	d := &dataset{f: f, size: maxSize, states: map[int64][]byte{}}
	if _, err := rand.Read(d.nonce[:]); err != nil {
		return nil, err
	}
	var offsets []int64
	for _, s := range sizes {
		offsets = append(offsets, s*mib-suffixSize)
	}
	slices.Sort(offsets)
	offsets = slices.Compact(offsets)
	h := sha256.New()
	buf := make([]byte, mib)
	var pos int64
	for _, off := range offsets {
		if _, err := io.CopyBuffer(h, io.NewSectionReader(f, pos, off-pos), buf); err != nil {
			return nil, fmt.Errorf("hash %s: %w", path, err)
		}
		pos = off
		st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return nil, err
		}
		d.states[off] = st
	}
	return d, nil
}

func writeRandom(path string, size int64) error {
	tmp := fmt.Sprintf("%s.tmp.%d", path, os.Getpid()) // runs may start together
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	buf := make([]byte, 4*mib)
	for n := int64(0); n < size; n += int64(len(buf)) {
		b := buf[:min(int64(len(buf)), size-n)]
		rand.Read(b)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// newPayload returns a blob of size MiB with content no other payload of
// this or any earlier run has.
func (d *dataset) newPayload(size int64) (*payload, error) {
	p := &payload{d: d, size: size * mib}
	st, ok := d.states[p.size-suffixSize]
	if !ok {
		return nil, fmt.Errorf("no hash state for %d MiB (sizes must be given to loadData)", size)
	}
	copy(p.suffix[:8], d.nonce[:])
	binary.BigEndian.PutUint64(p.suffix[8:], d.seq.Add(1))
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st); err != nil {
		return nil, err
	}
	h.Write(p.suffix[:])
	p.digest = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return p, nil
}
