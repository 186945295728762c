package fs

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

// TestAppendData checks the pipelined (O_DIRECT where possible) write path
// against a plain reference: file content and hash, for sizes and offsets
// around the block and alignment boundaries.
func TestAppendData(t *testing.T) {
	src := make([]byte, 3*blockSize+5000)
	rand.Read(src)
	sizes := []int{0, 1, directAlign - 1, directAlign, directAlign + 1, blockSize - 1, blockSize, blockSize + 1,
		2*blockSize + directAlign, len(src)}
	for _, prefix := range []int{0, 100, directAlign, blockSize} {
		for _, n := range sizes {
			for _, oneByte := range []bool{false, true} {
				f, err := os.Create(filepath.Join(t.TempDir(), "data"))
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				// An earlier chunk, written the same way, so the
				// second starts at an unaligned offset when prefix is.
				if _, err := appendData(f, 0, bytes.NewReader(src[:prefix]), h); err != nil {
					t.Fatal(err)
				}
				var r io.Reader = bytes.NewReader(src[prefix : prefix+min(n, len(src)-prefix)])
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				want := src[:prefix+min(n, len(src)-prefix)]
				got, err := appendData(f, int64(prefix), r, h)
				if err != nil {
					t.Fatalf("prefix %d size %d: %v", prefix, n, err)
				}
				if got != int64(len(want)-prefix) {
					t.Fatalf("prefix %d size %d: wrote %d bytes, want %d", prefix, n, got, len(want)-prefix)
				}
				disk, err := os.ReadFile(f.Name())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(disk, want) {
					t.Fatalf("prefix %d size %d: file content differs (%d bytes on disk, want %d)", prefix, n, len(disk), len(want))
				}
				if sum := sha256.Sum256(want); !bytes.Equal(h.Sum(nil), sum[:]) {
					t.Fatalf("prefix %d size %d: hash differs", prefix, n)
				}
				f.Close()
			}
		}
	}
}

// TestAppendDataReadError: a body that fails half-way returns the error
// (the caller then rolls back) and leaves no goroutine blocked.
func TestAppendDataReadError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boom := errors.New("connection reset")
	src := make([]byte, 5*blockSize)
	r := io.MultiReader(bytes.NewReader(src), iotest.ErrReader(boom))
	if _, err := appendData(f, 0, r, sha256.New()); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

type panicReader struct{ n int }

func (p *panicReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		panic("reader exploded")
	}
	k := min(len(b), p.n)
	p.n -= k
	return k, nil
}

// TestAppendDataPanic: a panicking body propagates the panic without
// leaving appendData blocked.
func TestAppendDataPanic(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer func() {
		if recover() == nil {
			t.Fatal("panic was swallowed")
		}
	}()
	appendData(f, 0, &panicReader{n: 3*blockSize + 7}, sha256.New())
}

// TestAppendDataWriteError: a write failure (read-only file) is returned
// and stops reading early.
func TestAppendDataWriteError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := &countingReader{r: bytes.NewReader(make([]byte, 64*blockSize))}
	if _, err := appendData(f, 0, src, sha256.New()); err == nil {
		t.Fatal("write to a read-only file succeeded")
	}
	if src.n >= 64*blockSize {
		t.Errorf("read the whole body (%d bytes) after the first write failed", src.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	k, err := c.r.Read(b)
	c.n += k
	return k, err
}
