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
)

// The upload write path. Appending a request body is a three-way pipeline:
// the calling goroutine reads a block from the network and hashes it, while
// a writer goroutine writes the previous blocks to the file, so network,
// hashing and disk overlap. Full blocks at block-aligned offsets are written
// with O_DIRECT: the data goes from the block buffer to the device without a
// copy into (and allocation of) page-cache pages, which on the machines we
// measured was the largest single cost of a large upload. The unaligned tail
// of a body, and everything when the filesystem refuses O_DIRECT, is written
// through the page cache. Durability is unchanged: the caller fsyncs the file
// (which also flushes the device's write cache and the file's metadata)
// before it acknowledges anything.
const (
	directAlign = 4096    // O_DIRECT offset, length and address alignment
	blockSize   = 1 << 20 // bytes per pipeline block
	pipeDepth   = 4       // blocks in flight per append
	// flushEvery starts writeback of page-cache writes every this many
	// bytes so the fsync at the end of a large upload has little left.
	flushEvery = 16 << 20
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

// fileWriter writes blocks at their offsets, through O_DIRECT when it can.
type fileWriter struct {
	f        *os.File // the upload's data file (buffered I/O)
	df       *os.File // the same file opened with O_DIRECT; nil until needed
	noDirect bool     // O_DIRECT unavailable: page cache only
	pending  int64    // page-cache bytes written since the last writeback start
	pendOff  int64
}

func (w *fileWriter) write(b block) error {
	p, off := (*b.buf)[:b.n], b.off
	if !w.noDirect && off%directAlign == 0 && len(p) >= directAlign {
		if w.df == nil {
			df, err := os.OpenFile(w.f.Name(), os.O_WRONLY|unix.O_DIRECT, 0)
			if err != nil {
				w.noDirect = true
			} else {
				w.df = df
			}
		}
		if w.df != nil {
			a := len(p) &^ (directAlign - 1)
			_, err := w.df.WriteAt(p[:a], off)
			switch {
			case err == nil:
				p, off = p[a:], off+int64(a)
			case errors.Is(err, syscall.EINVAL):
				// Alignment or filesystem support after all: fall
				// back to the page cache from here on.
				w.noDirect = true
			default:
				return err
			}
		}
	}
	if len(p) == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(p, off); err != nil {
		return err
	}
	if w.pending == 0 {
		w.pendOff = off
	}
	w.pending += int64(len(p))
	if w.pending >= flushEvery {
		// Start writeback of what was just written; an error only means
		// the final fsync does more work.
		_ = unix.SyncFileRange(int(w.f.Fd()), w.pendOff, w.pending, unix.SYNC_FILE_RANGE_WRITE)
		w.pending = 0
	}
	return nil
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
// Three goroutines share pipeDepth blocks: the caller reads a block from r,
// then hands it to a hasher and a writer, which work on it at the same time
// (both only read it); the last of the two to finish frees the block.
func appendData(f *os.File, offset int64, r io.Reader, h hash.Hash) (int64, error) {
	free := make(chan *[]byte, pipeDepth)
	for range pipeDepth {
		free <- blockPool.Get().(*[]byte)
	}
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
	w := &fileWriter{f: f}
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
	pos := offset
	var rerr error
	for !failed.Load() {
		buf := <-free
		k, err := io.ReadFull(r, *buf)
		if k > 0 {
			rc := new(atomic.Int32)
			rc.Store(2)
			j := job{block: block{buf: buf, n: k, off: pos}, refs: rc}
			toHash <- j
			toWrite <- j
			pos += int64(k)
		} else {
			free <- buf
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	stop()
	wg.Wait()
	for range pipeDepth {
		blockPool.Put(<-free)
	}
	return pos - offset, errors.Join(rerr, werr)
}
