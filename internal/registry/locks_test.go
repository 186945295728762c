package registry

import (
	"sync"
	"testing"
)

// TestKeyedLocksForgetReleasedKeys: the table holds only keys in use, and
// a key's lock still excludes concurrent holders.
func TestKeyedLocksForgetReleasedKeys(t *testing.T) {
	var k keyedLocks
	for i := range 1000 {
		k.lock(string(rune('a'+i%26)) + "-session")()
	}
	if n := k.len(); n != 0 {
		t.Fatalf("%d keys kept after every lock was released", n)
	}

	const workers, rounds = 8, 200
	inside := map[string]int{}
	var wg sync.WaitGroup
	var mu sync.Mutex // guards inside (the keyed lock is what is tested)
	for w := range workers {
		wg.Go(func() {
			key := []string{"one", "two"}[w%2]
			for range rounds {
				unlock := k.lock(key)
				mu.Lock()
				inside[key]++
				if inside[key] != 1 {
					t.Errorf("%d holders of %q at once", inside[key], key)
				}
				mu.Unlock()
				mu.Lock()
				inside[key]--
				mu.Unlock()
				unlock()
			}
		})
	}
	wg.Wait()
	if n := k.len(); n != 0 {
		t.Fatalf("%d keys kept after concurrent use", n)
	}
}
