package auth

import (
	"context"
	"errors"
	"fmt"
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
	ctx := r.Context()
	creds, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, ErrBadCredentials
	}
	switch creds.scheme {
	case "":
		return z.principalCheck(Principal{Kind: KindAnonymous}), nil
	case "basic":
		p, err := z.s.Authenticate(ctx, creds.user, creds.password, z.s.ClientAddr(r))
		if err != nil {
			return nil, err
		}
		return z.principalCheck(p), nil
	}
	// Bearer: a registry access token (a JWT) or the admin token. Like
	// on /v2/, a rejected access token is not a failed login.
	if looksLikeJWT(creds.token) {
		claims, err := z.s.VerifyAccess(ctx, creds.token)
		switch {
		case err == nil:
			return func(_ context.Context, repo string) (bool, error) {
				return allows(claims.Access, Access{Type: TypeRepository, Name: repo, Actions: []string{ActionPull}}), nil
			}, nil
		case errors.Is(err, ErrTokenExpired), errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrTokenRevoked):
			z.s.invalidToken(ctx, z.s.ClientAddr(r), "", "provenance API: "+err.Error())
			return nil, ErrBadCredentials
		default:
			return nil, err
		}
	}
	if _, err := z.s.AdminAuthorized(r); err != nil {
		return nil, err
	}
	return func(context.Context, string) (bool, error) { return true, nil }, nil
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
