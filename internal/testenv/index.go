package testenv

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// WaitIndexed waits until the signature index of the server at base has
// no pending jobs (its /metrics gauge hallmark_index_jobs_pending is 0):
// every signature manifest pushed before the call is then indexed, and
// every policy change judged. Indexing runs in the background after a
// push; tests that read the provenance API call this first.
func WaitIndexed(tb testing.TB, base string) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := pendingIndexJobs(base)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testenv: the index of %s still has %d pending jobs after 2 minutes (%v)", base, n, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pendingIndexJobs(base string) (int, error) {
	resp, err := http.Get(strings.TrimSuffix(base, "/") + "/metrics")
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "hallmark_index_jobs_pending "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return -1, sc.Err()
}
