package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, mib); return &b }}

// blobScenario pushes blobs of each size to both servers, alternating which
// server goes first, in both upload modes, then pulls the monolithic ones
// back. Every push goes to a new repository with content never pushed
// before. Throughput is size / wall time of the whole exchange (POST to the
// final 201; GET to the last byte), median of the repetitions.
func blobScenario(ctx context.Context, e *Env) ([]Row, error) {
	d, err := e.dataset()
	if err != nil {
		return nil, err
	}
	fp, err := newFastPuller()
	if err != nil {
		return nil, err
	}
	defer fp.Close()
	var rows []Row
	for _, size := range e.Sizes {
		reps := e.SmallReps
		if size >= 256 {
			reps = e.LargeReps
		}
		type pushed struct{ repo, digest string }
		pulls := map[string][]pushed{} // target name -> blobs to pull
		push := map[string]map[uploadMode][]float64{e.Hallmark.Name: {}, e.Peer.Name: {}}
		for i := range reps {
			for _, mode := range []uploadMode{modeMonolithic, modeStreamed} {
				p, err := d.newPayload(size)
				if err != nil {
					return rows, err
				}
				for _, t := range e.targets(i) {
					repo := fmt.Sprintf("bench/blob%d-%s-%d-%x", size, mode, i, p.suffix[12:])
					dur, err := pushBlob(ctx, t, repo, p.reader(), p.size, p.digest, mode)
					if err != nil {
						return rows, err
					}
					mbs := float64(p.size) / mib / dur.Seconds()
					push[t.Name][mode] = append(push[t.Name][mode], mbs)
					if mode == modeMonolithic {
						pulls[t.Name] = append(pulls[t.Name], pushed{repo, p.digest})
					}
					if e.Verbose {
						e.Logf("push %d MiB %s %s: %s, %.0f MiB/s", size, mode, t.Name, dur.Round(time.Millisecond), mbs)
					}
				}
			}
		}
		for _, mode := range []uploadMode{modeMonolithic, modeStreamed} {
			rows = append(rows, throughputRow(e, fmt.Sprintf("push %d MiB %s", size, mode),
				push[e.Hallmark.Name][mode], push[e.Peer.Name][mode]))
		}
		// Pulls (timed ones with fastPuller: body spliced to /dev/null;
		// with -pin, this process on CPU 0 and the servers on the others).
		// First every blob pushed above is read once, right after the
		// pushes (whatever the server's write path left in the page
		// cache); informational. Then each is verified against its
		// digest (untimed, net/http + sha256) so a fast wrong answer
		// cannot pass, and pulled pullRounds more times: serving a blob
		// that is in the page cache, the case of a hot layer, with the
		// pull target.
		first := map[string][]float64{}
		pull := map[string][]float64{}
		pullOnce := func(i int, t Target, into map[string][]float64, what string) error {
			b := pulls[t.Name][i]
			dur, err := fp.pull(ctx, t, b.repo, b.digest, size*mib)
			if err != nil {
				return err
			}
			mbs := float64(size) / dur.Seconds()
			into[t.Name] = append(into[t.Name], mbs)
			if e.Verbose {
				e.Logf("pull %d MiB %s %s: %s, %.0f MiB/s", size, what, t.Name, dur.Round(time.Millisecond), mbs)
			}
			return nil
		}
		pinned := pin(e, e.Hallmark.PID, e.Peer.PID)
		for i := range reps {
			for _, t := range e.targets(i) {
				if err := pullOnce(i, t, first, "first"); err != nil {
					pinned.unpin()
					return rows, err
				}
			}
		}
		for i := range reps {
			for _, t := range []Target{e.Hallmark, e.Peer} {
				b := pulls[t.Name][i]
				if _, err := pullBlob(ctx, t, b.repo, b.digest, size*mib, true); err != nil {
					pinned.unpin()
					return rows, err
				}
			}
		}
		for r := range e.PullRounds {
			for i := range reps {
				for _, t := range e.targets(i + r) {
					if err := pullOnce(i, t, pull, "warm"); err != nil {
						pinned.unpin()
						return rows, err
					}
				}
			}
		}
		pinned.unpin()
		rows = append(rows, throughputRow(e, fmt.Sprintf("pull %d MiB (page cache)", size), pull[e.Hallmark.Name], pull[e.Peer.Name]))
		fr := throughputRow(e, fmt.Sprintf("pull %d MiB, first read right after push", size), first[e.Hallmark.Name], first[e.Peer.Name])
		fr.Goal = Goal{}
		rows = append(rows, fr)
	}
	return rows, nil
}

func throughputRow(e *Env, name string, h, p []float64) Row {
	return Row{
		Name: name, Unit: "MiB/s", HigherIsBetter: true,
		Hallmark: median(h), Peer: median(p),
		Goal: Goal{Kind: goalRatioMin, Value: 1.2},
		Details: []string{
			fmt.Sprintf("hallmark %s; %s %s (MiB/s)", fmtRuns(h), e.Peer.Name, fmtRuns(p)),
		},
	}
}
