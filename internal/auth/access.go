package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Access tokens are verified once per token and server, not once per
// request: a verified token is remembered by its SHA-256 until it expires,
// so the /v2/ guard costs a hash and a map look-up where it cost an ES256
// signature check and a JSON decode. What is refused does not change, and
// these are the bounds:
//
//   - Expiry: a remembered token is refused from the moment its exp plus
//     the clock leeway (10 s) has passed, exactly like a token verified
//     afresh.
//   - Revocation: the access tokens of a personal access token or CI job
//     token are checked against that credential in the store when a server
//     first sees them and again at least every CredentialRecheck (default
//     10 s) while they are used, and at once on the server that revoked the
//     credential (API, job end). Revoking a PAT or job token thus stops its
//     access tokens within CredentialRecheck on every replica (and at once
//     where it was revoked), where before they lived on until they expired.
//     Access tokens of a password login or an OIDC ID-token login stay
//     valid until they expire (AccessTTL, default 5 minutes), as before:
//     changing a password or deleting a user takes effect within AccessTTL.
//
// The cache holds at most Config.AccessCacheSize tokens; past that, expired
// ones are dropped, then a quarter of the rest (a token that is dropped is
// simply verified again when next used).

// ErrTokenRevoked: the token is well signed and unexpired, but the
// credential it was issued for (a PAT or CI job token) has been revoked,
// has expired or no longer exists.
var ErrTokenRevoked = errors.New("token revoked")

// accessEntry is a verified access token.
type accessEntry struct {
	claims *Claims
	// until is exp plus the clock leeway: the token is expired after it.
	until time.Time
	// checked is when the token's credential was last found valid (unix
	// nanoseconds) and gen the revocation generation it was checked in.
	checked atomic.Int64
	gen     atomic.Uint64
	// refused is why the credential is no longer valid (a refusal is
	// final: a revoked, expired or deleted credential does not come back).
	refused atomic.Pointer[string]
}

// accessCache maps SHA-256(token) to its verified claims.
type accessCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[32]byte]*accessEntry
}

func newAccessCache(max int) *accessCache {
	return &accessCache{max: max, entries: make(map[[32]byte]*accessEntry)}
}

func (c *accessCache) get(key [32]byte) *accessEntry {
	c.mu.RLock()
	e := c.entries[key]
	c.mu.RUnlock()
	return e
}

func (c *accessCache) put(key [32]byte, e *accessEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, x := range c.entries {
			if now.After(x.until) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = e
}

func (c *accessCache) remove(key [32]byte) {
	c.mu.Lock()
	delete(c.entries, key)
	c.mu.Unlock()
}

// VerifyAccess verifies a registry access token presented by a client and
// checks that the credential it was issued for may still be used (see
// the bounds above). With an external token service (Config.External) the
// token must be one of that service's, and Hallmark's own are refused. Errors: ErrTokenExpired, ErrTokenInvalid (forged,
// tampered, foreign, malformed), ErrTokenRevoked, or a store error.
func (s *Service) VerifyAccess(ctx context.Context, raw string) (*Claims, error) {
	now := s.cfg.Now()
	limit := maxTokenLength
	if s.cfg.External != nil {
		limit = maxExternalTokenLength
	}
	if len(raw) > limit {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrTokenInvalid, limit)
	}
	key := sha256.Sum256([]byte(raw))
	e := s.access.get(key)
	if e == nil {
		var (
			c      *Claims
			err    error
			leeway = clockLeeway
		)
		if s.cfg.External != nil {
			c, err = s.cfg.External.Verify(raw, now)
			leeway = externalLeeway
		} else {
			c, err = s.signer.VerifyAccess(raw, now)
		}
		if err != nil {
			return nil, err
		}
		e = &accessEntry{claims: c, until: c.Expiry.Time().Add(leeway)}
		s.access.put(key, e, now)
	} else if now.After(e.until) {
		s.access.remove(key)
		return nil, ErrTokenExpired
	}
	if err := s.checkCredential(ctx, e, now); err != nil {
		return nil, err
	}
	return e.claims, nil
}

// checkCredential re-reads the PAT or CI job token behind e when it was
// not checked within CredentialRecheck or a credential was revoked through
// this server since.
func (s *Service) checkCredential(ctx context.Context, e *accessEntry, now time.Time) error {
	if r := e.refused.Load(); r != nil {
		return fmt.Errorf("%w: %s", ErrTokenRevoked, *r)
	}
	c := e.claims
	if c.CredID == 0 || (c.Kind != KindPAT && c.Kind != KindJob) {
		return nil
	}
	gen := s.revocations.Load()
	if checked := e.checked.Load(); checked != 0 && e.gen.Load() == gen && now.Sub(time.Unix(0, checked)) < s.cfg.CredentialRecheck {
		return nil
	}
	reason, err := s.credentialRevoked(ctx, c.Kind, c.CredID, now)
	if err != nil {
		return fmt.Errorf("checking the credential of an access token: %w", err)
	}
	if reason != "" {
		e.refused.Store(&reason)
		return fmt.Errorf("%w: %s", ErrTokenRevoked, reason)
	}
	e.gen.Store(gen)
	e.checked.Store(now.UnixNano())
	return nil
}

// credentialRevoked says why the PAT or CI job token id can no longer be
// used ("" when it can).
func (s *Service) credentialRevoked(ctx context.Context, kind string, id int64, now time.Time) (string, error) {
	var (
		revoked bool
		expires time.Time
		what    string
		err     error
	)
	switch kind {
	case KindPAT:
		var t PAT
		t, err = s.store.GetPAT(ctx, id)
		revoked, expires, what = t.Revoked, t.Expires, "personal access token"
	case KindJob:
		var t JobToken
		t, err = s.store.GetJobToken(ctx, id)
		revoked, expires, what = t.Revoked, t.Expires, "CI job token"
	default:
		return "", nil
	}
	if errors.Is(err, ErrNotFound) {
		return fmt.Sprintf("its %s %d no longer exists", what, id), nil
	}
	if err != nil {
		return "", err
	}
	if r := credentialProblem(revoked, expires, now); r != "" {
		return fmt.Sprintf("its %s %d %s", what, id, r), nil
	}
	return "", nil
}

// noteRevocation makes every remembered access token of a PAT or
// job token be checked again on its next use (called after a revocation
// made through this server).
func (s *Service) noteRevocation() { s.revocations.Add(1) }

// MayPush reports whether the principal of a /v2/ request (the guard put
// it in ctx) may push to repo, whatever its access token grants (a client
// reading an image asks for pull only): the registry serves such a
// producer unsigned images under require-signature: enforce, so that it
// can sign them.
func (s *Service) MayPush(ctx context.Context, repo string) (bool, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Kind == KindAnonymous {
		return false, nil
	}
	// An access token names its principal but not its admin flag or PAT
	// scopes: read them (this runs only for pulls that would be refused).
	switch p.Kind {
	case KindUser:
		u, err := s.store.GetUser(ctx, p.User)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		p.Admin = u.Admin
	case KindPAT:
		t, err := s.store.GetPAT(ctx, p.CredID)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		u, err := s.store.GetUser(ctx, t.User)
		if errors.Is(err, ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		p = patPrincipal(u, t)
	}
	acts, err := s.Allowed(ctx, p, TypeRepository, repo)
	if err != nil {
		return false, err
	}
	return slices.Contains(acts, ActionPush), nil
}
