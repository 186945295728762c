package server

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/web"
)

// webOptions limits the provenance API to what the caller may pull when
// registry access control is on.
func (s *Server) webOptions() []web.Option {
	if s.auth == nil {
		return nil
	}
	return []web.Option{web.WithAuthorizer(apiAuthorizer{s.auth})}
}

// apiAuthorizer authenticates provenance API requests with the registry's
// credentials: Basic (password, personal access token, CI job token, OIDC
// ID token), Bearer with the admin token, or Bearer with a registry access
// token (then only the repositories it grants pull on); none is anonymous
// (public projects).
type apiAuthorizer struct{ a *auth.Service }

func (z apiAuthorizer) Authorize(r *http.Request) (web.PullCheck, error) {
	ctx := r.Context()
	h := r.Header.Get("Authorization")
	scheme, rest, _ := strings.Cut(h, " ")
	switch {
	case h == "":
		p := auth.Principal{Kind: auth.KindAnonymous}
		return z.principalCheck(p), nil
	case strings.EqualFold(scheme, "basic"):
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, web.ErrUnauthenticated
		}
		p, err := z.a.Authenticate(ctx, user, pass, r.RemoteAddr)
		if err != nil {
			return nil, apiAuthError(err)
		}
		return z.principalCheck(p), nil
	case strings.EqualFold(scheme, "bearer"):
		token := strings.TrimSpace(rest)
		if claims, err := z.a.Signer().VerifyAccess(token, time.Now()); err == nil {
			return func(_ context.Context, repo string) (bool, error) {
				for _, acc := range claims.Access {
					if acc.Allows(auth.TypeRepository, repo, auth.ActionPull) {
						return true, nil
					}
				}
				return false, nil
			}, nil
		}
		if _, err := z.a.AdminAuthorized(r); err == nil {
			return func(context.Context, string) (bool, error) { return true, nil }, nil
		} else if !errors.Is(err, auth.ErrBadCredentials) {
			return nil, apiAuthError(err)
		}
		return nil, web.ErrUnauthenticated
	}
	return nil, web.ErrUnauthenticated
}

func (z apiAuthorizer) principalCheck(p auth.Principal) web.PullCheck {
	return func(ctx context.Context, repo string) (bool, error) {
		acts, err := z.a.Allowed(ctx, p, auth.TypeRepository, repo)
		if err != nil {
			return false, err
		}
		return slices.Contains(acts, auth.ActionPull) || slices.Contains(acts, auth.ActionAll), nil
	}
}

// apiAuthError maps auth errors to the API's: bad credentials are 401,
// throttling 429.
func apiAuthError(err error) error {
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		return web.ErrUnauthenticated
	case errors.Is(err, auth.ErrThrottled):
		return statusError{http.StatusTooManyRequests, err}
	}
	return err
}

type statusError struct {
	status int
	err    error
}

func (e statusError) Error() string   { return e.err.Error() }
func (e statusError) Unwrap() error   { return e.err }
func (e statusError) HTTPStatus() int { return e.status }
