package auth

import (
	"math"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// RateLimit is a token bucket for failed logins: Burst failures are
// tolerated, then one more per Every. Zero values take the defaults.
type RateLimit struct {
	Burst int
	Every time.Duration
}

// maxBuckets bounds the limiter's memory; when it is reached, buckets that
// have refilled completely (carrying no information) are dropped.
const maxBuckets = 100_000

// limiter counts failed logins per key in memory. Each replica has its own
// (a client spreading guesses over n replicas gets n times the budget);
// that is documented, and n is small.
type limiter struct {
	mu      sync.Mutex
	rate    RateLimit
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
	// reported is when a throttle event for this key was last audited.
	reported time.Time
}

func newLimiter(rl RateLimit) *limiter {
	return &limiter{rate: rl, buckets: map[string]*bucket{}}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	if now.After(b.at) {
		b.tokens = math.Min(float64(l.rate.Burst), b.tokens+now.Sub(b.at).Seconds()/l.rate.Every.Seconds())
		b.at = now
	}
}

// check reports whether key may make another attempt; when not, it says
// how long until it may, and whether this throttle should be audited (at
// most once per Every per key, so a flood cannot flood the audit log).
func (l *limiter) check(key string, now time.Time) (ok bool, retry time.Duration, report bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		return true, 0, false
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return true, 0, false
	}
	retry = time.Duration((1 - b.tokens) * float64(l.rate.Every))
	if retry < time.Second {
		retry = time.Second
	}
	if now.Sub(b.reported) >= l.rate.Every {
		b.reported = now
		report = true
	}
	return false, retry, report
}

// fail records a failed attempt by key.
func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.take(key, now)
}

// allow takes one token from key's bucket if it has one: it reports
// whether an event of key may happen now (used to sample events, such as
// audit records of a flood, to at most Burst then one per Every per key).
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.take(key, now) >= 0
}

// take removes one token from key's bucket and returns what is left, -1
// when the bucket was already empty. l.mu is held.
func (l *limiter) take(key string, now time.Time) float64 {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: float64(l.rate.Burst), at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return -1
	}
	b.tokens--
	return b.tokens
}

func (l *limiter) prune(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= float64(l.rate.Burst) {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) >= maxBuckets {
		// Still full of live buckets: forget all rather than grow without bound.
		clear(l.buckets)
	}
}

// addrKey returns the rate-limit key of a client address (ClientAddr; a
// host:port is accepted too): the IP for IPv4, the /64 prefix for IPv6 (one
// host usually owns a whole /64).
func addrKey(remoteAddr string) string {
	host := remoteAddr
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "addr:" + host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return "addr:" + p.String()
	}
	return "addr:" + ip.String()
}

// userKey is the key of a user name's budget over all addresses.
func userKey(name string) string { return "user:" + strings.ToLower(name) }

// userAddrKey is the key of a user name's budget at one client address.
func userAddrKey(name, remote string) string { return userKey(name) + "@" + addrKey(remote) }

// recentSet remembers keys for a while (the addresses a user logged in
// from), in bounded memory: when full, expired keys are dropped, then all.
type recentSet struct {
	mu   sync.Mutex
	ttl  time.Duration
	seen map[string]time.Time
}

func newRecentSet(ttl time.Duration) *recentSet {
	return &recentSet{ttl: ttl, seen: map[string]time.Time{}}
}

func (r *recentSet) add(key string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.seen[key]; !ok && len(r.seen) >= maxBuckets {
		for k, t := range r.seen {
			if now.Sub(t) > r.ttl {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= maxBuckets {
			clear(r.seen)
		}
	}
	r.seen[key] = now
}

func (r *recentSet) has(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.seen[key]
	return ok && now.Sub(t) <= r.ttl
}
