package fs

import (
	"errors"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hallmark-dev/hallmark/internal/blob"
)

// The upload write path. Appending a request body is a pipeline of three
// goroutines: the caller reads a block from the network, then a hasher and a
// writer work on it at the same time, so network, hashing and disk overlap.
//
// Full blocks are written with O_DIRECT: the data goes from the block buffer
// to the device without a copy into (and allocation of) page-cache pages.
// That was the largest single cost of a large upload on the machines we
// measured (see BENCHMARKS.md), and a large layer being pushed does not
// evict the page cache's hot set (the layers being pulled). The price: a
// blob just pushed is not in the page cache, so its first pull reads from
// disk. Bodies smaller than one block (configs, signatures, small layers),
// the tail of larger ones, and everything when the filesystem refuses
// O_DIRECT, go through the page cache.
//
// Durability is unchanged: the caller fsyncs the file, which also persists
// the file's metadata and flushes the device's write cache, before anything
// is acknowledged.
const (
	directAlign = 4096    // O_DIRECT offset, length and address alignment
	blockSize   = 1 << 20 // bytes per pipeline block
	pipeDepth   = 4       // blocks in flight per append
)

var blockPool = sync.Pool{New: func() any { b := alignedBlock(blockSize); return &b }}

// alignedBlock returns n bytes starting at a directAlign boundary.
func alignedBlock(n int) []byte {
	b := make([]byte, n+directAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	return b[off : off+n : off+n]
}

type block struct {
	buf *[]byte
	n   int
	off int64
}

// fileWriter writes blocks at their offsets, full ones through O_DIRECT when
// it can.
type fileWriter struct {
	f        *os.File // the upload's data file (buffered I/O)
	df       *os.File // the same file opened with O_DIRECT; nil until needed
	noDirect bool     // O_DIRECT unavailable: page cache only
}

func (w *fileWriter) write(b block) error {
	p, off := (*b.buf)[:b.n], b.off
	if b.n == blockSize && off%directAlign == 0 && !w.noDirect {
		if w.df == nil {
			df, err := os.OpenFile(w.f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
			if err != nil {
				w.noDirect = true
			} else {
				w.df = df
			}
		}
		if w.df != nil {
			_, err := w.df.WriteAt(p, off)
			if !errors.Is(err, syscall.EINVAL) {
				return err
			}
			// The filesystem does not support O_DIRECT after all (or not
			// with this alignment): page cache from here on.
			w.noDirect = true
		}
	}
	_, err := w.f.WriteAt(p, off)
	return err
}

func (w *fileWriter) close() error {
	if w.df != nil {
		return w.df.Close()
	}
	return nil
}

// appendData writes everything r yields to f from offset on, adding it to
// h. It returns the bytes read and written; on error the caller must roll
// the file and hash back (some of the bytes may have been written).
//
// A body that fits in one block is hashed and written inline. A larger one
// goes through the pipeline: up to pipeDepth blocks, taken from the pool as
// needed; the caller reads a block from r, then hands it to a hasher and a
// writer goroutine, which work on it at the same time (both only read it);
// the last of the two to finish frees the block.
func appendData(f *os.File, offset int64, r io.Reader, h hash.Hash) (int64, error) {
	w := &fileWriter{f: f}
	first := blockPool.Get().(*[]byte)
	k, err := blob.ReadBlock(r, *first)
	if err != nil { // the whole body is in this block (or r failed)
		if err == io.EOF {
			err = nil
		}
		if k > 0 {
			h.Write((*first)[:k])
			err = errors.Join(err, w.write(block{buf: first, n: k, off: offset}), w.close())
		}
		blockPool.Put(first)
		return int64(k), err
	}

	free := make(chan *[]byte, pipeDepth)
	allocated := 1
	type job struct {
		block
		refs *atomic.Int32
	}
	release := func(j job) {
		if j.refs.Add(-1) == 0 {
			free <- j.buf
		}
	}
	toWrite := make(chan job, pipeDepth)
	toHash := make(chan job, pipeDepth)
	var wg sync.WaitGroup
	var failed atomic.Bool
	var werr error
	wg.Go(func() {
		for j := range toWrite {
			if werr == nil {
				if werr = w.write(j.block); werr != nil {
					failed.Store(true)
				}
			}
			release(j)
		}
		if err := w.close(); werr == nil {
			werr = err
		}
	})
	wg.Go(func() {
		for j := range toHash {
			h.Write((*j.buf)[:j.n])
			release(j)
		}
	})
	// stop ends both goroutines once they have drained their queues. It
	// also runs if r panics, so nothing is left blocked.
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			close(toWrite)
			close(toHash)
		}
	}
	defer stop()
	send := func(buf *[]byte, n int, off int64) {
		rc := new(atomic.Int32)
		rc.Store(2)
		j := job{block: block{buf: buf, n: n, off: off}, refs: rc}
		toHash <- j
		toWrite <- j
	}
	send(first, k, offset)
	pos := offset + int64(k)
	var rerr error
	for !failed.Load() {
		var buf *[]byte
		select {
		case buf = <-free:
		default:
			if allocated < pipeDepth {
				buf = blockPool.Get().(*[]byte)
				allocated++
			} else {
				buf = <-free
			}
		}
		k, err := blob.ReadBlock(r, *buf)
		if k > 0 {
			send(buf, k, pos)
			pos += int64(k)
		} else {
			free <- buf
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	stop()
	wg.Wait()
	for range allocated {
		blockPool.Put(<-free)
	}
	return pos - offset, errors.Join(rerr, werr)
}
