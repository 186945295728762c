package auth

import (
	"context"
	"maps"
	"math"
	"net"
	"net/netip"
	"slices"
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

// Budget is the stored state of one token bucket: Tokens left at At. Full
// is when it holds its burst again; from then on it carries no
// information and may be dropped.
type Budget struct {
	Tokens   float64
	At, Full time.Time
}

// BudgetStore keeps the failed-login budgets and the logins that exempt
// a user name at an address from its budget over all addresses. In
// memory by default (NewMemoryBudgets); replicas sharing a database give
// the service the database's (Config.Budgets), so that a client spreading
// its guesses over n replicas has one budget, not n. Only login paths
// touch it: a check per login, a write per failure (and per new address
// a user logs in from); verified tokens never do.
type BudgetStore interface {
	// LoadBudgets returns the stored budgets of keys; a key without one
	// (never charged, or dropped once full) is absent.
	LoadBudgets(ctx context.Context, keys []string) (map[string]Budget, error)
	// ChargeBudgets calls fn with the stored budgets of keys (absent ones
	// missing from the map) while holding them against every other writer,
	// and stores the budgets fn returns. fn may be called again when the
	// store retries.
	ChargeBudgets(ctx context.Context, keys []string, fn func(map[string]Budget) map[string]Budget) error
	// RememberLogin records that key (a user name at an address) logged in
	// at at.
	RememberLogin(ctx context.Context, key string, at time.Time) error
	// LoginSince reports whether key logged in at or after since.
	LoginSince(ctx context.Context, key string, since time.Time) (bool, error)
	// SweepBudgets drops the budgets full again at now and the logins
	// before loginsBefore, then, if either still holds more than max
	// entries, those with the least information (the fullest budgets, the
	// oldest logins). It returns how many it dropped.
	SweepBudgets(ctx context.Context, now, loginsBefore time.Time, max int) (int64, error)
}

// maxBudgets bounds a budget store: the memory store drops full budgets
// (then all) when it reaches it, the database's sweep keeps it.
const maxBudgets = 300_000

// level is how many tokens the budget b (absent: !ok) holds at now.
func (rl RateLimit) level(b Budget, ok bool, now time.Time) float64 {
	if !ok {
		return float64(rl.Burst)
	}
	t := b.Tokens
	if now.After(b.At) {
		t = math.Min(float64(rl.Burst), t+now.Sub(b.At).Seconds()/rl.Every.Seconds())
	}
	return t
}

// budget is the state of a bucket holding tokens at now.
func (rl RateLimit) budget(tokens float64, now time.Time) Budget {
	return Budget{Tokens: tokens, At: now, Full: now.Add(time.Duration((float64(rl.Burst) - tokens) * float64(rl.Every)))}
}

// charge names one budget: its key, its rate and what it limits (for the
// audit log).
type charge struct {
	key  string
	rl   RateLimit
	what string
}

func keysOf(cs []charge) []string {
	keys := make([]string, len(cs))
	for i, c := range cs {
		keys[i] = c.key
	}
	return keys
}

// exhausted returns the first of cs whose budget has no token at now, and
// how long until it has one; nil when every one has.
func exhausted(ctx context.Context, store BudgetStore, cs []charge, now time.Time) (*charge, time.Duration, error) {
	bs, err := store.LoadBudgets(ctx, keysOf(cs))
	if err != nil {
		return nil, 0, err
	}
	for i, c := range cs {
		b, ok := bs[c.key]
		lvl := c.rl.level(b, ok, now)
		if lvl >= 1 {
			continue
		}
		return &cs[i], max(time.Second, time.Duration((1-lvl)*float64(c.rl.Every))), nil
	}
	return nil, 0, nil
}

// spend takes one token from the budget of each of cs that has one, and
// reports which had one.
func spend(ctx context.Context, store BudgetStore, cs []charge, now time.Time) ([]bool, error) {
	had := make([]bool, len(cs))
	err := store.ChargeBudgets(ctx, keysOf(cs), func(cur map[string]Budget) map[string]Budget {
		out := make(map[string]Budget, len(cs))
		for i, c := range cs {
			b, ok := out[c.key]
			if !ok {
				b, ok = cur[c.key]
			}
			lvl := c.rl.level(b, ok, now)
			if had[i] = lvl >= 1; had[i] {
				lvl--
			}
			out[c.key] = c.rl.budget(lvl, now)
		}
		return out
	})
	return had, err
}

// allow takes a token from c's budget if it has one: whether an event of
// c's key may happen now (sampling, e.g. audit records of a flood, to at
// most Burst then one per Every per key).
func allow(ctx context.Context, store BudgetStore, c charge, now time.Time) bool {
	had, err := spend(ctx, store, []charge{c}, now)
	return err == nil && had[0]
}

// MemoryBudgets is a BudgetStore in memory, bounded by maxBudgets: the
// default for a single server, and each replica's local samples.
type MemoryBudgets struct {
	mu      sync.Mutex
	budgets map[string]Budget
	logins  map[string]time.Time
}

var _ BudgetStore = (*MemoryBudgets)(nil)

// NewMemoryBudgets returns an empty in-memory budget store.
func NewMemoryBudgets() *MemoryBudgets {
	return &MemoryBudgets{budgets: map[string]Budget{}, logins: map[string]time.Time{}}
}

// LoadBudgets implements BudgetStore.
func (m *MemoryBudgets) LoadBudgets(_ context.Context, keys []string) (map[string]Budget, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookup(keys), nil
}

// lookup returns the budgets of keys that exist; m.mu is held.
func (m *MemoryBudgets) lookup(keys []string) map[string]Budget {
	out := make(map[string]Budget, len(keys))
	for _, k := range keys {
		if b, ok := m.budgets[k]; ok {
			out[k] = b
		}
	}
	return out
}

// ChargeBudgets implements BudgetStore.
func (m *MemoryBudgets) ChargeBudgets(ctx context.Context, keys []string, fn func(map[string]Budget) map[string]Budget) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, b := range fn(m.lookup(keys)) {
		if _, ok := m.budgets[k]; !ok && len(m.budgets) >= maxBudgets {
			now := b.At
			maps.DeleteFunc(m.budgets, func(_ string, b Budget) bool { return !now.Before(b.Full) })
			if len(m.budgets) >= maxBudgets {
				// Still full of live budgets: forget all rather than grow
				// without bound.
				clear(m.budgets)
			}
		}
		m.budgets[k] = b
	}
	return nil
}

