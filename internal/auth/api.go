package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// PullCheck reports whether the authenticated caller may pull repo.
type PullCheck func(ctx context.Context, repo string) (bool, error)

// HTTPStatus is 429: the API answers a throttled request with it.
func (e *ThrottledError) HTTPStatus() int { return http.StatusTooManyRequests }

// APIAuthorizer authenticates requests to the provenance API (it is
// internal/web's Authorizer) with the registry's credentials: Basic
// (password, personal access token, CI job token, OIDC ID token), Bearer
// with a registry access token (then only the repositories it grants pull
// on), or Bearer with the admin token (everything); no credentials is
// anonymous (public projects). Rejected credentials are ErrBadCredentials,
// throttling a *ThrottledError.
type APIAuthorizer struct{ s *Service }

// APIAuthorizer returns the provenance API's authorizer.
func (s *Service) APIAuthorizer() APIAuthorizer { return APIAuthorizer{s} }

// Authorize authenticates r and returns the caller's pull check.
func (z APIAuthorizer) Authorize(r *http.Request) (PullCheck, error) {
	c, err := z.Caller(r)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, repo string) (bool, error) { return c.May(ctx, repo, ActionPull) }, nil
}

// Caller is an authenticated caller of the JSON API: who it is, for the
// audit log, and what it may do to which repository.
type Caller struct {
	Principal Principal
	Remote    string // client address (ClientAddr)
	may       func(ctx context.Context, repo, action string) (bool, error)
	open      bool     // access control is off (OpenCaller)
	token     bool     // a registry access token: access is all it grants
	access    []Access // a token's grants
}

// May reports whether the caller may perform action (ActionPull,
// ActionPush, ActionDelete) on repo, as the token endpoint would grant it:
// maintainers (delete) of the project covering repo, admins everywhere.
func (c Caller) May(ctx context.Context, repo, action string) (bool, error) {
	if c.may == nil {
		return false, nil
	}
	return c.may(ctx, repo, action)
}

// Identity is the caller as the audit log records it.
func (c Caller) Identity() (name, kind, remote string) {
	return c.Principal.Name, c.Principal.Kind, c.Remote
}

// IsAdmin reports whether the caller is an admin user (password or
// session) or the admin token. An admin's PAT is as powerful as its
// scopes, not an admin.
func (c Caller) IsAdmin() bool {
	return c.open || c.Principal.Admin && (c.Principal.Kind == KindUser || c.Principal.Kind == KindAdminToken)
}

// OpenCaller is the caller when access control is off: anyone, with
// every right.
func OpenCaller(remote string) Caller {
	return Caller{Principal: Principal{Kind: KindAnonymous, Name: "anonymous"}, Remote: remote, open: true,
		may: func(context.Context, string, string) (bool, error) { return true, nil }}
}

// Caller authenticates r as Authorize does and returns the caller.
// Anonymous callers (no credentials) get Principal.Kind KindAnonymous.
func (z APIAuthorizer) Caller(r *http.Request) (Caller, error) {
	ctx := r.Context()
	remote := z.s.ClientAddr(r)
	creds, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return Caller{}, ErrBadCredentials
	}
	switch creds.scheme {
	case "":
		return z.principalCaller(Principal{Kind: KindAnonymous}, remote), nil
	case "basic":
		p, err := z.s.Authenticate(ctx, creds.user, creds.password, remote)
		if err != nil {
			return Caller{}, err
		}
		return z.principalCaller(p, remote), nil
	}
	// Bearer: a registry access token (a JWT) or the admin token. Like
	// on /v2/, a rejected access token is not a failed login.
	if looksLikeJWT(creds.token) {
		claims, err := z.s.VerifyAccess(ctx, creds.token)
		switch {
		case err == nil:
			return Caller{Principal: claims.Principal(), Remote: remote, token: true, access: claims.Access, may: func(_ context.Context, repo, action string) (bool, error) {
				return allows(claims.Access, Access{Type: TypeRepository, Name: repo, Actions: []string{action}}), nil
			}}, nil
		case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrTokenRevoked):
			z.s.invalidToken(ctx, remote, "", "API: "+err.Error())
			return Caller{}, ErrBadCredentials
		default:
			return Caller{}, err
		}
	}
	p, err := z.s.AdminAuthorized(r)
	if err != nil {
		return Caller{}, err
	}
	return Caller{Principal: p, Remote: remote, may: func(context.Context, string, string) (bool, error) { return true, nil }}, nil
}

