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
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now)
		}
		b = &bucket{tokens: float64(l.rate.Burst), at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tokens = math.Max(0, b.tokens-1)
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

// addrKey returns the rate-limit key of a request's remote address: the IP
// for IPv4, the /64 prefix for IPv6 (one host usually owns a whole /64).
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

func userKey(name string) string { return "user:" + strings.ToLower(name) }
