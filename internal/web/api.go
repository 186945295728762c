package web

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Store is what the API reads from the metadata database.
type Store interface {
	ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]meta.Signature, error)
	SearchAnnotation(ctx context.Context, key, value string, limit int) ([]meta.Signature, error)
	SearchCertificate(ctx context.Context, oid, value string, limit int) ([]meta.Signature, error)
	SearchSigner(ctx context.Context, signer string, limit int) ([]meta.Signature, error)
	TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	GetManifest(ctx context.Context, repo, reference string) (*meta.Manifest, error)
}

// PullCheck reports whether the authenticated caller may pull repo.
type PullCheck = auth.PullCheck

// Authorizer authenticates API requests when registry access control is
// on. Authorize returns the caller's pull check (anonymous callers get
// the public projects), ErrUnauthenticated for rejected credentials, or
// another error (e.g. throttling, wrapped with its HTTP status by
// StatusOf).
type Authorizer interface {
	Authorize(r *http.Request) (PullCheck, error)
}

// ErrUnauthenticated is returned by an Authorizer for rejected
// credentials (auth.APIAuthorizer, the server's, returns it as is).
var ErrUnauthenticated = auth.ErrBadCredentials

// API serves /api/v1/.
type API struct {
	store    Store
	log      *slog.Logger
	authz    Authorizer
	policies Policies
}

// Option configures the API.
type Option func(*API)

// WithAuthorizer limits every answer to the repositories the caller may
// pull (registry access control on).
func WithAuthorizer(a Authorizer) Option { return func(api *API) { api.authz = a } }

// NewAPI returns the JSON API handler.
func NewAPI(store Store, log *slog.Logger, opts ...Option) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{store: store, log: log}
	for _, o := range opts {
		o(a)
	}
	return a
}

// pullCheck authenticates r; without an authorizer everything is visible.
// On failure it has answered the request and returns nil.
func (a *API) pullCheck(w http.ResponseWriter, r *http.Request) PullCheck {
	if a.authz == nil {
		return func(context.Context, string) (bool, error) { return true, nil }
	}
	check, err := a.authz.Authorize(r)
	if err == nil {
		return check
	}
	a.authFailed(w, r, err)
	return nil
}

// authFailed answers a request whose credentials the authorizer refused.
func (a *API) authFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		a.fail(w, r, http.StatusUnauthorized, "credentials rejected: use Basic credentials (user and password, personal access token, CI job token) or none for public projects", nil)
	default:
		status := http.StatusInternalServerError
		var se interface{ HTTPStatus() int }
		if errors.As(err, &se) {
			status = se.HTTPStatus()
		}
		msg := "internal error"
		if status < 500 {
			msg = err.Error()
		}
		a.fail(w, r, status, msg, err)
	}
}

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/images/", a.imageSignatures)
	mux.HandleFunc("GET /api/v1/search", a.search)
	a.registerPolicies(mux)
}

// SignatureJSON is one signature in API responses.
type SignatureJSON struct {
	Repository   string            `json:"repository"`
	Subject      string            `json:"subject"`
	Tags         []string          `json:"tags,omitempty"`
	Kind         string            `json:"kind"`
	Manifest     string            `json:"signatureManifest"`
	Layer        string            `json:"layer,omitempty"`
	PayloadType  string            `json:"payloadType,omitempty"`
	Signer       string            `json:"signer,omitempty"`
	CertIssuer   string            `json:"certificateIssuer,omitempty"`
	LogIndex     *int64            `json:"logIndex,omitempty"`
	Status       string            `json:"status"`
	StatusDetail string            `json:"statusDetail,omitempty"`
	Annotations  map[string]string `json:"annotations"`
	// CertExtensions are the keyless certificate's Fulcio extensions by
	// dotted OID (fulcio.OID(fulcio.SourceRepositoryDigest) is the commit
	// SHA, ...).
	CertExtensions map[string]string `json:"certificateExtensions,omitempty"`
	Created        time.Time         `json:"created"`
}

