package gc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/httpjson"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// PolicyStore keeps projects' retention policies.
type PolicyStore interface {
	SetRetention(ctx context.Context, project, policy string) error
	Retention(ctx context.Context, project string) (meta.ProjectRetention, error)
	DeleteRetention(ctx context.Context, project string) error
}

// Authorizer authenticates a request to manage a project
// (auth.APIAuthorizer.AuthorizeProject): it returns the caller's name, or
// auth.ErrBadCredentials, an error wrapping auth.ErrForbidden or
// auth.ErrNotFound, or one with an HTTPStatus (throttling).
type Authorizer interface {
	AuthorizeProject(r *http.Request, project string) (actor string, err error)
}

// RetentionPath prefixes the retention API:
//
//	GET    /api/v1/projects/<project>/retention          the policy
//	PUT    /api/v1/projects/<project>/retention          set it (JSON Policy)
//	DELETE /api/v1/projects/<project>/retention          remove it
//	POST   /api/v1/projects/<project>/retention/preview  what a policy (the
//	       body, or the stored one when empty) would remove now: a dry run
//
// Maintainers of the project and admins only.
const RetentionPath = "/api/v1/projects/"

// API serves the retention API.
type API struct {
	store PolicyStore
	c     *Collector
	authz Authorizer // nil: no access control (--auth=off)
	log   *slog.Logger
}

// NewAPI returns the retention API over store, planning with c.
func NewAPI(store PolicyStore, c *Collector, authz Authorizer, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{store: store, c: c, authz: authz, log: log}
}

// PolicyJSON is a stored policy in API responses.
type PolicyJSON struct {
	Project string     `json:"project"`
	Policy  *Policy    `json:"policy"` // null: none
	Updated *time.Time `json:"updated,omitempty"`
	LastRun *time.Time `json:"lastRun,omitempty"`
}

// TagJSON is a tag a policy removes.
type TagJSON struct {
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest"`
	Updated    time.Time `json:"updated"`
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func (a *API) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if status >= 500 {
		a.log.ErrorContext(r.Context(), "retention API request failed", "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, RetentionPath)
	project, preview := "", false
	if p, ok := strings.CutSuffix(rest, "/retention/preview"); ok {
		project, preview = p, true
	} else if p, ok := strings.CutSuffix(rest, "/retention"); ok {
		project = p
	} else {
		a.fail(w, r, http.StatusNotFound, "no such endpoint; use "+RetentionPath+"<project>/retention", nil)
		return
	}
	if err := oci.ValidateName(project); err != nil {
		a.fail(w, r, http.StatusBadRequest, "project: "+err.Error(), nil)
		return
	}
	method := r.Method
	allowed := []string{http.MethodGet, http.MethodPut, http.MethodDelete}
	if preview {
		allowed = []string{http.MethodPost}
	}
	if !slices.Contains(allowed, method) {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		a.fail(w, r, http.StatusMethodNotAllowed, "method "+strconv.Quote(truncate(method, 20))+" is not allowed here; use "+strings.Join(allowed, ", "), nil)
		return
	}
	actor := ""
	if a.authz != nil {
		var err error
		if actor, err = a.authz.AuthorizeProject(r, project); err != nil {
			a.authError(w, r, err)
			return
		}
	}
	ctx := r.Context()
	switch {
	case preview:
		a.preview(w, r, project)
	case method == http.MethodGet:
		a.get(w, r, project, http.StatusOK)
	case method == http.MethodPut:
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicy))
		if err != nil {
			a.fail(w, r, http.StatusRequestEntityTooLarge, "the policy is larger than 4 KiB", nil)
			return
		}
		p, err := ParsePolicy(raw)
		if err != nil {
			a.fail(w, r, http.StatusBadRequest, err.Error(), nil)
			return
		}
		if err := a.store.SetRetention(ctx, project, p.JSON()); err != nil {
			a.storeError(w, r, project, err)
			return
		}
		a.c.audit(ctx, auth.AuditEvent{Action: AuditPolicy, Actor: actor, Repository: project, Detail: "retention policy set: " + p.JSON()})
		a.get(w, r, project, http.StatusOK)
	default: // DELETE
		if err := a.store.DeleteRetention(ctx, project); err != nil {
			a.storeError(w, r, project, err)
			return
		}
		a.c.audit(ctx, auth.AuditEvent{Action: AuditPolicy, Actor: actor, Repository: project, Detail: "retention policy removed"})
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) authError(w http.ResponseWriter, r *http.Request, err error) {
	var hs interface{ HTTPStatus() int }
	switch {
	case errors.Is(err, auth.ErrBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		a.fail(w, r, http.StatusUnauthorized, "credentials required: Basic (a maintainer of the project or an admin: password, personal access token) or Bearer <admin token>", nil)
	case errors.As(err, &hs):
		if s := hs.HTTPStatus(); s == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "10")
			a.fail(w, r, s, "too many failed logins from this address; retry later", nil)
			return
		}
		a.fail(w, r, http.StatusInternalServerError, "", err)
	case errors.Is(err, auth.ErrForbidden):
		a.fail(w, r, http.StatusForbidden, err.Error(), nil)
	case errors.Is(err, auth.ErrNotFound):
		a.fail(w, r, http.StatusNotFound, "project not found, or you may not see it", nil)
	default:
		a.fail(w, r, http.StatusInternalServerError, "", err)
	}
}

