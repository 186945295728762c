package registry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// DefaultMaxManifestSize is the largest manifest accepted unless configured
// otherwise; the spec asks registries to accept at least 4 MB.
const DefaultMaxManifestSize = 8 << 20

// Config tunes the registry.
type Config struct {
	// MaxManifestSize is the largest manifest body accepted (413 above).
	MaxManifestSize int64
	// SparseManifests accepts manifests whose descriptors name content the
	// repository does not have (yet): an index's child manifests, an image
	// manifest's config and layers (OCI 1.1 lets a registry accept them;
	// used to mirror some platforms of an index). What is present must
	// still match its descriptor's size. Off, such a push fails with
	// MANIFEST_BLOB_UNKNOWN.
	SparseManifests bool
	// Events, if set, is told about every successful push and delete.
	Events EventSink
	// MayPush, if set, reports whether the client of a request (its
	// context) may push to repo: under require-signature: enforce such a
	// client is served unsigned images, so that it can sign them. Unset
	// (access control off), nobody is.
	MayPush func(ctx context.Context, repo string) (bool, error)
	// SettleIndex, if set, indexes the signature manifests of image d of
	// repo that are still queued (the signature index is asynchronous),
	// until none is or ctx ends. Under require-signature, a pull of an
	// image without a verified signature calls it before deciding, so a
	// pull made right after signing sees the signature.
	SettleIndex func(ctx context.Context, repo string, d digest.Digest) error
	// BlobDeletingWait bounds how long the commit of a blob waits while
	// garbage collection deletes the object of the same digest (one
	// storage request, normally) before it answers 503 (default 10s).
	BlobDeletingWait time.Duration
}

// EventSink receives registry events (used by the signature indexer and the
// audit log).
type EventSink interface {
	ManifestPushed(ctx context.Context, m *meta.Manifest, tags []string)
	ManifestDeleted(ctx context.Context, repo, reference string)
}

// Store is the metadata the registry keeps: which blobs each repository
// has, its manifests and tags, and what the pull policy reads (policy.go).
// Lookups and deletes in a repository that does not exist return a
// *meta.RepositoryNotFoundError (NAME_UNKNOWN). The meta drivers
// implement it.
type Store interface {
	blobLinks
	manifestStore
	listing
	signaturePolicy
}

// blobLinks records which blobs each repository may serve. A blob is
// committed to the blob store only after PrepareBlob, so garbage
// collection never deletes the object a push is about to link (see
// internal/gc).
type blobLinks interface {
	PrepareBlob(ctx context.Context, d digest.Digest) error
	LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error
	MountBlob(ctx context.Context, from, to string, d digest.Digest) (int64, error)
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
}

// manifestStore keeps manifests, tags and the subject of each referrer.
type manifestStore interface {
	PutManifest(ctx context.Context, m *meta.Manifest, tags []string, conds ...meta.TagCondition) error
	GetManifest(ctx context.Context, repo, reference string) (*meta.Manifest, error)
	DeleteImage(ctx context.Context, repo string, d digest.Digest) ([]meta.DeletedManifest, error)
	DeleteTag(ctx context.Context, repo, tag string) error
	Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]meta.Descriptor, error)
}

// listing pages through tags and repositories.
type listing interface {
	ListTags(ctx context.Context, repo, last string, n int) (tags []string, more bool, err error)
	ListRepositories(ctx context.Context, last string, n int) (repos []string, more bool, err error)
}

// Handler serves the /v2/ API.
type Handler struct {
	blobs blob.Store
	meta  Store
	cfg   Config
	log   *slog.Logger

	// uploadLocks serialises requests on one upload session in this process.
	uploadLocks keyedLocks
	// UploadsInProgress, if set, is called with +1/-1 as sessions start and end.
	UploadsInProgress func(delta int)
	// PullOutcomes, if set, is called for every pull the pull policy
	// refused or served with a warning (policy.go).
	PullOutcomes func(PullOutcome)
}

// New returns a registry handler over the given stores.
func New(blobs blob.Store, store Store, log *slog.Logger, cfg Config) (*Handler, error) {
	if blobs == nil || store == nil {
		return nil, errors.New("registry: blob store and metadata store are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxManifestSize <= 0 {
		cfg.MaxManifestSize = DefaultMaxManifestSize
	}
	if cfg.BlobDeletingWait <= 0 {
		cfg.BlobDeletingWait = 10 * time.Second
	}
	return &Handler{blobs: blobs, meta: store, cfg: cfg, log: log}, nil
}

// RouteSetter is implemented by response writers that want to know which
// endpoint served a request (the metrics middleware).
type RouteSetter interface{ SetRoute(string) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	rt, perr := parseRoute(r.URL.Path)
	if rs, ok := w.(RouteSetter); ok {
		rs.SetRoute(routeLabel(rt.kind, r.Method))
	}
	if perr != nil {
		writeError(w, r, perr)
		return
	}
	if err := h.serve(w, r, rt); err != nil {
		h.fail(w, r, err)
	}
}

// serve dispatches a parsed request to its endpoint.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, rt route) error {
	switch rt.kind {
	case routeBase:
		if err := allow(r, http.MethodGet, http.MethodHead); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			w.Write([]byte("{}"))
		}
		return nil
	case routeCatalog:
		return h.only(w, r, rt, h.catalog, http.MethodGet)
	case routeTags:
		return h.only(w, r, rt, h.tags, http.MethodGet)
	case routeReferrers:
		return h.only(w, r, rt, h.referrers, http.MethodGet)
	case routeUploadStart:
		return h.only(w, r, rt, h.startUpload, http.MethodPost)
	case routeUpload:
		return h.upload(w, r, rt)
	case routeManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.getManifest(w, r, rt)
		case http.MethodPut:
			return h.putManifest(w, r, rt)
		case http.MethodDelete:
			return h.deleteManifest(w, r, rt)
		}
		return methodNotAllowed(r)
	case routeBlob:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.getBlob(w, r, rt)
		case http.MethodDelete:
			return h.deleteBlob(w, r, rt)
		}
		return methodNotAllowed(r)
	}
	return apiErr(http.StatusNotFound, oci.CodeUnsupported, "no such endpoint: "+truncate(r.URL.Path, 200), nil)
}

// only serves the request with serve if its method is one of methods.
func (h *Handler) only(w http.ResponseWriter, r *http.Request, rt route, serve func(http.ResponseWriter, *http.Request, route) error, methods ...string) error {
	if err := allow(r, methods...); err != nil {
		return err
	}
	return serve(w, r, rt)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := toAPIError(err)
	if internal {
		h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if e.Status == http.StatusServiceUnavailable {
		// The client sees only "unavailable"; the operator needs the cause.
		h.log.WarnContext(r.Context(), "request failed: storage unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", "5")
	}
	writeError(w, r, e)
}

func allow(r *http.Request, methods ...string) error {
	for _, m := range methods {
		if r.Method == m {
			return nil
		}
	}
	return methodNotAllowed(r)
}

func methodNotAllowed(r *http.Request) error {
	return apiErr(http.StatusMethodNotAllowed, oci.CodeUnsupported, "method "+r.Method+" is not allowed on this endpoint", nil)
}
