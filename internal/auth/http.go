package auth

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Endpoint kinds of /v2/ requests, as internal/registry.ParseEndpoint
// reports them (the guard's EndpointParser).
const (
	EndpointBase      = "base"
	EndpointCatalog   = "catalog"
	EndpointTags      = "tags"
	EndpointManifests = "manifests"
	EndpointBlobs     = "blobs"
	EndpointUploads   = "uploads"
	EndpointReferrers = "referrers"
)

// Endpoint is what a /v2/ request addresses.
type Endpoint struct {
	Kind       string
	Repository string
}

// EndpointParser parses a /v2/ URL path exactly as the registry handler
// routes it. An error means an invalid repository name (the handler
// answers 400); the request then only needs to be authenticated.
type EndpointParser func(path string) (Endpoint, error)

// credentials is a parsed Authorization header.
type credentials struct {
	scheme   string // "basic", "bearer" or "" (none)
	user     string
	password string
	token    string
}

// maxAuthorizationLength bounds the Authorization header parsed.
const maxAuthorizationLength = 16 << 10

var errBadAuthorization = errors.New("malformed Authorization header")

// parseAuthorization parses an Authorization header value (RFC 7617 Basic,
// RFC 6750 Bearer; scheme names are case-insensitive).
func parseAuthorization(h string) (credentials, error) {
	if h == "" {
		return credentials{}, nil
	}
	if len(h) > maxAuthorizationLength {
		return credentials{}, errBadAuthorization
	}
	scheme, rest, ok := strings.Cut(h, " ")
	if !ok {
		return credentials{}, errBadAuthorization
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return credentials{}, errBadAuthorization
		}
		user, pw, ok := strings.Cut(string(raw), ":")
		if !ok {
			return credentials{}, errBadAuthorization
		}
		return credentials{scheme: "basic", user: user, password: pw}, nil
	case "bearer":
		// IndexByte, not ContainsAny: this runs on every /v2/ request.
		if rest == "" || strings.IndexByte(rest, ' ') >= 0 || strings.IndexByte(rest, '\t') >= 0 {
			return credentials{}, errBadAuthorization
		}
		return credentials{scheme: "bearer", token: rest}, nil
	}
	return credentials{}, errBadAuthorization
}

// required returns the access a /v2/ request needs, following
// distribution: GET/HEAD pull; POST/PUT/PATCH pull+push; DELETE delete
// (cancelling one's own upload session needs push); the catalog
// registry:catalog:*.
func required(method string, ep Endpoint) []Access {
	switch ep.Kind {
	case EndpointCatalog:
		return []Access{{Type: TypeRegistry, Name: CatalogName, Actions: []string{ActionAll}}}
	case EndpointTags, EndpointManifests, EndpointBlobs, EndpointUploads, EndpointReferrers:
	default:
		return nil
	}
	var acts []string
	switch method {
	case http.MethodGet, http.MethodHead:
		acts = []string{ActionPull}
	case http.MethodDelete:
		if ep.Kind == EndpointUploads {
			acts = []string{ActionPull, ActionPush}
		} else {
			acts = []string{ActionDelete}
		}
	default: // POST, PUT, PATCH and anything unexpected
		acts = []string{ActionPull, ActionPush}
	}
	return []Access{{Type: TypeRepository, Name: ep.Repository, Actions: acts}}
}

