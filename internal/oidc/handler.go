package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Routes of the issuer's HTTP API.
const (
	MintPath   = "/api/v1/oidc/token"
	RotatePath = "/api/v1/oidc/rotate-key"
)

// MintRequest is the JSON body of POST /api/v1/oidc/token. Aud may be a
// string or an array of strings; TTL is a Go duration ("10m").
type MintRequest struct {
	JobClaims
	Aud json.RawMessage `json:"aud"`
	TTL string          `json:"ttl"`
}

// MintResponse is the reply to a successful mint.
type MintResponse struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	KeyID     string    `json:"kid"`
}

// RotateResponse is the reply to POST /api/v1/oidc/rotate-key.
type RotateResponse struct {
	KeyID string `json:"kid"`
}

type errorBody struct {
	Error string `json:"error"`
}

// Handler serves the issuer's discovery document, JWKS and the
// admin-authorised mint and rotate endpoints.
type Handler struct {
	iss        *Issuer
	log        *slog.Logger
	adminToken [32]byte // SHA-256 of the admin token
	admin      AdminCheck
}

// AdminCheck authorises an admin request by other means than the admin
// token (for example an admin user's credentials checked by the registry's
// auth service). It returns nil when the request may mint and rotate.
type AdminCheck func(r *http.Request) error

// NewHandler returns the issuer's HTTP handlers. adminToken authorises
// minting and rotation (Authorization: Bearer <adminToken>); it must not be
// empty. admin, if not nil, is asked when the request does not carry the
// admin token.
func NewHandler(iss *Issuer, log *slog.Logger, adminToken string, admin AdminCheck) (*Handler, error) {
	if adminToken == "" {
		return nil, errors.New("oidc: empty admin token")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{iss: iss, log: log, adminToken: sha256.Sum256([]byte(adminToken)), admin: admin}, nil
}

// Discovery serves GET /.well-known/openid-configuration.
func (h *Handler) Discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSONBytes(w, http.StatusOK, h.iss.Discovery())
}

// JWKS serves GET /oauth/discovery/keys.
func (h *Handler) JWKS(w http.ResponseWriter, _ *http.Request) {
	// Short cache: verifiers refetch on an unknown kid anyway, and a
	// rotated-in key should be visible quickly.
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSONBytes(w, http.StatusOK, h.iss.JWKS())
}

// authorize checks the admin bearer token in constant time. The token is
// never logged.
func (h *Handler) authorize(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if h.admin != nil && ok && strings.TrimSpace(tok) != "" {
		sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(sum[:], h.adminToken[:]) == 1 {
			return true
		}
		if err := h.admin(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="hallmark admin"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{Error: "admin credentials rejected: " + err.Error() + " (use an admin user's credentials or Authorization: Bearer <data-dir>/admin-token)"})
			return false
		}
		return true
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hallmark-admin"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "admin token required: send Authorization: Bearer <admin token> (the server writes it to <data-dir>/admin-token)"})
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(sum[:], h.adminToken[:]) != 1 {
		h.log.WarnContext(r.Context(), "oidc: admin request with a wrong token", "remote", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="hallmark-admin", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "the Bearer token does not match this server's <data-dir>/admin-token"})
		return false
	}
	return true
}

// RequireAdmin wraps next in the admin check of the mint and rotate
// endpoints (the admin token, or the AdminCheck given to NewHandler).
func (h *Handler) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.authorize(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// Mint serves POST /api/v1/oidc/token.
func (h *Handler) Mint(w http.ResponseWriter, r *http.Request) {
	if !h.authorize(w, r) {
		return
	}
	var req MintRequest
	if !decodeBody(w, r, &req, "aud, project, ref, ...") {
		return
	}
	job := req.JobClaims
	switch a := strings.TrimSpace(string(req.Aud)); {
	case a == "" || a == "null":
	case strings.HasPrefix(a, "["):
		if err := json.Unmarshal(req.Aud, &job.Audience); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "aud: want a string or an array of strings"})
			return
		}
	default:
		var s string
		if err := json.Unmarshal(req.Aud, &s); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "aud: want a string or an array of strings"})
			return
		}
		job.Audience = []string{s}
	}
	if req.TTL != "" {
		d, err := parseTTL(req.TTL)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		job.TTL = d
	}
	tok, exp, kid, err := h.iss.mint(r.Context(), job)
	if err != nil {
		if errors.Is(err, ErrInvalidClaims) {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
			return
		}
		h.log.ErrorContext(r.Context(), "oidc: minting a token failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "minting the token failed; see the server log"})
		return
	}
	h.log.InfoContext(r.Context(), "oidc: minted CI job token", "project", job.ProjectPath, "ref", job.Ref, "aud", job.Audience, "kid", kid)
	writeJSON(w, http.StatusOK, MintResponse{Token: tok, ExpiresAt: exp, KeyID: kid})
}

// Rotate serves POST /api/v1/oidc/rotate-key.
func (h *Handler) Rotate(w http.ResponseWriter, r *http.Request) {
	if !h.authorize(w, r) {
		return
	}
	kid, err := h.iss.Rotate(r.Context())
	if err != nil {
		h.log.ErrorContext(r.Context(), "oidc: key rotation failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "key rotation failed; see the server log"})
		return
	}
	writeJSON(w, http.StatusOK, RotateResponse{KeyID: kid})
}

// parseTTL accepts a Go duration ("10m") or a number of seconds.
func parseTTL(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 && n < 1<<31 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("ttl %q: want a positive duration such as 10m or a number of seconds", s)
	}
	return d, nil
}

// decodeBody decodes the JSON request body (at most 64 KiB, no unknown
// fields) into v; on failure it answers 400 saying what it wants and
// returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, want string) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "request body: " + err.Error() + " (want JSON with " + want + ")"})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding response"}`)
	}
	writeJSONBytes(w, status, b)
}

func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
