package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/oidc"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// CIJobPath is the admin endpoint that hands out the environment of a CI
// job (`hallmark ci job`).
const CIJobPath = "/api/v1/ci/job"

// CIJobDefaultTTL is how long the tokens of a CI job environment live when
// the request names no TTL (the ID token is capped at the issuer's
// --oidc-max-token-ttl).
const CIJobDefaultTTL = time.Hour

// ErrInvalidCIJob: the CI job request is incomplete or invalid (HTTP 400).
var ErrInvalidCIJob = errors.New("invalid CI job request")

// CIJobRequest describes the CI job whose environment CIJob builds. Only
// Project and Ref are required.
type CIJobRequest struct {
	Project   string        // group[/subgroup...]/project
	Ref       string        // branch or tag name, e.g. main
	RefType   string        // branch (default) or tag
	SHA       string        // commit, 40 or 64 hex; default: random
	Pipeline  string        // pipeline id; default: derived from the time
	Job       string        // job id; default: pipeline id + 1
	User      string        // login of the user who started the pipeline; default hallmark
	UserName  string        // display name; default: User
	UserEmail string        // default: <user>@users.noreply.<server host>
	TTL       time.Duration // lifetime of the tokens; default CIJobDefaultTTL
}

// CIJobVariables lists, in the order `hallmark ci job` prints them, the
// variables of a CI job environment: GitLab's predefined CI/CD variables
// that the reference pipeline (examples/gitlab/.gitlab-ci.yml, GitLab's
// cosign tutorial) and `hallmark sign --ci-annotations` read, the tokens,
// and the reference pipeline's own HALLMARK_* settings.
var CIJobVariables = []string{
	"CI", "GITLAB_CI",
	"CI_SERVER_URL", "CI_SERVER_HOST", "CI_SERVER_PORT", "CI_SERVER_PROTOCOL", "CI_SERVER_FQDN",
	"CI_PROJECT_ID", "CI_PROJECT_PATH", "CI_PROJECT_NAME", "CI_PROJECT_NAMESPACE", "CI_PROJECT_ROOT_NAMESPACE",
	"CI_PROJECT_PATH_SLUG", "CI_PROJECT_URL", "CI_CONFIG_PATH",
	"CI_COMMIT_SHA", "CI_COMMIT_SHORT_SHA", "CI_COMMIT_REF_NAME", "CI_COMMIT_REF_SLUG", "CI_COMMIT_BRANCH", "CI_COMMIT_TAG",
	"CI_PIPELINE_ID", "CI_PIPELINE_SOURCE", "CI_PIPELINE_URL",
	"CI_JOB_ID", "CI_JOB_NAME", "CI_JOB_STAGE", "CI_JOB_URL",
	"GITLAB_USER_ID", "GITLAB_USER_LOGIN", "GITLAB_USER_NAME", "GITLAB_USER_EMAIL",
	"CI_REGISTRY", "CI_REGISTRY_IMAGE", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD", "CI_JOB_TOKEN",
	"SIGSTORE_ID_TOKEN", "COSIGN_YES",
	"HALLMARK_URL", "HALLMARK_REGISTRY", "HALLMARK_TRUST_FINGERPRINT",
}

// ciJobWire is the JSON body of POST /api/v1/ci/job.
type ciJobWire struct {
	Project   string `json:"project"`
	Ref       string `json:"ref"`
	RefType   string `json:"ref_type"`
	SHA       string `json:"sha"`
	Pipeline  string `json:"pipeline_id"`
	Job       string `json:"job_id"`
	User      string `json:"user"`
	UserName  string `json:"user_name"`
	UserEmail string `json:"user_email"`
	TTL       string `json:"ttl"` // Go duration, e.g. "1h"
}

// CIJobResponse is the reply of POST /api/v1/ci/job.
type CIJobResponse struct {
	Variables map[string]string `json:"variables"`
}

