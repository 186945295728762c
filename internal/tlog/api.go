package tlog

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/hallmark-dev/hallmark/pkg/rekor"
)

// APIConfig configures the HTTP API.
type APIConfig struct {
	// BaseURL is the server's external URL (no trailing slash), used for
	// Location headers.
	BaseURL string
	// MaxRequestBytes bounds request bodies (default 4 MiB: a dsse entry
	// carries the whole attestation envelope, e.g. an SBOM; only hashes of
	// it are stored).
	MaxRequestBytes int64
}

// API serves the Rekor v1 REST API for a Log.
type API struct {
	l       *Log
	log     *slog.Logger
	baseURL string
	max     int64
	pubPEM  []byte
}

// NewAPI returns the HTTP API of l.
func NewAPI(l *Log, logger *slog.Logger, cfg APIConfig) (*API, error) {
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 4 << 20
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	der, err := x509.MarshalPKIXPublicKey(l.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("tlog: encode log key: %w", err)
	}
	return &API{
		l: l, log: logger, baseURL: strings.TrimSuffix(cfg.BaseURL, "/"), max: cfg.MaxRequestBytes,
		pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	}, nil
}

// Register adds the routes to mux; wrap (may be nil) decorates each handler
// with its route label (metrics).
func (a *API) Register(mux *http.ServeMux, wrap func(route string, h http.Handler) http.Handler) {
	if wrap == nil {
		wrap = func(_ string, h http.Handler) http.Handler { return h }
	}
	handle := func(pattern, route string, f http.HandlerFunc) { mux.Handle(pattern, wrap(route, f)) }
	handle("POST /api/v1/log/entries", "tlog_create", a.create)
	handle("GET /api/v1/log/entries", "tlog_get_by_index", a.getByIndex)
	handle("GET /api/v1/log/entries/{entryUUID}", "tlog_get_by_uuid", a.getByUUID)
	handle("POST /api/v1/log/entries/retrieve", "tlog_retrieve", a.retrieve)
	handle("GET /api/v1/log", "tlog_info", a.info)
	handle("GET /api/v1/log/publicKey", "tlog_public_key", a.publicKey)
	handle("GET /api/v1/log/proof", "tlog_proof", a.consistency)
	handle("POST /api/v1/index/retrieve", "tlog_index", a.index)
}

type wireError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// wire is e as the API returns it, keyed by its entry ID.
func (a *API) wire(e *LogEntry) map[string]rekor.WireEntry {
	re := &rekor.LogEntry{Body: e.Body, IntegratedTime: e.IntegratedTime, LogIndex: int64(e.Index), LogID: a.l.logIDHex, SET: e.SET,
		Proof: e.Proof.Rekor()}
	return map[string]rekor.WireEntry{e.EntryID: re.Wire()}
}

func hexAll(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

func (a *API) entryURL(id string) string {
	return a.baseURL + "/api/v1/log/entries/" + id
}

func (a *API) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.max))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than the log accepts (%d bytes)", a.max))
		} else {
			a.fail(w, r, http.StatusBadRequest, "reading request body: "+err.Error())
		}
		return nil, false
	}
	return body, true
}

func (a *API) create(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	c, err := rekor.Canonicalize(body)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	e, err := a.l.Add(r.Context(), c)
	var dup *DuplicateError
	if errors.As(err, &dup) {
		w.Header().Set("Location", a.entryURL(dup.EntryID))
		a.fail(w, r, http.StatusConflict, dup.Error())
		return
	}
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	w.Header().Set("ETag", e.EntryID)
	w.Header().Set("Location", a.entryURL(e.EntryID))
	a.reply(w, http.StatusCreated, a.wire(e))
}

func (a *API) getByUUID(w http.ResponseWriter, r *http.Request) {
	e, err := a.l.EntryByUUID(r.Context(), r.PathValue("entryUUID"))
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.reply(w, http.StatusOK, a.wire(e))
}

func (a *API) getByIndex(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("logIndex")
	if v == "" {
		a.fail(w, r, http.StatusBadRequest, "query parameter logIndex is required (GET /api/v1/log/entries?logIndex=N)")
		return
	}
	idx, err := strconv.ParseUint(v, 10, 63)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, fmt.Sprintf("logIndex %.32q must be a non-negative integer", v))
		return
	}
	e, err := a.l.EntryByIndex(r.Context(), idx)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.reply(w, http.StatusOK, a.wire(e))
}