func toJSON(s meta.Signature, tags []string) SignatureJSON {
	ann := s.Annotations
	if ann == nil {
		ann = map[string]string{}
	}
	return SignatureJSON{Repository: s.Repository, Subject: s.Subject.String(), Tags: tags, Kind: s.Kind,
		Manifest: s.Manifest.String(), Layer: s.Layer.String(), PayloadType: s.PayloadType, Signer: s.Signer,
		CertIssuer: s.CertIssuer, LogIndex: s.LogIndex, Status: s.Status, StatusDetail: s.StatusDetail,
		Annotations: ann, CertExtensions: s.CertExtensions, Created: s.Created}
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if status >= 500 {
		a.log.ErrorContext(r.Context(), "api request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, apiError{Error: msg})
}

// imageSignatures serves GET /api/v1/images/{repo...}/signatures?digest=|tag=.
func (a *API) imageSignatures(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/api/v1/images/")
	repo, ok := strings.CutSuffix(rest, "/signatures")
	if !ok {
		a.fail(w, r, http.StatusNotFound, "no such endpoint; use /api/v1/images/<repository>/signatures?digest=<digest>", nil)
		return
	}
	if err := oci.ValidateName(repo); err != nil {
		a.fail(w, r, http.StatusBadRequest, err.Error(), nil)
		return
	}
	may := a.pullCheck(w, r)
	if may == nil {
		return
	}
	if ok, err := may(r.Context(), repo); err != nil {
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
		return
	} else if !ok {
		// As the registry: a repository the caller may not pull does not
		// exist for it.
		a.fail(w, r, http.StatusNotFound, "repository "+strconv.Quote(repo)+" not found, or you may not pull it (authenticate with Basic credentials)", nil)
		return
	}
	q := r.URL.Query()
	var d digest.Digest
	switch {
	case q.Get("digest") != "":
		var err error
		if d, err = oci.ParseDigest(q.Get("digest")); err != nil {
			a.fail(w, r, http.StatusBadRequest, err.Error(), nil)
			return
		}
	case q.Get("tag") != "":
		m, err := a.store.GetManifest(r.Context(), repo, q.Get("tag"))
		if errors.Is(err, meta.ErrManifestNotFound) || !oci.ValidTag(q.Get("tag")) {
			a.fail(w, r, http.StatusNotFound, "tag "+strconv.Quote(q.Get("tag"))+" not found in "+repo, nil)
			return
		}
		if err != nil {
			a.fail(w, r, http.StatusInternalServerError, "internal error", err)
			return
		}
		d = m.Digest
	default:
		a.fail(w, r, http.StatusBadRequest, "give the image as ?digest=sha256:... or ?tag=...", nil)
		return
	}
	// Pending first: when none is, the list read next is complete.
	pending := -1
	if a.policies != nil {
		var err error
		if pending, err = a.policies.Pending(r.Context(), repo, d); err != nil {
			a.fail(w, r, http.StatusInternalServerError, "internal error", err)
			return
		}
	}
	sigs, err := a.store.ListSignatures(r.Context(), repo, d)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
		return
	}
	tags, err := a.store.TagsOf(r.Context(), repo, d)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
		return
	}
	out := struct {
		Repository string   `json:"repository"`
		Digest     string   `json:"digest"`
		Tags       []string `json:"tags"`
		// IndexState is "pending" while signature manifests of the image
		// wait to be indexed (or judged again after a policy change),
		// PendingManifests of them; else "indexed".
		IndexState       string          `json:"indexState,omitempty"`
		PendingManifests int             `json:"pendingManifests"`
		Signatures       []SignatureJSON `json:"signatures"`
	}{Repository: repo, Digest: d.String(), Tags: tags, Signatures: make([]SignatureJSON, 0, len(sigs))}
	switch {
	case pending > 0:
		out.IndexState, out.PendingManifests = "pending", pending
	case pending == 0:
		out.IndexState = "indexed"
	}
	for _, s := range sigs {
		out.Signatures = append(out.Signatures, toJSON(s, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// maxSearch bounds what one search reads before filtering by access.
const maxSearch = 1000

// search serves GET /api/v1/search with one of
//
//	annotation=<key>=<value>      a signed annotation (e.g. com.gitlab.ci.commit.sha=<sha>)
//	certificate=<ext>=<value>     a keyless certificate extension, by name (sourceRepositoryDigest,
//	                              sourceRepositoryRef, runInvocationURI, runnerEnvironment, ...),
//	                              number (13) or dotted OID (fulcio.Resolve)
//	identity=<identity>           the signer: certificate identity (SAN) or key fingerprint
//
// and an optional limit (1..1000, default 100). Results are newest first
// and, with access control on, only from repositories the caller may pull.
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > maxSearch {
			a.fail(w, r, http.StatusBadRequest, "limit must be between 1 and 1000", nil)
			return
		}
		limit = n
	}
	var (
		field, query string
		run          func(n int) ([]meta.Signature, error)
	)
	set := 0
	for _, p := range []string{"annotation", "certificate", "identity"} {
		if q.Has(p) {
			set++
		}
	}
	usage := "give one of ?annotation=key=value (e.g. annotation=com.gitlab.ci.commit.sha=<sha>), ?certificate=<extension>=<value> (e.g. certificate=sourceRepositoryDigest=<sha>) or ?identity=<certificate identity or key fingerprint>"
	if set != 1 {
		a.fail(w, r, http.StatusBadRequest, usage, nil)
		return
	}
	switch {
	case q.Has("annotation"):
		field, query = "annotation", q.Get("annotation")
		key, value, ok := strings.Cut(query, "=")
		if !ok || key == "" {
			a.fail(w, r, http.StatusBadRequest, usage, nil)
			return
		}
		run = func(n int) ([]meta.Signature, error) { return a.store.SearchAnnotation(r.Context(), key, value, n) }
	case q.Has("certificate"):
		field, query = "certificate", q.Get("certificate")
		ext, value, ok := strings.Cut(query, "=")
		oid, known := fulcio.Resolve(ext)
		if !ok || !known {
			a.fail(w, r, http.StatusBadRequest, "certificate="+strconv.Quote(query)+": want <extension>=<value> with the extension by name (e.g. sourceRepositoryDigest, sourceRepositoryRef, runInvocationURI, runnerEnvironment, buildConfigURI), number (13) or OID ("+fulcio.OID(fulcio.SourceRepositoryDigest).String()+")", nil)
			return
		}
		run = func(n int) ([]meta.Signature, error) { return a.store.SearchCertificate(r.Context(), oid, value, n) }
	default:
		field, query = "identity", q.Get("identity")
		if query == "" {
			a.fail(w, r, http.StatusBadRequest, usage, nil)
			return
		}
		run = func(n int) ([]meta.Signature, error) { return a.store.SearchSigner(r.Context(), query, n) }
	}
	may := a.pullCheck(w, r)
	if may == nil {
		return
	}
	fetch := limit
	if a.authz != nil {
		fetch = maxSearch // filtered below
	}
	sigs, err := run(fetch)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
		return
	}
	allowed := map[string]bool{}
	results := make([]SignatureJSON, 0, min(len(sigs), limit))
	for _, s := range sigs {
		if len(results) == limit {
			break
		}
		ok, seen := allowed[s.Repository]
		if !seen {
			if ok, err = may(r.Context(), s.Repository); err != nil {
				a.fail(w, r, http.StatusInternalServerError, "internal error", err)
				return
			}
			allowed[s.Repository] = ok
		}
		if !ok {
			continue
		}
		tags, err := a.store.TagsOf(r.Context(), s.Repository, s.Subject)
		if err != nil {
			a.fail(w, r, http.StatusInternalServerError, "internal error", err)
			return
		}
		results = append(results, toJSON(s, tags))
	}
	out := map[string]any{field: query, "results": results}
	writeJSON(w, http.StatusOK, out)
}