// ciSlugRE is compiled on first use, not at package init: every hallmark
// process (a CLI run too) would otherwise pay for it at start-up.
var ciSlugRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9]+`) })

// setupCI registers the CI job environment endpoint (admin only).
func (s *Server) setupCI(mux *http.ServeMux) {
	h := http.Handler(http.HandlerFunc(s.serveCIJob))
	if s.auth != nil {
		h = s.auth.RequireAdmin(h)
	} else {
		h = s.requireAdminToken(h)
	}
	mux.Handle("POST "+CIJobPath, s.metrics.instrument("ci_job", h))
}

// requireAdminToken authorises admin requests with the data dir's admin
// token when auth is off (there are no users then).
func (s *Server) requireAdminToken(next http.Handler) http.Handler {
	path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, err := readAdminToken(path)
		if err != nil {
			s.log.ErrorContext(r.Context(), "ci: reading the admin token", "err", err)
			writeCIError(w, http.StatusInternalServerError, "internal error; see the server log")
			return
		}
		if want == "" {
			writeCIError(w, http.StatusServiceUnavailable, "this server has no admin token (it is created with the built-in OIDC issuer, --oidc-builtin)")
			return
		}
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tok = strings.TrimSpace(tok)
		a, b := sha256.Sum256([]byte(tok)), sha256.Sum256([]byte(want))
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hallmark-admin"`)
			writeCIError(w, http.StatusUnauthorized, "admin token required: send Authorization: Bearer <data-dir>/admin-token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeCIError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// serveCIJob serves POST /api/v1/ci/job: JSON ciJobWire -> CIJobResponse.
func (s *Server) serveCIJob(w http.ResponseWriter, r *http.Request) {
	var in ciJobWire
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeCIError(w, http.StatusBadRequest, "request body: "+err.Error()+" (want JSON with project, ref, ...)")
		return
	}
	req := CIJobRequest{Project: in.Project, Ref: in.Ref, RefType: in.RefType, SHA: in.SHA, Pipeline: in.Pipeline,
		Job: in.Job, User: in.User, UserName: in.UserName, UserEmail: in.UserEmail}
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil || d <= 0 {
			writeCIError(w, http.StatusBadRequest, fmt.Sprintf("ttl %q: want a positive duration such as 1h", in.TTL))
			return
		}
		req.TTL = d
	}
	vars, err := s.CIJob(r.Context(), req)
	switch {
	case errors.Is(err, ErrInvalidCIJob):
		writeCIError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.log.ErrorContext(r.Context(), "ci: building a job environment failed", "err", err)
		writeCIError(w, http.StatusInternalServerError, "building the CI job environment failed; see the server log")
		return
	}
	b, err := json.Marshal(CIJobResponse{Variables: vars})
	if err != nil {
		writeCIError(w, http.StatusInternalServerError, "encoding the response failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// CIJob builds the environment of a CI job of req.Project on req.Ref: the
// GitLab predefined variables the reference pipeline uses (URLs built from
// the server's external URL, which is also the built-in issuer's URL, so
// "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/$CI_COMMIT_REF_NAME" is the
// identity the CA certifies and "$CI_SERVER_URL" its issuer), a CI job
// token for the project as CI_JOB_TOKEN and CI_REGISTRY_PASSWORD (empty
// with --auth=off), and an ID token of the built-in issuer with audience
// sigstore as SIGSTORE_ID_TOKEN (empty when the issuer is disabled), whose
// claims name the same project, ref, commit, pipeline, job and user. The
// names are CIJobVariables; the map holds every one of them.
func (s *Server) CIJob(ctx context.Context, req CIJobRequest) (map[string]string, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCIJob}, a...)...)
	}
	project := strings.Trim(req.Project, "/")
	if project == "" || !strings.Contains(project, "/") {
		return nil, bad("project %q: want group/project, e.g. group/app", req.Project)
	}
	// The registry namespace is the lower-cased path (as GitLab's
	// CI_REGISTRY_IMAGE); it must be a valid repository name.
	repo := strings.ToLower(project)
	if err := oci.ValidateName(repo); err != nil {
		return nil, bad("project %q: %v", req.Project, err)
	}
	if req.Ref == "" {
		return nil, bad("ref is required: a branch or tag name such as main")
	}
	if strings.HasPrefix(req.Ref, "refs/") {
		return nil, bad("ref %q: give the short name (main, v1.0), not the full ref", req.Ref)
	}
	if strings.IndexFunc(req.Ref, func(r rune) bool { return r < 0x20 || r == 0x7f || r == ' ' }) >= 0 {
		return nil, bad("ref %q: contains white space or control characters", req.Ref)
	}
	refType := req.RefType
	if refType == "" {
		refType = "branch"
	}
	if refType != "branch" && refType != "tag" {
		return nil, bad("ref type %q: use branch or tag", req.RefType)
	}
	sha := strings.ToLower(req.SHA)
	if sha == "" {
		b := make([]byte, 20)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("ci: random commit: %w", err)
		}
		sha = hex.EncodeToString(b)
	} else if !oidc.ValidCommitSHA(sha) {
		return nil, bad("sha %q: want a 40 (or 64) character hex commit id", req.SHA)
	}
	now := time.Now()
	pipeline := req.Pipeline
	if pipeline == "" {
		pipeline = strconv.FormatInt(now.UnixMilli(), 10)
	}
	if !oidc.ValidNumericID(pipeline) {
		return nil, bad("pipeline id %q: want a positive decimal number", pipeline)
	}
	job := req.Job
	if job == "" {
		n, _ := strconv.ParseInt(pipeline, 10, 64)
		if n < 1<<62 {
			n++
		}
		job = strconv.FormatInt(n, 10)
	}
	if !oidc.ValidNumericID(job) {
		return nil, bad("job id %q: want a positive decimal number", job)
	}
	user := req.User
	if user == "" {
		user = "hallmark"
	}
	if !oidc.ValidUserLogin(user) {
		return nil, bad("user %q: not a valid user name (letters, digits, '_', '-', '.')", user)
	}
	userName := req.UserName
	if userName == "" {
		userName = user
	}
	if len(userName) > 255 || strings.IndexFunc(userName, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return nil, bad("user name %q: at most 255 characters, no control characters", userName)
	}
	u, err := url.Parse(s.url)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("ci: the external URL %q has no host", s.url)
	}
	host := u.Hostname()
	email := req.UserEmail
	if email == "" {
		email = user + "@users.noreply." + host
	}
	if len(email) > 255 || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n") {
		return nil, bad("user email %q: not an email address", req.UserEmail)
	}
	ttl := req.TTL
	if ttl < 0 || ttl > auth.MaxJobTokenLifetime {
		return nil, bad("ttl %s: want a positive duration of at most %s", ttl, auth.MaxJobTokenLifetime)
	}
	idTTL := ttl
	if ttl == 0 {
		ttl, idTTL = CIJobDefaultTTL, min(CIJobDefaultTTL, s.cfg.OIDCMaxTokenTTL)
	}
	if s.oidcIssuer != nil && idTTL > s.cfg.OIDCMaxTokenTTL {
		return nil, bad("ttl %s: the ID token may live at most %s (the server's --oidc-max-token-ttl)", idTTL, s.cfg.OIDCMaxTokenTTL)
	}

	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	fqdn := u.Host
	serverURL := s.url
	projectURL := serverURL + "/" + project
	registry := u.Host
	v := map[string]string{
		"CI": "true", "GITLAB_CI": "true",
		"CI_SERVER_URL": serverURL, "CI_SERVER_HOST": host, "CI_SERVER_PORT": port, "CI_SERVER_PROTOCOL": u.Scheme,
		"CI_SERVER_FQDN":            fqdn,
		"CI_PROJECT_PATH":           project,
		"CI_PROJECT_NAME":           project[strings.LastIndex(project, "/")+1:],
		"CI_PROJECT_NAMESPACE":      project[:strings.LastIndex(project, "/")],
		"CI_PROJECT_ROOT_NAMESPACE": project[:strings.Index(project, "/")],
		"CI_PROJECT_PATH_SLUG":      ciSlug(project, 0),
		"CI_PROJECT_URL":            projectURL,
		"CI_CONFIG_PATH":            ".gitlab-ci.yml",
		"CI_COMMIT_SHA":             sha, "CI_COMMIT_SHORT_SHA": sha[:8],
		"CI_COMMIT_REF_NAME": req.Ref, "CI_COMMIT_REF_SLUG": ciSlug(req.Ref, 63),
		"CI_COMMIT_BRANCH": "", "CI_COMMIT_TAG": "",
		"CI_PIPELINE_ID": pipeline, "CI_PIPELINE_SOURCE": "push", "CI_PIPELINE_URL": projectURL + "/-/pipelines/" + pipeline,
		"CI_JOB_ID": job, "CI_JOB_NAME": "build_and_sign", "CI_JOB_STAGE": "build", "CI_JOB_URL": projectURL + "/-/jobs/" + job,
		"GITLAB_USER_ID": "1", "GITLAB_USER_LOGIN": user, "GITLAB_USER_NAME": userName, "GITLAB_USER_EMAIL": email,
		"CI_REGISTRY": registry, "CI_REGISTRY_IMAGE": registry + "/" + repo, "CI_REGISTRY_USER": "gitlab-ci-token",
		"CI_REGISTRY_PASSWORD": "", "CI_JOB_TOKEN": "",
		"SIGSTORE_ID_TOKEN": "", "COSIGN_YES": "true",
		"HALLMARK_URL": serverURL, "HALLMARK_REGISTRY": registry, "HALLMARK_TRUST_FINGERPRINT": s.TrustedRootFingerprint(),
	}
	if refType == "branch" {
		v["CI_COMMIT_BRANCH"] = req.Ref
	} else {
		v["CI_COMMIT_TAG"] = req.Ref
	}

	if s.oidcIssuer != nil {
		tok, err := s.oidcIssuer.Mint(ctx, oidc.JobClaims{
			Audience: []string{"sigstore"}, ProjectPath: project, Ref: req.Ref, RefType: refType, SHA: sha,
			PipelineID: pipeline, JobID: job, UserLogin: user, UserEmail: email, TTL: idTTL,
		})
		if errors.Is(err, oidc.ErrInvalidClaims) {
			return nil, fmt.Errorf("%w: %v", ErrInvalidCIJob, err)
		}
		if err != nil {
			return nil, fmt.Errorf("ci: minting the ID token: %w", err)
		}
		v["SIGSTORE_ID_TOKEN"] = tok
		// The IDs the issuer derived (project and user) are the job's.
		if c, err := unverifiedClaims(tok); err == nil {
			v["CI_PROJECT_ID"], v["GITLAB_USER_ID"] = c.ProjectID, c.UserID
		}
	}
	if v["CI_PROJECT_ID"] == "" {
		v["CI_PROJECT_ID"] = ciProjectID(project)
	}
	if s.auth != nil {
		secret, _, err := s.auth.IssueJobToken(ctx, auth.JobTokenRequest{Project: repo, JobID: job, Pipeline: pipeline,
			User: user, TTL: ttl, CreateProject: true})
		if err != nil {
			return nil, fmt.Errorf("ci: issuing the job token for %s: %w", repo, err)
		}
		v["CI_JOB_TOKEN"], v["CI_REGISTRY_PASSWORD"] = secret, secret
	}
	s.log.InfoContext(ctx, "ci: issued a CI job environment", "project", project, "ref", req.Ref, "ref_type", refType,
		"pipeline_id", pipeline, "job_id", job, "user", user, "job_token", v["CI_JOB_TOKEN"] != "", "id_token", v["SIGSTORE_ID_TOKEN"] != "")
	return v, nil
}

// ciSlug is GitLab's *_SLUG form: lower-cased, every run of characters
// other than a-z and 0-9 replaced by "-", no leading or trailing "-", at
// most max characters (0: no limit).
func ciSlug(s string, max int) string {
	out := ciSlugRE().ReplaceAllString(strings.ToLower(s), "-")
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return strings.Trim(out, "-")
}

// ciProjectID is a stable project id for a path when no ID token carries
// the issuer's.
func ciProjectID(path string) string {
	h := sha256.Sum256([]byte("hallmark-project:" + path))
	var n uint64
	for _, b := range h[:8] {
		n = n<<8 | uint64(b)
	}
	return strconv.FormatUint(n%999_999_999+1, 10)
}

// mintedIDs are the IDs the issuer put in a token.
type mintedIDs struct {
	ProjectID string `json:"project_id"`
	UserID    string `json:"user_id"`
}

// unverifiedClaims reads the ID fields of a token this server just minted.
func unverifiedClaims(tok string) (mintedIDs, error) {
	var c mintedIDs
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errors.New("not a JWT")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(raw, &c)
}