// Visible authenticates r as Authorize does and returns what the caller
// may pull as a filter for a search's query (the same repositories as the
// pull check).
func (z APIAuthorizer) Visible(r *http.Request) (Visible, error) {
	c, err := z.Caller(r)
	if err != nil {
		return Visible{}, err
	}
	return z.VisibleTo(r.Context(), c)
}

// VisibleTo is what caller c may pull, as a filter for a search's query.
func (z APIAuthorizer) VisibleTo(ctx context.Context, c Caller) (Visible, error) {
	switch {
	case c.open:
		return Visible{All: true}, nil
	case c.token:
		return visibleByAccess(c.access), nil
	}
	return z.s.Visible(ctx, c.Principal)
}

func (z APIAuthorizer) principalCaller(p Principal, remote string) Caller {
	c := Caller{Principal: p, Remote: remote}
	admin := c.IsAdmin()
	c.may = func(ctx context.Context, repo, action string) (bool, error) {
		if admin {
			return true, nil
		}
		acts, err := z.s.Allowed(ctx, p, TypeRepository, repo)
		if err != nil {
			return false, err
		}
		return slices.Contains(acts, action) || slices.Contains(acts, ActionAll), nil
	}
	return c
}

// EventLimit samples or bounds events per key: Burst at once, then one
// per Every (the failed-login budgets' token bucket, in bounded memory).
type EventLimit struct {
	m  *MemoryBudgets
	rl RateLimit
}

// NewEventLimit returns a limit of rl per key.
func NewEventLimit(rl RateLimit) *EventLimit { return &EventLimit{NewMemoryBudgets(), rl} }

// Allow takes one event of key if its budget has one, and otherwise says
// how long until it has.
func (e *EventLimit) Allow(key string, now time.Time) (ok bool, retry time.Duration) {
	c := charge{key: key, rl: e.rl}
	if allow(context.Background(), e.m, c, now) {
		return true, 0
	}
	_, retry, _ = exhausted(context.Background(), e.m, []charge{c}, now)
	return false, max(retry, time.Second)
}

// AuthorizeProject authenticates r for an API that manages project (its
// retention policy): Basic credentials of any kind Authenticate accepts,
// or Bearer <admin token>. Admins may manage every project, members with
// delete rights (maintainers, and their PATs with the delete scope) their
// own. It returns the caller's name for the audit log; ErrBadCredentials,
// a *ThrottledError, an error wrapping ErrForbidden for callers who may
// see the project but not manage it, or ErrNotFound for those who may not
// see it.
func (z APIAuthorizer) AuthorizeProject(r *http.Request, project string) (string, error) {
	p, err := z.s.requestPrincipal(r, z.s.ClientAddr(r))
	if err != nil {
		return "", err
	}
	if p.Admin && (p.Kind == KindUser || p.Kind == KindAdminToken) {
		return p.Name, nil
	}
	acts, err := z.s.Allowed(r.Context(), p, TypeRepository, project)
	if err != nil {
		return "", err
	}
	switch {
	case slices.Contains(acts, ActionDelete) || slices.Contains(acts, ActionAll):
		return p.Name, nil
	case slices.Contains(acts, ActionPull):
		return "", fmt.Errorf("%w: managing project %s needs maintainer rights in it", ErrForbidden, project)
	}
	return "", fmt.Errorf("project %s: %w", project, ErrNotFound)
}