func (a *API) storeError(w http.ResponseWriter, r *http.Request, project string, err error) {
	if errors.Is(err, auth.ErrNotFound) {
		a.fail(w, r, http.StatusNotFound, "project "+strconv.Quote(project)+" not found; create it with hallmark project add", nil)
		return
	}
	a.fail(w, r, http.StatusInternalServerError, "", err)
}

func (a *API) get(w http.ResponseWriter, r *http.Request, project string, status int) {
	pr, err := a.store.Retention(r.Context(), project)
	if err != nil {
		a.storeError(w, r, project, err)
		return
	}
	out := PolicyJSON{Project: project}
	if pr.Policy != "" {
		p, err := ParsePolicy([]byte(pr.Policy))
		if err != nil {
			a.fail(w, r, http.StatusInternalServerError, "", err)
			return
		}
		out.Policy, out.Updated = p, &pr.Updated
		if !pr.LastRun.IsZero() {
			out.LastRun = &pr.LastRun
		}
	}
	writeJSON(w, status, out)
}

func (a *API) preview(w http.ResponseWriter, r *http.Request, project string) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicy))
	if err != nil {
		a.fail(w, r, http.StatusRequestEntityTooLarge, "the policy is larger than 4 KiB", nil)
		return
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		pr, err := a.store.Retention(r.Context(), project)
		if err != nil {
			a.storeError(w, r, project, err)
			return
		}
		if pr.Policy == "" {
			a.fail(w, r, http.StatusNotFound, "project "+project+" has no retention policy; send one to preview it", nil)
			return
		}
		raw = []byte(pr.Policy)
	} else if _, err := a.store.Retention(r.Context(), project); err != nil {
		a.storeError(w, r, project, err)
		return
	}
	p, err := ParsePolicy(raw)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	plan, err := a.c.PlanRetention(r.Context(), project, p)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, "", err)
		return
	}
	out := struct {
		Project string    `json:"project"`
		Policy  *Policy   `json:"policy"`
		Count   int       `json:"count"`
		Remove  []TagJSON `json:"remove"`
	}{project, p, len(plan), make([]TagJSON, 0, min(len(plan), listed))}
	for _, t := range plan[:min(len(plan), listed)] {
		out.Remove = append(out.Remove, TagJSON{t.Repository, t.Tag, t.Digest.String(), t.Updated.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