func allows(granted []Access, need Access) bool {
	for _, a := range need.Actions {
		ok := false
		for _, g := range granted {
			if g.Allows(need.Type, need.Name, a) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

type challengeDetail struct {
	Type   string `json:"Type"`
	Name   string `json:"Name"`
	Action string `json:"Action"`
}

// realm and service are what the Bearer challenge names: the external
// token service's with one, else this server's token endpoint.
func (s *Service) realm() string {
	if s.cfg.External != nil {
		return s.cfg.External.Realm()
	}
	return s.cfg.Realm
}

func (s *Service) service() string {
	if s.cfg.External != nil {
		return s.cfg.External.Service()
	}
	return s.cfg.Service
}

// challenge answers 401 with the Bearer challenge docker clients follow.
func (s *Service) challenge(w http.ResponseWriter, r *http.Request, need []Access, errCode, msg string) {
	var b strings.Builder
	fmt.Fprintf(&b, `Bearer realm=%q,service=%q`, s.realm(), s.service())
	var scopes []string
	var detail []challengeDetail
	for _, a := range need {
		scopes = append(scopes, a.String())
		for _, act := range a.Actions {
			detail = append(detail, challengeDetail{Type: a.Type, Name: a.Name, Action: act})
		}
	}
	if len(scopes) > 0 {
		fmt.Fprintf(&b, `,scope=%q`, strings.Join(scopes, " "))
	}
	if errCode != "" {
		fmt.Fprintf(&b, `,error=%q`, errCode)
	}
	w.Header().Set("WWW-Authenticate", b.String())
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	e := oci.ErrorInfo{Code: oci.CodeUnauthorized, Message: msg}
	if len(detail) > 0 {
		e.Detail = detail
	}
	oci.WriteError(w, r, http.StatusUnauthorized, e)
}

func tooMany(w http.ResponseWriter, r *http.Request, err error) {
	retry := time.Minute
	var te *ThrottledError
	if errors.As(err, &te) {
		retry = te.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
	oci.WriteError(w, r, http.StatusTooManyRequests, oci.ErrorInfo{Code: oci.CodeTooManyRequests, Message: err.Error()})
}

// Guard protects the registry handler: every /v2/ request needs a valid
// access token from the token endpoint whose access claim covers the
// request. Basic credentials are not accepted here (clients follow the
// Bearer challenge; accepting passwords on every request would cost an
// argon2id hash per request).
func (s *Service) Guard(next http.Handler, parse EndpointParser) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ep, perr := parse(r.URL.Path)
		var need []Access
		if perr == nil {
			need = required(r.Method, ep)
		}
		creds, err := parseAuthorization(r.Header.Get("Authorization"))
		if err != nil || creds.scheme != "bearer" {
			msg := "authentication required: get a token from " + s.realm()
			if err == nil && creds.scheme == "basic" {
				msg = "basic credentials are not accepted here; exchange them for a token at " + s.realm() + " (docker login does this)"
			}
			s.challenge(w, r, need, "", msg)
			return
		}
		remote := s.ClientAddr(r)
		claims, err := s.VerifyAccess(r.Context(), creds.token)
		switch {
		case errors.Is(err, ErrTokenExpired):
			s.challenge(w, r, need, "invalid_token", "access token expired; get a new one")
			return
		case errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrTokenRevoked):
			// Not a failed login: no budget is charged, so junk tokens from
			// an address clients share cannot lock anyone out. Guessing is
			// hopeless (a token is signed), and answering costs about what
			// serving a valid token does; only the audit record, a database
			// write, is sampled per client address.
			s.invalidToken(r.Context(), remote, ep.Repository, r.Method+" "+ep.Kind+": "+err.Error())
			s.challenge(w, r, need, "invalid_token", "access token rejected: "+err.Error())
			return
		case err != nil:
			s.log.ErrorContext(r.Context(), "verifying an access token", "err", err)
			oci.WriteError(w, r, http.StatusInternalServerError, oci.ErrorInfo{Code: oci.CodeUnknown, Message: "internal error; see the server log"})
			return
		}
		for _, n := range need {
			if !allows(claims.Access, n) {
				s.challenge(w, r, need, "insufficient_scope", "access token does not grant "+n.String())
				return
			}
		}
		if claims.tagRules != nil && ep.Kind == EndpointManifests {
			if why := protectedTag(claims, r, ep); why != "" {
				oci.WriteError(w, r, http.StatusForbidden, oci.ErrorInfo{Code: oci.CodeDenied, Message: why})
				return
			}
		}
		if ep.Kind == EndpointUploads && r.Method == http.MethodPost {
			// A cross-repository mount also needs pull on the source; without
			// it the mount is dropped and a normal upload starts (202).
			q := r.URL.Query()
			if from := q.Get("from"); from != "" && !allows(claims.Access, Access{Type: TypeRepository, Name: from, Actions: []string{ActionPull}}) {
				q.Del("from")
				q.Del("mount")
				r = r.Clone(r.Context())
				r.URL.RawQuery = q.Encode()
			}
		}
		ctx := WithPrincipal(r.Context(), claims.Principal(), remote)
		r = r.WithContext(ctx)
		if r.Method == http.MethodDelete && ep.Kind == EndpointBlobs {
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == http.StatusAccepted {
				s.blobDeleted(ctx, ep.Repository, r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:])
			}
			return
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter remembers the status code and forwards SetRoute (the
// metrics middleware's hook) to the writer it wraps.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// SetRoute forwards to the wrapped writer.
func (w *statusWriter) SetRoute(route string) {
	if rs, ok := w.ResponseWriter.(interface{ SetRoute(string) }); ok {
		rs.SetRoute(route)
	}
}

// Unwrap lets http.ResponseController reach the wrapped writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// maxTokenForm bounds an OAuth2 POST body.
const maxTokenForm = 64 << 10

type oauthError struct {
	oci.ErrorResponse
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// tokenError answers a failed token request in both shapes clients parse:
// the registry error list (pkg/oci's) and the OAuth2 error object.
func tokenError(w http.ResponseWriter, status int, code oci.ErrorCode, oauthCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="hallmark"`)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(oauthError{ErrorResponse: oci.ErrorResponse{Errors: []oci.ErrorInfo{{Code: code, Message: msg}}}, Error: oauthCode, Description: msg})
}

// TokenHandler serves the token endpoint: GET with optional Basic
// credentials (docker's token protocol) and POST with an OAuth2 password
// or refresh_token grant (distribution's oauth.md).
func (s *Service) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var (
			p        Principal
			scopes   []string
			service  string
			offline  bool
			isOAuth2 bool
			err      error
		)
		remote := s.ClientAddr(r)
		ctx := r.Context()
		switch r.Method {
		case http.MethodGet:
			q := r.URL.Query()
			service, scopes = q.Get("service"), q["scope"]
			offline = q.Get("offline_token") == "true"
			creds, perr := parseAuthorization(r.Header.Get("Authorization"))
			switch {
			case perr != nil || creds.scheme == "bearer":
				tokenError(w, http.StatusUnauthorized, oci.CodeUnauthorized, "invalid_request", "use Basic credentials (or none, for anonymous access)")
				return
			case creds.scheme == "basic":
				p, err = s.Authenticate(ctx, creds.user, creds.password, remote)
			default:
				p = Principal{Kind: KindAnonymous}
			}
		case http.MethodPost:
			isOAuth2 = true
			r.Body = http.MaxBytesReader(w, r.Body, maxTokenForm)
			if perr := r.ParseForm(); perr != nil {
				tokenError(w, http.StatusBadRequest, oci.CodeUnsupported, "invalid_request", "malformed form body")
				return
			}
			f := r.PostForm
			service = f.Get("service")
			if sc := f.Get("scope"); sc != "" {
				scopes = []string{sc}
			}
			offline = f.Get("access_type") == "offline"
			switch f.Get("grant_type") {
			case "password":
				p, err = s.Authenticate(ctx, f.Get("username"), f.Get("password"), remote)
			case "refresh_token":
				p, err = s.Refresh(ctx, f.Get("refresh_token"), remote)
				offline = true // hand back a refresh token, as the client holds one
			default:
				tokenError(w, http.StatusBadRequest, oci.CodeUnsupported, "unsupported_grant_type", "grant_type must be password or refresh_token")
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST")
			tokenError(w, http.StatusMethodNotAllowed, oci.CodeUnsupported, "invalid_request", "use GET or POST")
			return
		}
		switch {
		case errors.Is(err, ErrThrottled):
			tooMany(w, r, err)
			return
		case errors.Is(err, ErrBadCredentials):
			tokenError(w, http.StatusUnauthorized, oci.CodeUnauthorized, "invalid_grant", err.Error())
			return
		case err != nil:
			s.log.ErrorContext(ctx, "token request failed", "err", err)
			tokenError(w, http.StatusInternalServerError, oci.CodeUnknown, "server_error", "internal error; see the server log")
			return
		}
		if service != "" && service != s.cfg.Service {
			tokenError(w, http.StatusBadRequest, oci.CodeUnsupported, "invalid_request", fmt.Sprintf("service %q is not %q", service, s.cfg.Service))
			return
		}
		requested, err := ParseScopes(scopes)
		if err != nil {
			tokenError(w, http.StatusBadRequest, oci.CodeUnsupported, "invalid_scope", err.Error())
			return
		}
		resp, err := s.IssueToken(ctx, p, requested, offline, remote)
		if err != nil {
			s.log.ErrorContext(ctx, "issuing token failed", "err", err)
			tokenError(w, http.StatusInternalServerError, oci.CodeUnknown, "server_error", "internal error; see the server log")
			return
		}
		if !isOAuth2 {
			resp.Scope = ""
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

// AdminAuthorized authenticates an admin request: Bearer <admin token>
// (the data dir's admin-token file) or Basic credentials of an admin user.
// Other components' admin endpoints use it too.
func (s *Service) AdminAuthorized(r *http.Request) (Principal, error) {
	creds, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return Principal{}, ErrBadCredentials
	}
	remote := s.ClientAddr(r)
	switch creds.scheme {
	case "bearer":
		if err := s.throttled(r.Context(), "", remote, false); err != nil {
			return Principal{}, err
		}
		if s.cfg.AdminToken != nil {
			want, err := s.cfg.AdminToken()
			if err == nil && want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(creds.token)) == 1 {
				return Principal{Kind: KindAdminToken, Name: KindAdminToken, Admin: true}, nil
			}
		}
		return Principal{}, s.loginFailed(r.Context(), "", remote, false, "admin API: bearer token is not the admin token")
	case "basic":
		p, err := s.Authenticate(r.Context(), creds.user, creds.password, remote)
		if err != nil {
			return Principal{}, err
		}
		if p.Kind != KindUser || !p.Admin {
			return Principal{}, ErrForbidden
		}
		return p, nil
	}
	return Principal{}, ErrBadCredentials
}

// ErrForbidden is returned for authenticated principals that are not
// admins.
var ErrForbidden = errors.New("admin rights required")

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// RequireAdmin wraps an admin handler: 401 (with a Basic challenge)
// without valid credentials, 403 for non-admins, 429 when throttled.
func (s *Service) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.AdminAuthorized(r)
		switch {
		case errors.Is(err, ErrThrottled):
			tooMany(w, r, err)
			return
		case errors.Is(err, ErrForbidden):
			writeJSONError(w, http.StatusForbidden, "admin rights required")
			return
		case errors.Is(err, ErrBadCredentials):
			w.Header().Set("WWW-Authenticate", `Basic realm="hallmark admin"`)
			writeJSONError(w, http.StatusUnauthorized, "admin credentials required: Basic (admin user) or Bearer <admin token>")
			return
		case err != nil:
			s.log.ErrorContext(r.Context(), "admin authentication failed", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "internal error; see the server log")
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p, s.ClientAddr(r))))
	})
}

// ParseAuditQuery reads the audit log filters of the JSON API and the
// console: action, repository, user, since (RFC 3339 or a duration back
// from now, e.g. 24h), limit (1-1000, default 100) and before (an event id,
// for the next page). The error says which parameter is wrong.
func ParseAuditQuery(q url.Values, now time.Time) (AuditQuery, error) {
	aq := AuditQuery{Action: q.Get("action"), Repository: q.Get("repository"), Actor: q.Get("user"), Limit: 100}
	if v := q.Get("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			aq.Since = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			aq.Since = now.Add(-d)
		} else {
			return aq, errors.New("since: use an RFC 3339 time or a duration such as 24h")
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return aq, errors.New("limit: use 1-1000")
		}
		aq.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return aq, errors.New("before: use an event id from a previous page")
		}
		aq.Before = n
	}
	return aq, nil
}

// AuditEvents returns the audit events matching q, newest first (for
// admins: callers check).
func (s *Service) AuditEvents(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	return s.store.QueryAudit(ctx, q)
}

// AuditHandler serves GET /api/v1/audit?action=&repository=&user=&since=&limit=&before=
// (admin only; wrap with RequireAdmin). since is RFC 3339 or a duration
// back from now (e.g. 24h). Events come newest first; "next" pages on.
func (s *Service) AuditHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aq, err := ParseAuditQuery(r.URL.Query(), s.cfg.Now())
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		evs, err := s.store.QueryAudit(r.Context(), aq)
		if err != nil {
			s.log.ErrorContext(r.Context(), "audit query", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "internal error; see the server log")
			return
		}
		out := struct {
			Events []AuditEventJSON `json:"events"`
			Next   int64            `json:"next,omitempty"`
		}{Events: make([]AuditEventJSON, 0, len(evs))}
		for _, e := range evs {
			out.Events = append(out.Events, auditJSON(e))
		}
		if len(evs) == aq.Limit {
			out.Next = evs[len(evs)-1].ID
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
}

// JobTokenHandler serves POST /api/v1/ci/job-tokens (admin only; wrap with
// RequireAdmin): JSON {"project","job_id","pipeline_id","user","ttl"} ->
// {"token","id","project","expires_at"}. A missing project is created
// private.
func (s *Service) JobTokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Project  string `json:"project"`
			JobID    string `json:"job_id"`
			Pipeline string `json:"pipeline_id"`
			User     string `json:"user"`
			TTL      string `json:"ttl"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTokenForm))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSONError(w, http.StatusBadRequest, "request body: "+err.Error())
			return
		}
		var ttl time.Duration
		if req.TTL != "" {
			d, err := time.ParseDuration(req.TTL)
			if err != nil {
				writeJSONError(w, http.StatusBadRequest, "ttl: use a duration such as 1h")
				return
			}
			ttl = d
		}
		secret, t, err := s.IssueJobToken(r.Context(), JobTokenRequest{Project: req.Project, JobID: req.JobID,
			Pipeline: req.Pipeline, User: req.User, TTL: ttl, CreateProject: true})
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(map[string]any{"token": secret, "id": t.ID, "project": t.Project, "expires_at": t.Expires.UTC()})
	})
}

// IssueJobToken mints a CI job token in process (for `hallmark demo`,
// `hallmark ci job` and JobTokenHandler); with req.CreateProject a missing
// project is created private.
func (s *Service) IssueJobToken(ctx context.Context, req JobTokenRequest) (string, JobToken, error) {
	adm := &Admin{Store: s.store, Now: s.cfg.Now}
	return adm.CreateJobToken(ctx, req)
}
