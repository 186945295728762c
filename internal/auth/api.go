package auth

import (
	"context"
	"errors"
	"net/http"
	"slices"
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
	return func(ctx context.Context, repo string) (bool, error) {
		acts, err := c.Actions(ctx, repo)
		return slices.Contains(acts, ActionPull) || slices.Contains(acts, ActionAll), err
	}, nil
}

// Caller is an authenticated API caller: who it is, and what it may do
// on a repository or project path.
type Caller struct {
	Name  string // user name, job or token subject; "" for anonymous
	Admin bool
	// Actions lists what the caller may do on repo (pull, push, delete;
	// "*" for admins).
	Actions func(ctx context.Context, repo string) ([]string, error)
}

// May reports whether the caller may do action on repo (an admin may do
// anything).
func (c Caller) May(ctx context.Context, repo, action string) (bool, error) {
	if c.Admin {
		return true, nil
	}
	acts, err := c.Actions(ctx, repo)
	return slices.Contains(acts, action) || slices.Contains(acts, ActionAll), err
}

// Caller authenticates r as Authorize does and returns the caller.
func (z APIAuthorizer) Caller(r *http.Request) (Caller, error) {
	ctx := r.Context()
	creds, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return Caller{}, ErrBadCredentials
	}
	switch creds.scheme {
	case "":
		return z.principalCaller(Principal{Kind: KindAnonymous}), nil
	case "basic":
		p, err := z.s.Authenticate(ctx, creds.user, creds.password, z.s.ClientAddr(r))
		if err != nil {
			return Caller{}, err
		}
		return z.principalCaller(p), nil
	}
	// Bearer: a registry access token (a JWT) or the admin token. Like
	// on /v2/, a rejected access token is not a failed login.
	if looksLikeJWT(creds.token) {
		claims, err := z.s.VerifyAccess(ctx, creds.token)
		switch {
		case err == nil:
			return Caller{Name: claims.Subject, Actions: func(_ context.Context, repo string) ([]string, error) {
				var acts []string
				for _, a := range []string{ActionPull, ActionPush, ActionDelete} {
					if allows(claims.Access, Access{Type: TypeRepository, Name: repo, Actions: []string{a}}) {
						acts = append(acts, a)
					}
				}
				return acts, nil
			}}, nil
		case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrTokenRevoked):
			z.s.invalidToken(ctx, z.s.ClientAddr(r), "", "provenance API: "+err.Error())
			return Caller{}, ErrBadCredentials
		default:
			return Caller{}, err
		}
	}
	p, err := z.s.AdminAuthorized(r)
	if err != nil {
		return Caller{}, err
	}
	return z.principalCaller(p), nil
}

func (z APIAuthorizer) principalCaller(p Principal) Caller {
	// An admin's PAT is as powerful as its scopes (Allowed), not an admin.
	admin := p.Admin && (p.Kind == KindUser || p.Kind == KindAdminToken)
	return Caller{Name: p.Name, Admin: admin, Actions: func(ctx context.Context, repo string) ([]string, error) {
		if admin {
			return []string{ActionDelete, ActionPull, ActionPush}, nil
		}
		return z.s.Allowed(ctx, p, TypeRepository, repo)
	}}
}
