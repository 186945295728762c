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

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Store is what the API reads from the metadata database.
type Store interface {
	ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]meta.Signature, error)
	SearchAnnotation(ctx context.Context, key, value string, limit int) ([]meta.Signature, error)
	TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error)
	GetManifest(ctx context.Context, repo, reference string) (*meta.Manifest, error)
}

// API serves /api/v1/.
type API struct {
	store Store
	log   *slog.Logger
}

// NewAPI returns the JSON API handler.
func NewAPI(store Store, log *slog.Logger) *API {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &API{store: store, log: log}
}

// Register mounts the API on mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/images/", a.imageSignatures)
	mux.HandleFunc("GET /api/v1/search", a.search)
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
	Created      time.Time         `json:"created"`
}

func toJSON(s meta.Signature, tags []string) SignatureJSON {
	ann := s.Annotations
	if ann == nil {
		ann = map[string]string{}
	}
	return SignatureJSON{Repository: s.Repository, Subject: s.Subject.String(), Tags: tags, Kind: s.Kind,
		Manifest: s.Manifest.String(), Layer: s.Layer.String(), PayloadType: s.PayloadType, Signer: s.Signer,
		CertIssuer: s.CertIssuer, LogIndex: s.LogIndex, Status: s.Status, StatusDetail: s.StatusDetail,
		Annotations: ann, Created: s.Created}
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
		Repository string          `json:"repository"`
		Digest     string          `json:"digest"`
		Tags       []string        `json:"tags"`
		Signatures []SignatureJSON `json:"signatures"`
	}{repo, d.String(), tags, make([]SignatureJSON, 0, len(sigs))}
	for _, s := range sigs {
		out.Signatures = append(out.Signatures, toJSON(s, nil))
	}
	writeJSON(w, http.StatusOK, out)
}

// search serves GET /api/v1/search?annotation=key=value[&limit=N].
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kv := q.Get("annotation")
	key, value, ok := strings.Cut(kv, "=")
	if !ok || key == "" {
		a.fail(w, r, http.StatusBadRequest, "give ?annotation=key=value, e.g. annotation=com.gitlab.ci.commit.sha=<sha>", nil)
		return
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 1000 {
			a.fail(w, r, http.StatusBadRequest, "limit must be between 1 and 1000", nil)
			return
		}
		limit = n
	}
	sigs, err := a.store.SearchAnnotation(r.Context(), key, value, limit)
	if err != nil {
		a.fail(w, r, http.StatusInternalServerError, "internal error", err)
		return
	}
	results := make([]SignatureJSON, 0, len(sigs))
	for _, s := range sigs {
		tags, err := a.store.TagsOf(r.Context(), s.Repository, s.Subject)
		if err != nil {
			a.fail(w, r, http.StatusInternalServerError, "internal error", err)
			return
		}
		results = append(results, toJSON(s, tags))
	}
	writeJSON(w, http.StatusOK, struct {
		Annotation string          `json:"annotation"`
		Results    []SignatureJSON `json:"results"`
	}{kv, results})
}