// RememberLogin implements BudgetStore.
func (m *MemoryBudgets) RememberLogin(_ context.Context, key string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.logins[key]; !ok && len(m.logins) >= maxBudgets {
		oldest := slices.Collect(maps.Values(m.logins))
		slices.SortFunc(oldest, func(a, b time.Time) int { return a.Compare(b) })
		cut := oldest[len(oldest)/2] // drop the older half
		maps.DeleteFunc(m.logins, func(_ string, t time.Time) bool { return t.Before(cut) })
		if len(m.logins) >= maxBudgets {
			clear(m.logins)
		}
	}
	if at.After(m.logins[key]) {
		m.logins[key] = at
	}
	return nil
}

// LoginSince implements BudgetStore.
func (m *MemoryBudgets) LoginSince(_ context.Context, key string, since time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.logins[key]
	return ok && !t.Before(since), nil
}

// SweepBudgets implements BudgetStore.
func (m *MemoryBudgets) SweepBudgets(_ context.Context, now, loginsBefore time.Time, _ int) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.budgets) + len(m.logins)
	maps.DeleteFunc(m.budgets, func(_ string, b Budget) bool { return !now.Before(b.Full) })
	maps.DeleteFunc(m.logins, func(_ string, t time.Time) bool { return t.Before(loginsBefore) })
	return int64(n - len(m.budgets) - len(m.logins)), nil
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
