package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/httpjson"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// API routes.
const (
	QuarantinePath       = "/api/v1/quarantine"
	QuarantineLiftPath   = "/api/v1/quarantine/lift"
	RequireSignaturePath = "/api/v1/projects/require-signature"
)

// maxBody bounds a request body: MaxItems items of the longest names fit.
const maxBody = 1 << 20

// Authorizer authenticates API requests (auth.APIAuthorizer): Basic
// credentials, a registry access token, the admin token, or none
// (anonymous, who may change nothing). Errors: auth.ErrBadCredentials,
// auth.ErrThrottled (*auth.ThrottledError), or another error.
type Authorizer interface {
	Caller(r *http.Request) (auth.Caller, error)
}

// API serves the pull policy's JSON API:
//
//	POST /api/v1/quarantine                 {"items": [{"repository", "digest"}], "reason"} -> {"results": [...]}
//	POST /api/v1/quarantine/lift            {"items": [...], "reason" (optional)} -> {"results": [...]}
//	GET  /api/v1/quarantine?repository=&digest=&history=true&limit=&before=  -> {"quarantines": [...], "next"}
//	GET  /api/v1/projects/require-signature?project=PATH  -> {"project", "requireSignature"}
//	POST /api/v1/projects/require-signature {"project", "requireSignature": "off|warn|enforce"} -> {..., "previous"}
//
// Changes need maintainer rights in the project (or an admin); reads,
// pull rights. Without an authorizer (registry access control off),
// every caller may do everything, as on the registry.
type API struct {
	svc   *Service
	authz Authorizer
}

// NewAPI returns the API over svc; authz nil means access control is off.
func NewAPI(svc *Service, authz Authorizer) *API { return &API{svc: svc, authz: authz} }

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+QuarantinePath, a.quarantine)
	mux.HandleFunc("POST "+QuarantineLiftPath, a.lift)
	mux.HandleFunc("GET "+QuarantinePath, a.list)
	mux.HandleFunc("GET "+RequireSignaturePath, a.getRequireSignature)
	mux.HandleFunc("POST "+RequireSignaturePath, a.setRequireSignature)
}

// open is the caller when access control is off: anyone, every right.
type open struct{ remote string }

func (o open) Identity() (name, kind, remote string) { return "", auth.KindAnonymous, o.remote }

func (open) May(context.Context, string, string) (bool, error) { return true, nil }

// caller authenticates r; change: the request changes the policy, which
// anonymous callers may not (they are asked for credentials).
func (a *API) caller(r *http.Request, change bool) (Caller, error) {
	if a.authz == nil {
		return open{r.RemoteAddr}, nil
	}
	c, err := a.authz.Caller(r)
	if err != nil {
		return nil, err
	}
	if change && c.Principal.Kind == auth.KindAnonymous {
		return nil, auth.ErrBadCredentials
	}
	return c, nil
}

// ItemJSON names a manifest in a repository.
type ItemJSON struct {
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
}

// QuarantineJSON is a quarantine record in API responses.
type QuarantineJSON struct {
	ID         int64      `json:"id"`
	Repository string     `json:"repository"`
	Digest     string     `json:"digest"`
	Reason     string     `json:"reason"`
	Actor      string     `json:"actor"`
	Created    time.Time  `json:"created"`
	Lifted     *time.Time `json:"lifted,omitempty"`
	LiftedBy   string     `json:"liftedBy,omitempty"`
	LiftReason string     `json:"liftReason,omitempty"`
}

// ToJSON renders q for the API.
func ToJSON(q meta.Quarantine) QuarantineJSON {
	out := QuarantineJSON{ID: q.ID, Repository: q.Repository, Digest: q.Digest.String(), Reason: q.Reason, Actor: q.Actor,
		Created: q.Created.UTC(), LiftedBy: q.LiftedBy, LiftReason: q.LiftReason}
	if !q.Active() {
		l := q.Lifted.UTC()
		out.Lifted = &l
	}
	return out
}

// ResultJSON is what a change did to one item: status is "quarantined",
// "already quarantined", "lifted" or "not quarantined".
type ResultJSON struct {
	Repository string          `json:"repository"`
	Digest     string          `json:"digest"`
	Status     string          `json:"status"`
	Quarantine *QuarantineJSON `json:"quarantine,omitempty"`
}

type changeRequest struct {
	Items  []ItemJSON `json:"items"`
	Reason string     `json:"reason"`
}

func (a *API) quarantine(w http.ResponseWriter, r *http.Request) {
	a.change(w, r, a.svc.Quarantine, "quarantined", "already quarantined")
}

func (a *API) lift(w http.ResponseWriter, r *http.Request) {
	a.change(w, r, a.svc.Lift, "lifted", "not quarantined")
}

type changeFunc func(ctx context.Context, c Caller, items []meta.QuarantineItem, reason string) ([]meta.QuarantineOutcome, error)

