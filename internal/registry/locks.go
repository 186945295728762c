package registry

import (
	"strings"
	"sync"
)

// keyedLocks serialises work per key (an upload session id) within this
// process. An entry exists only while a request holds or waits for its
// lock, so the table is as large as the number of requests in flight,
// whatever keys clients name.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	sync.Mutex
	refs int // holders and waiters; guarded by keyedLocks.mu
}

// lock takes the lock of key and returns its release.
func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		// The key is usually a slice of the request path: keep a copy, not
		// the whole path.
		key = strings.Clone(key)
		l = &keyedLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

// len is the number of keys locked or waited for.
func (k *keyedLocks) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
