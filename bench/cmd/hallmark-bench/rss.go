package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssScenario uploads one -rss-size MiB blob to each server, monolithic and
// streamed, and reports the server's peak resident set size during the
// uploads: the kernel's high-water mark (VmHWM, reset first through
// /proc/PID/clear_refs) and, as a cross-check, the largest VmRSS sampled
// every 5 ms. Written blob data sits in the page cache, which is not part of
// a process's RSS.
func rssScenario(ctx context.Context, e *Env) ([]Row, error) {
	d, err := e.dataset()
	if err != nil {
		return nil, err
	}
	peak := map[string]float64{}
	var details []string
	for _, mode := range []uploadMode{modeMonolithic, modeStreamed} {
		p, err := d.newPayload(e.RSSSize)
		if err != nil {
			return nil, err
		}
		for _, t := range []Target{e.Hallmark, e.Peer} {
			if t.PID == 0 {
				details = append(details, t.Name+": no pid given, RSS not measured")
				continue
			}
			base, _ := procStatusKB(t.PID, "VmRSS")
			resetErr := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", t.PID), []byte("5"), 0)
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var sampled int64
			wg.Go(func() {
				tk := time.NewTicker(5 * time.Millisecond)
				defer tk.Stop()
				for {
					if kb, err := procStatusKB(t.PID, "VmRSS"); err == nil && kb > sampled {
						sampled = kb
					}
					select {
					case <-stop:
						return
					case <-tk.C:
					}
				}
			})
			repo := fmt.Sprintf("bench/rss-%s-%x", mode, p.suffix[12:])
			dur, err := pushBlob(ctx, t, repo, p.reader(), p.size, p.digest, mode)
			close(stop)
			wg.Wait()
			if err != nil {
				return nil, err
			}
			hwm, herr := procStatusKB(t.PID, "VmHWM")
			note := "VmHWM reset before the upload"
			if resetErr != nil || herr != nil {
				// Without a reset VmHWM is the lifetime peak; use the samples.
				hwm, note = 0, fmt.Sprintf("VmHWM not usable (%v %v), sampled VmRSS only", resetErr, herr)
			}
			mb := float64(max(hwm, sampled)) / 1024
			peak[t.Name] = max(peak[t.Name], mb)
			details = append(details, fmt.Sprintf("%s %s %d MiB in %s: VmHWM %.1f MiB, max sampled VmRSS %.1f MiB, VmRSS before %.1f MiB (%s)",
				t.Name, mode, e.RSSSize, dur.Round(time.Millisecond), float64(hwm)/1024, float64(sampled)/1024, float64(base)/1024, note))
		}
	}
	return []Row{{
		Name: fmt.Sprintf("peak RSS receiving a %d MiB blob", e.RSSSize), Unit: "MiB", HigherIsBetter: false,
		Hallmark: peak[e.Hallmark.Name], Peer: peak[e.Peer.Name],
		Goal:    Goal{Kind: goalAbsBelow, Value: 128},
		Details: details,
	}}, nil
}

// procStatusKB reads a "Key: N kB" field of /proc/PID/status.
func procStatusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, key)
}
