//go:build !purego

package scrypt

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of an x86-64 transparent huge page. The scratch
// memory is mapped in steps of this size.
const hugePage = 2 << 20

// slowHugeStep is how long mapping in one huge page may take before the
// rest of the scratch memory is mapped with small pages instead. A huge page
// normally takes ~0.1 ms; small pages take ~0.7 ms for the same 2 MiB. Huge
// pages that take longer are coming from memory the hypervisor has not
// backed yet (or from compaction), which costs several milliseconds each.
var slowHugeStep = time.Millisecond

// allocate returns size bytes of zeroed scratch memory as words, and a
// function that gives it back to the kernel (in the background).
//
// Two things make the memory itself cost as much as a third of the
// derivation: faulting in and freeing tens of MiB page by page, and a TLB
// miss on most random reads of ROMix's second loop. So the memory is aligned
// for and asks for transparent huge pages, and a goroutine maps it in
// (MADV_POPULATE_WRITE, which never changes contents, so it is harmless when
// the first loop overtakes it) ahead of the first loop, on another CPU when
// there is one. Where huge pages turn out to be slow to come by, the rest is
// mapped with small pages.
func allocate(size int) ([]uint32, func(), error) {
	mm, err := unix.Mmap(-1, 0, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, nil, fmt.Errorf("scrypt: allocating %d MiB: %w", size>>20, err)
	}
	off := 0
	if a := int(uintptr(unsafe.Pointer(&mm[0])) % hugePage); a != 0 {
		off = hugePage - a
	}
	m := mm[off : off+size]
	huge := unix.Madvise(m, unix.MADV_HUGEPAGE) == nil
	done := make(chan struct{})
	go func(slow time.Duration) {
		defer close(done)
		populate(m, huge, slow)
	}(slowHugeStep)
	// Let the new goroutine start now, on this P: otherwise it waits
	// behind the derivation, which does not yield for milliseconds.
	runtime.Gosched()
	release := func() {
		// Unmapping can take milliseconds; nothing waits for it.
		go func() {
			<-done
			_ = unix.Munmap(mm)
		}()
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&m[0])), size/4), release, nil
}

// populate maps m in, front to back, switching to small pages after a huge
// page that took longer than slow.
func populate(m []byte, huge bool, slow time.Duration) {
	for off := 0; off < len(m); off += hugePage {
		end := min(off+hugePage, len(m))
		start := time.Now()
		if populateRange(m[off:end]) != nil {
			return // an older kernel: the pages fault in as they are written
		}
		if huge && time.Since(start) > slow && end < len(m) {
			huge = false
			_ = unix.Madvise(m[end:], unix.MADV_NOHUGEPAGE)
		}
	}
}

// populateRange maps m in with MADV_POPULATE_WRITE as a raw system call.
// Through the scheduler-aware call, the runtime hands this goroutine's P on
// and wakes threads every few tens of microseconds while the call runs;
// that churn lands on the CPU the derivation runs on and slows it by a
// fifth. A raw call keeps the P for the duration instead (up to a few
// milliseconds per 2 MiB), which only delays other goroutines, and the
// derivation holds the other P anyway.
func populateRange(m []byte) error {
	_, _, errno := unix.RawSyscall(unix.SYS_MADVISE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), unix.MADV_POPULATE_WRITE)
	if errno != 0 {
		return errno
	}
	return nil
}
