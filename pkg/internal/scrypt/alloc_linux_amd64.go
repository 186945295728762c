//go:build !purego

package scrypt

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// populateStep is how much memory one MADV_POPULATE_WRITE call maps in.
const populateStep = 1 << 20

// allocate returns size bytes of zeroed scratch memory as words, and a
// function that gives it back to the kernel (in the background).
//
// Faulting in ROMix's tens of MiB page by page costs about a quarter of the
// whole derivation. The first loop writes the memory front to back, so a
// goroutine maps the pages in ahead of it (MADV_POPULATE_WRITE, which never
// changes their contents, so it is harmless if the writer overtakes it).
// That work then runs on another CPU when there is one.
func allocate(size int) ([]uint32, func(), error) {
	m, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, fmt.Errorf("scrypt: allocating %d MiB: %w", size>>20, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for off := 0; off < len(m); off += populateStep {
			if unix.Madvise(m[off:min(off+populateStep, len(m))], unix.MADV_POPULATE_WRITE) != nil {
				return // an older kernel: the pages fault in as they are written
			}
		}
	}()
	// Let the new goroutine start now, on this P: otherwise it waits
	// behind the derivation, which does not yield for milliseconds.
	runtime.Gosched()
	release := func() {
		// Unmapping tens of MiB takes milliseconds; nothing waits for it.
		go func() {
			<-done
			_ = unix.Munmap(m)
		}()
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&m[0])), size/4), release, nil
}
