package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinning places this process on CPU 0 and the servers on CPUs 1..n-1 for
// the duration of a measurement, then gives everyone all CPUs back. Used for
// single-stream pulls: on a 2-CPU machine a loopback transfer is otherwise
// bimodal, depending on whether the scheduler happens to put client and
// server on the same CPU (measured here: 2 vs 6 GB/s for the same server),
// which says more about the scheduler than about the server.
type pinning struct {
	pids []int
	all  unix.CPUSet
}

// pin applies the split; it returns nil (and pins nothing) with fewer than
// 2 CPUs or when affinity cannot be set.
func pin(e *Env, pids ...int) *pinning {
	n := runtime.NumCPU()
	if !e.Pin || n < 2 {
		return nil
	}
	p := &pinning{pids: append([]int{os.Getpid()}, pids...)}
	for i := range n {
		p.all.Set(i)
	}
	var client, server unix.CPUSet
	client.Set(0)
	for i := 1; i < n; i++ {
		server.Set(i)
	}
	if err := setAffinity(os.Getpid(), &client); err != nil {
		e.Logf("not pinning (%v)", err)
		p.unpin()
		return nil
	}
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		if err := setAffinity(pid, &server); err != nil {
			e.Logf("not pinning (%v)", err)
			p.unpin()
			return nil
		}
	}
	return p
}

func (p *pinning) unpin() {
	if p == nil {
		return
	}
	for _, pid := range p.pids {
		if pid != 0 {
			setAffinity(pid, &p.all)
		}
	}
}

// setAffinity sets the CPU set of every thread of pid (new threads inherit
// it from the thread that creates them).
func setAffinity(pid int, set *unix.CPUSet) error {
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("sched_setaffinity(%d): %w", tid, err)
		}
	}
	return nil
}
