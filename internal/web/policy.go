package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Policies is what the trust policy API needs of the signature index
// (internal/index's Indexer).
type Policies interface {
	Policy(ctx context.Context, project string) (index.PolicyView, error)
	SetPolicy(ctx context.Context, project string, p *index.Policy, by string) (index.PolicyView, error)
	Rebuild(ctx context.Context, path string) (int64, int, error)
	Pending(ctx context.Context, repo string, subject digest.Digest) (int, error)
}

// CallerAuthorizer is an Authorizer that also says who the caller is and
// what it may do (auth.APIAuthorizer): setting a policy needs maintainer
// rights.
type CallerAuthorizer interface {
	Caller(r *http.Request) (auth.Caller, error)
}

// WithPolicies serves the trust policy and index endpoints, and the index
// state of an image's signatures, from p.
func WithPolicies(p Policies) Option { return func(api *API) { api.policies = p } }

// WithProjectsFallback serves the other endpoints under ProjectsPath
// (e.g. a project's retention policy) with h.
func WithProjectsFallback(h http.Handler) Option {
	return func(api *API) { api.projectsFallback = h }
}

// Paths of the trust policy and index endpoints.
const (
	ProjectsPath = "/api/v1/projects/"
	RebuildPath  = "/api/v1/index/rebuild"
)

func (a *API) registerPolicies(mux *http.ServeMux) {
	if a.policies == nil {
		return
	}
	mux.HandleFunc("GET "+ProjectsPath, a.projectPolicy)
	mux.HandleFunc("PUT "+ProjectsPath, a.projectPolicy)
	mux.HandleFunc("POST "+RebuildPath, a.rebuild)
}

// caller authenticates r; without an authorizer (access control off)
// anyone may do anything. On failure it has answered and returns false.
func (a *API) caller(w http.ResponseWriter, r *http.Request) (auth.Caller, bool) {
	if a.authz == nil {
		return auth.OpenCaller(r.RemoteAddr), true
	}
	ca, ok := a.authz.(CallerAuthorizer)
	if !ok {
		a.fail(w, r, http.StatusNotImplemented, "this server's authorizer cannot tell maintainers; trust policies are not available", nil)
		return auth.Caller{}, false
	}
	c, err := ca.Caller(r)
	if err != nil {
		a.authFailed(w, r, err)
		return auth.Caller{}, false
	}
	return c, true
}

// maxPolicyBody bounds a PUT policy body.
const maxPolicyBody = index.MaxPolicySize

// projectPolicy serves GET and PUT /api/v1/projects/{path}/policy: the
// project's trust policy (readers: whoever may pull the project), and a
// new version of it (maintainers and admins), after which the project's
// signatures are judged again in the background.
func (a *API) projectPolicy(w http.ResponseWriter, r *http.Request) {
	project, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, ProjectsPath), "/policy")
	if !ok && a.projectsFallback != nil {
		a.projectsFallback.ServeHTTP(w, r)
		return
	}
	if !ok {
		a.fail(w, r, http.StatusNotFound, "no such endpoint; use "+ProjectsPath+"<project path>/policy", nil)
		return
	}
	if err := oci.ValidateName(project); err != nil {
		a.fail(w, r, http.StatusBadRequest, "project path: "+err.Error(), nil)
		return
	}
	c, ok := a.caller(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	need := auth.ActionPull
	if r.Method == http.MethodPut {
		need = auth.ActionDelete
	}
	if !a.allowed(w, r, c, project, need) {
		return
	}
	var (
		v   index.PolicyView
		err error
	)
	if r.Method == http.MethodGet {
		v, err = a.policies.Policy(ctx, project)
	} else {
		var p *index.Policy
		body, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPolicyBody))
		if rerr != nil {
			a.fail(w, r, http.StatusRequestEntityTooLarge, "policy body: "+rerr.Error()+" (the limit is "+strconv.Itoa(maxPolicyBody)+" bytes)", nil)
			return
		}
		if p, err = index.ParsePolicy(body); err == nil {
			v, err = a.policies.SetPolicy(ctx, project, p, c.Principal.Name)
		}
	}
	switch {
	case errors.Is(err, meta.ErrProjectNotFound):
		a.fail(w, r, http.StatusNotFound, "project "+strconv.Quote(project)+" not found (create it with hallmark project add)", nil)
	case errors.Is(err, index.ErrInvalidPolicy):
		a.fail(w, r, http.StatusBadRequest, err.Error(), nil)
	case err != nil:
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

// allowed checks that c may do action on path; if not it has answered:
// 401 for anonymous callers, 403 for callers who may see the project,
// else 404 (a project the caller may not see does not exist for it).
func (a *API) allowed(w http.ResponseWriter, r *http.Request, c auth.Caller, path, action string) bool {
	ok, err := c.May(r.Context(), path, action)
	if err == nil && !ok && action != auth.ActionPull {
		var see bool
		if see, err = c.May(r.Context(), path, auth.ActionPull); err == nil && see && c.Principal.Name != "" {
			a.fail(w, r, http.StatusForbidden, "changing the trust policy of "+path+" needs maintainer rights in the project (or an admin)", nil)
			return false
		}
	}
	switch {
	case err != nil:
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
	case ok:
		return true
	case c.Principal.Name == "":
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		a.fail(w, r, http.StatusUnauthorized, "authenticate with Basic credentials of a maintainer of the project (or an admin)", nil)
	default:
		a.fail(w, r, http.StatusNotFound, "project "+strconv.Quote(path)+" not found, or you may not see it", nil)
	}
	return false
}

// rebuildRequest is the body of POST /api/v1/index/rebuild.
type rebuildRequest struct {
	// Project limits the rebuild to the repositories under this path
	// (maintainers of it may ask); "" rebuilds everything (admins).
	Project string `json:"project"`
}

// rebuild serves POST /api/v1/index/rebuild: every indexed signature (of
// one project) is judged again in the background, as a fresh index
// would; idempotent.
func (a *API) rebuild(w http.ResponseWriter, r *http.Request) {
	var req rebuildRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		a.fail(w, r, http.StatusBadRequest, `request body: `+err.Error()+` (want {"project": "<path>"} or nothing for every repository)`, nil)
		return
	}
	if req.Project != "" {
		if err := oci.ValidateName(req.Project); err != nil {
			a.fail(w, r, http.StatusBadRequest, "project path: "+err.Error(), nil)
			return
		}
	}
	c, ok := a.caller(w, r)
	if !ok {
		return
	}
	if req.Project == "" && !c.IsAdmin() {
		status := http.StatusForbidden
		if c.Principal.Name == "" {
			status = http.StatusUnauthorized
			w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		}
		a.fail(w, r, status, "rebuilding the whole index needs an admin; maintainers may rebuild their project's ({\"project\": \"<path>\"})", nil)
		return
	}
	if req.Project != "" && !a.allowed(w, r, c, req.Project, auth.ActionDelete) {
		return
	}
	gen, n, err := a.policies.Rebuild(r.Context(), req.Project)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": req.Project, "generation": gen, "queued": n})
}
