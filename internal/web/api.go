package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/httpjson"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Store is what the API reads from the metadata database.
type Store interface {
	SearchStore
	ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]meta.Signature, error)
	TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	GetManifest(ctx context.Context, repo, reference string) (*meta.Manifest, error)
}

// PullCheck reports whether the authenticated caller may pull repo.
type PullCheck = auth.PullCheck

// Authorizer authenticates API requests when registry access control is
// on. Authorize returns the caller's pull check (anonymous callers get
// the public projects), Visible the same as a filter for searches;
// both return ErrUnauthenticated for rejected credentials, or another
// error (e.g. throttling, wrapped with its HTTP status by StatusOf).
type Authorizer interface {
	Authorize(r *http.Request) (PullCheck, error)
	Visible(r *http.Request) (auth.Visible, error)
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
	// projectsFallback serves what else lives under ProjectsPath.
	projectsFallback http.Handler
	searcher         *Searcher
	export           exportDeps
	now              func() time.Time
}

// Option configures the API.
type Option func(*API)

// WithAuthorizer limits every answer to the repositories the caller may
// pull (registry access control on).
func WithAuthorizer(a Authorizer) Option { return func(api *API) { api.authz = a } }

// WithSearcher makes the API search with s (shared with the console);
// default: a Searcher over the store with the default SearchConfig.
func WithSearcher(s *Searcher) Option { return func(api *API) { api.searcher = s } }

// WithExport lets the API export bundles: blobs reads signature layers,
// proofs (may be nil) adds inclusion proofs from this server's log to
// legacy signatures.
func WithExport(blobs Blobs, proofs InclusionProofs) Option {
	return func(api *API) { api.export = exportDeps{blobs: blobs, proofs: proofs} }
}

// NewAPI returns the JSON API handler.
func NewAPI(store Store, log *slog.Logger, opts ...Option) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{store: store, log: log, now: time.Now}
	for _, o := range opts {
		o(a)
	}
	if a.searcher == nil {
		a.searcher = NewSearcher(store, SearchConfig{})
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
	if err != nil {
		a.authFailed(w, r, err)
		return nil
	}
	return check
}

// access authenticates r for a search; without an authorizer everything
// is visible. On failure it has answered the request (ok false).
func (a *API) access(w http.ResponseWriter, r *http.Request) (Access, bool) {
	if a.authz == nil {
		return Access{All: true}, true
	}
	v, err := a.authz.Visible(r)
	if err != nil {
		a.authFailed(w, r, err)
		return Access{}, false
	}
	return Access(v), true
}

func (a *API) authFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrUnauthenticated) {
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
		a.fail(w, r, http.StatusUnauthorized, "credentials rejected: use Basic credentials (user and password, personal access token, CI job token) or none for public projects", nil)
		return
	}
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

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/images/", a.imageSignatures)
	mux.HandleFunc("GET /api/v1/search", a.search)
	a.registerPolicies(mux)
	mux.HandleFunc("GET /api/v1/search/export", a.exportSearch)
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
	// CertSHA256 is the hex SHA-256 of the signing certificate.
	CertSHA256 string `json:"certificateSHA256,omitempty"`
	// CA is what this server's CA recorded when it issued the
	// certificate: the verified token's claims the certificate cannot
	// carry (pipeline_id, job_id, user_login, runner_id, ...).
	CA *CertificateJSON `json:"caRecord,omitempty"`
	// Contradictions are annotations that the CA's claims or the
	// certificate contradict.
	Contradictions []meta.Contradiction `json:"contradictions,omitempty"`
	// Matches (search results) say what the query matched and on what.
	Matches []Match   `json:"matches,omitempty"`
	Created time.Time `json:"created"`
}

// CertificateJSON is the CA's record of a certificate.
type CertificateJSON struct {
	Serial      string            `json:"serial"`
	IssuedAt    time.Time         `json:"issuedAt"`
	NotAfter    time.Time         `json:"notAfter"`
	Issuer      string            `json:"issuer"`
	Subject     string            `json:"subject"`
	ProjectPath string            `json:"projectPath,omitempty"`
	Claims      map[string]string `json:"claims"`
}

// ResultJSON is r as the API returns it.
func ResultJSON(r Result) SignatureJSON {
	s := r.Signature
	ann := s.Annotations
	if ann == nil {
		ann = map[string]string{}
	}
	out := SignatureJSON{Repository: s.Repository, Subject: s.Subject.String(), Tags: r.Tags, Kind: s.Kind,
		Manifest: s.Manifest.String(), Layer: s.Layer.String(), PayloadType: s.PayloadType, Signer: s.Signer,
		CertIssuer: s.CertIssuer, LogIndex: s.LogIndex, Status: s.Status, StatusDetail: s.StatusDetail,
		Annotations: ann, CertExtensions: s.CertExtensions, CertSHA256: s.CertSHA256, Contradictions: r.Contradictions,
		Matches: r.Matches, Created: s.Created}
	if c := s.Certificate; c != nil {
		out.CA = &CertificateJSON{Serial: c.Serial, IssuedAt: c.IssuedAt, NotAfter: c.NotAfter, Issuer: c.Issuer, Subject: c.Subject,
			ProjectPath: c.ProjectPath, Claims: c.Claims}
	}
	return out
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) { httpjson.Write(w, status, v) }

func (a *API) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	if status >= 500 {
		a.log.ErrorContext(r.Context(), "api request failed", "path", r.URL.Path, "err", err)
	}
	writeJSON(w, status, apiError{Error: msg})
}

// searchFailed answers a failed search: 400 for a bad query, 503 when
// busy or out of time, 500 otherwise.
func (a *API) searchFailed(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrBadQuery):
		a.fail(w, r, http.StatusBadRequest, err.Error(), nil)
	case errors.Is(err, ErrBusy), errors.Is(err, ErrTimeout), errors.Is(err, meta.ErrUnavailable):
		w.Header().Set("Retry-After", "2")
		a.fail(w, r, http.StatusServiceUnavailable, err.Error(), nil)
	default:
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
	}
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
		out.Signatures = append(out.Signatures, ResultJSON(NewResult(s, nil, Query{})))
	}
	writeJSON(w, http.StatusOK, out)
}

// SearchJSON is the answer of GET /api/v1/search.
type SearchJSON struct {
	Query   map[string][]string `json:"query"`
	Results []SignatureJSON     `json:"results"`
	// Next is the cursor of the next page (pass it as cursor=); empty on
	// the last page.
	Next string `json:"next,omitempty"`
}

// search serves GET /api/v1/search: the conditions of Query as
// parameters (ParseQuery), newest first, a page of limit results (1..1000,
// default 20) and the cursor of the next. Only signatures in repositories
// the caller may pull are searched: access is part of the query.
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	q, err := ParseQuery(r.URL.Query(), a.now())
	if err != nil {
		a.searchFailed(w, r, err)
		return
	}
	acc, ok := a.access(w, r)
	if !ok {
		return
	}
	page, err := a.searcher.Search(r.Context(), q, acc)
	if err != nil {
		a.searchFailed(w, r, err)
		return
	}
	out := SearchJSON{Query: q.Values(), Results: make([]SignatureJSON, 0, len(page.Results)), Next: page.Next}
	for _, res := range page.Results {
		out.Results = append(out.Results, ResultJSON(res))
	}
	writeJSON(w, http.StatusOK, out)
}
