package registry

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// DefaultMaxManifestSize is the largest manifest accepted unless configured
// otherwise; the spec asks registries to accept at least 4 MB.
const DefaultMaxManifestSize = 8 << 20

// Config tunes the registry.
type Config struct {
	// MaxManifestSize is the largest manifest body accepted (413 above).
	MaxManifestSize int64
	// Events, if set, is told about every successful push and delete.
	Events EventSink
}

// EventSink receives registry events (used by the signature indexer and the
// audit log).
type EventSink interface {
	ManifestPushed(ctx context.Context, m *meta.Manifest, tags []string)
	ManifestDeleted(ctx context.Context, repo, reference string)
}

// Handler serves the /v2/ API.
type Handler struct {
	blobs blob.Store
	meta  meta.Store
	cfg   Config
	log   *slog.Logger

	// uploadLocks serialises requests on one upload session in this process.
	uploadLocks keyedLocks
	// UploadsInProgress, if set, is called with +1/-1 as sessions start and end.
	UploadsInProgress func(delta int)
}

// New returns a registry handler over the given stores.
func New(blobs blob.Store, store meta.Store, log *slog.Logger, cfg Config) (*Handler, error) {
	if blobs == nil || store == nil {
		return nil, errors.New("registry: blob store and metadata store are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxManifestSize <= 0 {
		cfg.MaxManifestSize = DefaultMaxManifestSize
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
		writeError(w, perr)
		return
	}
	var err error
	switch rt.kind {
	case routeBase:
		err = allow(r, http.MethodGet, http.MethodHead)
		if err == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "2")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				w.Write([]byte("{}"))
			}
		}
	case routeCatalog:
		if err = allow(r, http.MethodGet); err == nil {
			err = h.catalog(w, r)
		}
	case routeTags:
		if err = allow(r, http.MethodGet); err == nil {
			err = h.tags(w, r, rt)
		}
	case routeReferrers:
		if err = allow(r, http.MethodGet); err == nil {
			err = h.referrers(w, r, rt)
		}
	case routeManifest:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = h.getManifest(w, r, rt)
		case http.MethodPut:
			err = h.putManifest(w, r, rt)
		case http.MethodDelete:
			err = h.deleteManifest(w, r, rt)
		default:
			err = methodNotAllowed(r)
		}
	case routeBlob:
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			err = h.getBlob(w, r, rt)
		case http.MethodDelete:
			err = h.deleteBlob(w, r, rt)
		default:
			err = methodNotAllowed(r)
		}
	case routeUploadStart:
		if err = allow(r, http.MethodPost); err == nil {
			err = h.startUpload(w, r, rt)
		}
	case routeUpload:
		err = h.upload(w, r, rt)
	default:
		err = apiErr(http.StatusNotFound, CodeUnsupported, "no such endpoint: "+truncate(r.URL.Path, 200), nil)
	}
	if err != nil {
		h.fail(w, r, err)
	}
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	e, internal := toAPIError(err)
	if internal {
		h.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(e.Status)
		return
	}
	writeError(w, e)
}

// orNameUnknown is called when a lookup in repo missed: it returns
// NAME_UNKNOWN when the repository itself does not exist, else miss. The
// extra query runs only on this miss path.
func (h *Handler) orNameUnknown(ctx context.Context, repo string, miss error) error {
	if _, _, err := h.meta.ListTags(ctx, repo, "", 0); errors.Is(err, meta.ErrRepositoryNotFound) {
		return apiErr(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry", map[string]string{"name": repo})
	}
	return miss
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
	return apiErr(http.StatusMethodNotAllowed, CodeUnsupported, "method "+r.Method+" is not allowed on this endpoint", nil)
}
