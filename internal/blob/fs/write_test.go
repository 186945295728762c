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
			for _, small := range []bool{false, true} {
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
				if small {
					r = &smallReader{r: r} // short reads, as from a socket
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

type smallReader struct{ r io.Reader }

func (s *smallReader) Read(b []byte) (int, error) { return s.r.Read(b[:min(len(b), 777)]) }

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

// TestAppendDataWriteError: a write failure is returned and stops reading
// early. The file is opened read-only and the offset is unaligned, so every
// write goes through that descriptor (the O_DIRECT one is only for aligned
// offsets) and fails.
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
	if _, err := appendData(f, 1, src, sha256.New()); err == nil {
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

// TestWriterUsesDirectIO: a full aligned block goes through the O_DIRECT
// descriptor (where the filesystem supports it), a short one does not, and
// both land in the file.
func TestWriterUsesDirectIO(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	full := alignedBlock(blockSize)
	rand.Read(full)
	w := &fileWriter{f: f}
	short := alignedBlock(blockSize)
	copy(short, "tail")
	if err := w.write(block{buf: &short, n: 4, off: blockSize}); err != nil {
		t.Fatal(err)
	}
	if w.df != nil {
		t.Error("a short block opened the O_DIRECT descriptor")
	}
	if err := w.write(block{buf: &full, n: blockSize, off: 0}); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if w.noDirect {
		t.Skip("the filesystem of t.TempDir() refuses O_DIRECT; the page-cache fallback was used")
	}
	if w.df == nil {
		t.Fatal("a full aligned block did not use O_DIRECT")
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(append([]byte{}, full...), "tail"...)) {
		t.Fatal("file content differs")
	}
}