func (a *API) change(w http.ResponseWriter, r *http.Request, do changeFunc, changedStatus, unchangedStatus string) {
	c, err := a.caller(r, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req changeRequest
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	if len(req.Items) > MaxItems { // before building anything of them
		a.fail(w, r, fmt.Errorf("%w: items: at most %d in one request", ErrInvalid, MaxItems))
		return
	}
	items := make([]meta.QuarantineItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = meta.QuarantineItem{Repository: it.Repository, Digest: digest.Digest(it.Digest)}
	}
	out, err := do(r.Context(), c, items, req.Reason)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	res := struct {
		Results []ResultJSON `json:"results"`
	}{make([]ResultJSON, 0, len(out))}
	for _, o := range out {
		rj := ResultJSON{Repository: o.Item.Repository, Digest: o.Item.Digest.String(), Status: unchangedStatus}
		if o.Changed {
			rj.Status = changedStatus
		}
		if o.Quarantine != nil {
			q := ToJSON(*o.Quarantine)
			rj.Quarantine = &q
		}
		res.Results = append(res.Results, rj)
	}
	writeJSON(w, http.StatusOK, res)
}

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	c, err := a.caller(r, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	q := meta.QuarantineQuery{Repository: v.Get("repository"), History: v.Get("history") == "true", Limit: 100}
	if s := v.Get("digest"); s != "" {
		q.Digest = digest.Digest(s)
		if err := q.Digest.Validate(); err != nil {
			a.fail(w, r, fmt.Errorf("%w: digest: %v", ErrInvalid, err))
			return
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxListScan {
			a.fail(w, r, fmt.Errorf("%w: limit: use 1-%d", ErrInvalid, maxListScan))
			return
		}
		q.Limit = n
	}
	if s := v.Get("before"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			a.fail(w, r, fmt.Errorf("%w: before: use the next value of a previous page", ErrInvalid))
			return
		}
		q.Before = n
	}
	recs, err := a.svc.List(r.Context(), c, q)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := struct {
		Quarantines []QuarantineJSON `json:"quarantines"`
		Next        int64            `json:"next,omitempty"`
	}{Quarantines: make([]QuarantineJSON, 0, len(recs))}
	for _, rec := range recs {
		out.Quarantines = append(out.Quarantines, ToJSON(rec))
	}
	if len(recs) == q.Limit {
		out.Next = recs[len(recs)-1].ID
	}
	writeJSON(w, http.StatusOK, out)
}

// requireSignatureJSON is the require-signature setting of a project.
type requireSignatureJSON struct {
	Project          string `json:"project"`
	RequireSignature string `json:"requireSignature"`
	Previous         string `json:"previous,omitempty"`
}

func (a *API) getRequireSignature(w http.ResponseWriter, r *http.Request) {
	c, err := a.caller(r, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	project := r.URL.Query().Get("project")
	rs, err := a.svc.RequireSignature(r.Context(), c, project)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, requireSignatureJSON{Project: project, RequireSignature: string(rs)})
}

func (a *API) setRequireSignature(w http.ResponseWriter, r *http.Request) {
	c, err := a.caller(r, true)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req requireSignatureJSON
	if err := decode(w, r, &req); err != nil {
		a.fail(w, r, err)
		return
	}
	prev, err := a.svc.SetRequireSignature(r.Context(), c, req.Project, meta.RequireSignature(req.RequireSignature))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, requireSignatureJSON{Project: req.Project, RequireSignature: req.RequireSignature, Previous: string(prev)})
}

// decode reads one JSON object of at most maxBody bytes, with no unknown
// fields and nothing after it.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: request body: larger than %d bytes", errTooLarge, maxBody)
		}
		return fmt.Errorf("%w: request body: %v", ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: request body: one JSON object, nothing after it", ErrInvalid)
	}
	return nil
}

var errTooLarge = errors.New("request too large")

// fail answers with err's status and message ({"error": "..."}, as the
// other JSON APIs).
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var te *auth.ThrottledError
	var rl *RateLimitedError
	status, msg := http.StatusInternalServerError, "internal error; see the server log"
	switch {
	case errors.As(err, &te):
		w.Header().Set("Retry-After", strconv.Itoa(int((te.RetryAfter+time.Second-1)/time.Second)))
		status, msg = http.StatusTooManyRequests, err.Error()
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(int((rl.RetryAfter+time.Second-1)/time.Second)))
		status, msg = http.StatusTooManyRequests, err.Error()
	case errors.Is(err, auth.ErrBadCredentials):
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		status, msg = http.StatusUnauthorized, "credentials required: Basic (user and password or personal access token), a registry token, or Bearer <admin token>"
	case errors.Is(err, errTooLarge):
		status, msg = http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, ErrForbidden):
		status, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, meta.ErrUnavailable):
		w.Header().Set("Retry-After", "5")
		status, msg = http.StatusServiceUnavailable, meta.ErrUnavailable.Error()
	}
	if status == http.StatusInternalServerError {
		a.svc.log.ErrorContext(r.Context(), "policy API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	httpjson.Write(w, status, v)
}
