package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// AuditRevoke records the revocation of a credential.
const AuditRevoke = "auth.revoke"

// RevokeJobToken revokes CI job token id through this server: it can no
// longer log in, and its access tokens are refused by this server at once
// and by other replicas within CredentialRecheck (access.go). actor is who
// asked (for the audit log).
func (s *Service) RevokeJobToken(ctx context.Context, id int64, actor Principal, remote string) (JobToken, error) {
	t, err := (&Admin{Store: s.store, Now: s.cfg.Now}).RevokeJobToken(ctx, "", id)
	if err != nil {
		return JobToken{}, err
	}
	s.noteRevocation()
	s.Audit(ctx, AuditEvent{Action: AuditRevoke, Actor: actor.Name, ActorKind: actor.Kind, Repository: t.Project,
		RemoteAddr: remote, Detail: fmt.Sprintf("CI job token %d of job %s revoked", t.ID, t.JobID)})
	return t, nil
}

// jobTokenRevokeRequest is the body of POST /api/v1/ci/job-tokens/revoke:
// the token itself (a job revoking its own token at its end: holding it is
// the authority to revoke it), or the id of a token (the caller needs
// credentials: an admin's, a maintainer's of the token's project, or the
// token's own).
type jobTokenRevokeRequest struct {
	ID    int64  `json:"id"`
	Token string `json:"token"`
}

// JobTokenRevokeHandler serves POST /api/v1/ci/job-tokens/revoke: JSON
// {"token": "<CI job token>"} or {"id": N} -> {"id","project","job_id",
// "revoked": true}. With an id the request needs Basic credentials (a
// user, PAT or the job token itself) or Bearer <admin token>: admins may
// revoke any job token, maintainers of a project (delete rights) those of
// their project, a job its own. Unknown tokens, and tokens of projects the
// caller cannot see, are 404.
func (s *Service) JobTokenRevokeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var req jobTokenRevokeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTokenForm))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "request body: "+err.Error()+` (want {"token": "<CI job token>"} or {"id": N})`)
			return
		}
		if req.ID < 0 {
			writeJSONError(w, http.StatusBadRequest, "id: want the positive number printed when the token was minted")
			return
		}
		if (req.Token == "") == (req.ID == 0) {
			writeJSONError(w, http.StatusBadRequest, `give either the token ({"token": "<CI job token>"}) or its id ({"id": N}), not both`)
			return
		}
		remote := s.ClientAddr(r)
		ctx := r.Context()
		var actor Principal
		if req.Token != "" {
			if !strings.HasPrefix(req.Token, JobTokenPrefix) {
				writeJSONError(w, http.StatusBadRequest, "token: not a CI job token (they start with "+JobTokenPrefix+")")
				return
			}
			if err := s.throttled(ctx, "", remote, false); err != nil {
				s.revokeError(w, r, err)
				return
			}
			t, err := s.store.JobTokenByHash(ctx, HashToken(req.Token))
			if errors.Is(err, ErrNotFound) {
				s.loginFailed(ctx, JobTokenUser, remote, false, "revoking a CI job token: unknown token")
			}
			if err != nil {
				s.revokeError(w, r, err)
				return
			}
			actor, req.ID = jobPrincipal(t), t.ID
		} else {
			p, err := s.requestPrincipal(r, remote)
			if err != nil {
				s.revokeError(w, r, err)
				return
			}
			if err := s.mayRevokeJobToken(ctx, p, req.ID); err != nil {
				s.revokeError(w, r, err)
				return
			}
			actor = p
		}
		t, err := s.RevokeJobToken(ctx, req.ID, actor, remote)
		if err != nil {
			s.revokeError(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": t.ID, "project": t.Project, "job_id": t.JobID, "revoked": true})
	})
}

// requestPrincipal authenticates an API request: Basic credentials of any
// kind Authenticate accepts, or Bearer <admin token>.
func (s *Service) requestPrincipal(r *http.Request, remote string) (Principal, error) {
	creds, err := parseAuthorization(r.Header.Get("Authorization"))
	switch {
	case err != nil || creds.scheme == "":
		return Principal{}, ErrBadCredentials
	case creds.scheme == "basic":
		return s.Authenticate(r.Context(), creds.user, creds.password, remote)
	}
	return s.AdminAuthorized(r)
}

var errNoRevoke = errors.New("revoking a CI job token needs maintainer rights in its project")

// mayRevokeJobToken decides whether p may revoke job token id: admins any,
// a job its own, a maintainer (delete rights) of the token's project its
// tokens. Callers who cannot see the project get ErrNotFound.
func (s *Service) mayRevokeJobToken(ctx context.Context, p Principal, id int64) error {
	t, err := s.store.GetJobToken(ctx, id)
	if err != nil {
		return fmt.Errorf("CI job token %d: %w", id, err)
	}
	if p.Admin || (p.Kind == KindJob && p.CredID == id) {
		return nil
	}
	acts, err := s.Allowed(ctx, p, TypeRepository, t.Project)
	if err != nil {
		return err
	}
	switch {
	case slices.Contains(acts, ActionDelete):
		return nil
	case slices.Contains(acts, ActionPull):
		return fmt.Errorf("%w (project %s)", errNoRevoke, t.Project)
	}
	return fmt.Errorf("CI job token %d: %w", id, ErrNotFound)
}

func (s *Service) revokeError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrThrottled):
		tooMany(w, r, err)
	case errors.Is(err, ErrBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		writeJSONError(w, http.StatusUnauthorized, "credentials rejected: send the CI job token in the body, or Basic credentials (or Bearer <admin token>) with its id")
	case errors.Is(err, ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "no such CI job token")
	case errors.Is(err, errNoRevoke), errors.Is(err, ErrForbidden):
		writeJSONError(w, http.StatusForbidden, err.Error())
	default:
		s.log.ErrorContext(r.Context(), "revoking a CI job token", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "internal error; see the server log")
	}
}