func (a *API) retrieve(w http.ResponseWriter, r *http.Request) {
	body, ok := a.readBody(w, r)
	if !ok {
		return
	}
	q, err := rekor.ParseSearchQuery(body)
	if err != nil {
		a.fail(w, r, http.StatusUnprocessableEntity, err.Error())
		return
	}
	out := []map[string]rekor.WireEntry{}
	add := func(e *LogEntry, err error) bool {
		if errors.Is(err, ErrNotFound) {
			return true
		}
		if err != nil {
			a.failErr(w, r, err)
			return false
		}
		out = append(out, a.wire(e))
		return true
	}
	ctx := r.Context()
	for _, id := range q.EntryUUIDs {
		if !add(a.l.EntryByUUID(ctx, id)) {
			return
		}
	}
	for i, pe := range q.Entries {
		c, err := rekor.Canonicalize(pe)
		if err != nil {
			a.failErr(w, r, fmt.Errorf("entries[%d]: %w", i, err))
			return
		}
		if !add(a.l.Lookup(ctx, c)) {
			return
		}
	}
	for _, idx := range q.LogIndexes {
		if !add(a.l.EntryByIndex(ctx, uint64(*idx))) {
			return
		}
	}
	a.reply(w, http.StatusOK, out)
}

type wireLogInfo struct {
	RootHash       string `json:"rootHash"`
	TreeSize       int64  `json:"treeSize"`
	SignedTreeHead string `json:"signedTreeHead"`
	TreeID         string `json:"treeID"`
}

func (a *API) info(w http.ResponseWriter, r *http.Request) {
	head, err := a.l.Head(r.Context())
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.reply(w, http.StatusOK, wireLogInfo{
		RootHash: hex.EncodeToString(head.Root[:]), TreeSize: int64(head.Size),
		SignedTreeHead: string(head.Checkpoint), TreeID: strconv.FormatInt(a.l.TreeID(), 10),
	})
}

func (a *API) checkTreeID(w http.ResponseWriter, r *http.Request) bool {
	if t := r.URL.Query().Get("treeID"); t != "" && t != strconv.FormatInt(a.l.TreeID(), 10) {
		a.fail(w, r, http.StatusNotFound, fmt.Sprintf("treeID %.32s is not a tree of this log (its tree is %d)", t, a.l.TreeID()))
		return false
	}
	return true
}

func (a *API) publicKey(w http.ResponseWriter, r *http.Request) {
	if !a.checkTreeID(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(a.pubPEM)
}

type wireConsistency struct {
	RootHash string   `json:"rootHash"`
	Hashes   []string `json:"hashes"`
}

func (a *API) consistency(w http.ResponseWriter, r *http.Request) {
	if !a.checkTreeID(w, r) {
		return
	}
	q := r.URL.Query()
	first := uint64(1)
	if v := q.Get("firstSize"); v != "" {
		n, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			a.fail(w, r, http.StatusBadRequest, fmt.Sprintf("firstSize %.32q must be a non-negative integer", v))
			return
		}
		first = n
	}
	v := q.Get("lastSize")
	if v == "" {
		a.fail(w, r, http.StatusBadRequest, "query parameter lastSize is required (GET /api/v1/log/proof?firstSize=M&lastSize=N)")
		return
	}
	last, err := strconv.ParseUint(v, 10, 63)
	if err != nil || last == 0 {
		a.fail(w, r, http.StatusBadRequest, fmt.Sprintf("lastSize %.32q must be a positive integer", v))
		return
	}
	root, hs, err := a.l.Consistency(r.Context(), first, last)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.reply(w, http.StatusOK, wireConsistency{RootHash: hex.EncodeToString(root[:]), Hashes: hexAll(hs)})
}

func (a *API) index(w http.ResponseWriter, r *http.Request) {
	a.fail(w, r, http.StatusNotImplemented, "the search index is not supported by this log; look entries up with POST /api/v1/log/entries/retrieve")
}

func (a *API) reply(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		a.log.Error("tlog: encode response", "err", err)
		code = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"code":500,"message":"internal error encoding the response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func (a *API) fail(w http.ResponseWriter, _ *http.Request, code int, msg string) {
	a.reply(w, code, wireError{Code: code, Message: msg})
}

// failErr maps an error to Rekor's status codes; unexpected errors are
// logged and reported without detail.
func (a *API) failErr(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, rekor.ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, rekor.ErrInvalidEntry), errors.Is(err, rekor.ErrUnsupported), errors.Is(err, ErrBadRequest):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBusy):
		w.Header().Set("Retry-After", "1")
		a.fail(w, r, http.StatusServiceUnavailable, err.Error())
		return
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	if code == http.StatusInternalServerError || code == http.StatusServiceUnavailable {
		a.log.Error("transparency log request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		a.fail(w, r, code, "internal error in the transparency log; see the server log")
		return
	}
	a.fail(w, r, code, err.Error())
}
