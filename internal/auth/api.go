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
	c, err := z.caller(r)
	if err != nil {
		return nil, err
	}
	switch {
	case c.all:
		return func(context.Context, string) (bool, error) { return true, nil }, nil
	case c.principal == nil:
		access := c.access
		return func(_ context.Context, repo string) (bool, error) {
			return allows(access, Access{Type: TypeRepository, Name: repo, Actions: []string{ActionPull}}), nil
		}, nil
	}
	return z.principalCheck(*c.principal), nil
}

// Visible authenticates r as Authorize does and returns what the caller
// may pull as a filter for a search's query (the same repositories as the
// pull check).
func (z APIAuthorizer) Visible(r *http.Request) (Visible, error) {
	c, err := z.caller(r)
	switch {
	case err != nil:
		return Visible{}, err
	case c.all:
		return Visible{All: true}, nil
	case c.principal == nil:
		return visibleByAccess(c.access), nil
	}
	return z.s.Visible(r.Context(), *c.principal)
}

// apiCaller is an authenticated API caller: a principal, the grants of a
// registry access token (principal nil), or the admin token (all).
type apiCaller struct {
	principal *Principal
	access    []Access
	all       bool
}

func (z APIAuthorizer) caller(r *http.Request) (apiCaller, error) {
	ctx := r.Context()
	creds, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return apiCaller{}, ErrBadCredentials
	}
	switch creds.scheme {
	case "":
		return apiCaller{principal: &Principal{Kind: KindAnonymous}}, nil
	case "basic":
		p, err := z.s.Authenticate(ctx, creds.user, creds.password, z.s.ClientAddr(r))
		if err != nil {
			return apiCaller{}, err
		}
		return apiCaller{principal: &p}, nil
	}
	// Bearer: a registry access token (a JWT) or the admin token. Like
	// on /v2/, a rejected access token is not a failed login.
	if looksLikeJWT(creds.token) {
		claims, err := z.s.VerifyAccess(ctx, creds.token)
		switch {
		case err == nil:
			return apiCaller{access: claims.Access}, nil
		case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrTokenRevoked):
			z.s.invalidToken(ctx, z.s.ClientAddr(r), "", "provenance API: "+err.Error())
			return apiCaller{}, ErrBadCredentials
		default:
			return apiCaller{}, err
		}
	}
	if _, err := z.s.AdminAuthorized(r); err != nil {
		return apiCaller{}, err
	}
	return apiCaller{all: true}, nil
}

func (z APIAuthorizer) principalCheck(p Principal) PullCheck {
	return func(ctx context.Context, repo string) (bool, error) {
		acts, err := z.s.Allowed(ctx, p, TypeRepository, repo)
		if err != nil {
			return false, err
		}
		return slices.Contains(acts, ActionPull) || slices.Contains(acts, ActionAll), nil
	}
}
