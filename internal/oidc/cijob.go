package oidc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// CIJobPath is the admin endpoint that hands out the environment of a CI
// job (`hallmark ci job`).
const CIJobPath = "/api/v1/ci/job"

// CIJobDefaultTTL is how long the tokens of a CI job environment live when
// the request names no TTL (the ID token is capped at the issuer's MaxTTL).
const CIJobDefaultTTL = time.Hour

// ErrInvalidCIJob: the CI job request is incomplete or invalid (HTTP 400).
var ErrInvalidCIJob = errors.New("invalid CI job request")

// CIJobRequest describes the CI job whose environment CIJobs.Job builds.
// Only Project and Ref are required.
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

// CIJobResponse is the reply of POST /api/v1/ci/job.
type CIJobResponse struct {
	Variables map[string]string `json:"variables"`
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

// JobTokenMinter mints the registry's CI job token for a job of project
// (the lower-cased registry path), creating the project if needed; the
// server wires internal/auth's in. nil when registry auth is off.
type JobTokenMinter func(ctx context.Context, project, jobID, pipelineID, user string, ttl time.Duration) (string, error)

// CIJobConfig configures CIJobs.
type CIJobConfig struct {
	// URL is the server's external base URL: CI_SERVER_URL, the registry
	// host and, with the built-in issuer, the ID token's issuer.
	URL string
	// MaxJobTokenTTL bounds the TTL a request may ask for (the job token's
	// longest lifetime).
	MaxJobTokenTTL time.Duration
	// Fingerprint returns the trusted root's fingerprint
	// (HALLMARK_TRUST_FINGERPRINT); may be nil.
	Fingerprint func() string
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// CIJobs builds the environments of CI jobs run against this server: the
// GitLab predefined variables, a CI job token and an ID token of the
// built-in issuer for the same job.
type CIJobs struct {
	iss       *Issuer        // nil: built-in issuer off, no ID token
	jobTokens JobTokenMinter // nil: auth off, no job token
	log       *slog.Logger
	cfg       CIJobConfig
}

// NewCIJobs returns the CI job environment builder. iss and jobTokens may
// be nil.
func NewCIJobs(iss *Issuer, jobTokens JobTokenMinter, log *slog.Logger, cfg CIJobConfig) (*CIJobs, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("ci: the external URL %q has no host", cfg.URL)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.URL = strings.TrimSuffix(cfg.URL, "/")
	return &CIJobs{iss: iss, jobTokens: jobTokens, log: log, cfg: cfg}, nil
}

// ciSlugRE is compiled on first use, not at package init: every hallmark
// process (a CLI run too) would otherwise pay for it at start-up.
var ciSlugRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`[^a-z0-9]+`) })

// Job builds the environment of a CI job of req.Project on req.Ref: the
// GitLab predefined variables the reference pipeline uses (URLs built from
// the server's external URL, which is also the built-in issuer's URL, so
// "$CI_PROJECT_URL//.gitlab-ci.yml@refs/heads/$CI_COMMIT_REF_NAME" is the
// identity the CA certifies and "$CI_SERVER_URL" its issuer), a CI job
// token for the project as CI_JOB_TOKEN and CI_REGISTRY_PASSWORD (empty
// with auth off), and an ID token of the built-in issuer with audience
// sigstore as SIGSTORE_ID_TOKEN (empty when the issuer is off), whose
// claims name the same project, ref, commit, pipeline, job and user: both
// come from one validation of the job's claims (JobClaims.normalized), so
// CI_PROJECT_ID and GITLAB_USER_ID are the token's project_id and user_id
// whether or not a token is minted. The names are CIJobVariables; the map
// holds every one of them. Invalid requests are ErrInvalidCIJob.
func (c *CIJobs) Job(ctx context.Context, req CIJobRequest) (map[string]string, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidCIJob}, a...)...)
	}
	now := c.cfg.Now()
	sha := req.SHA
	if sha == "" {
		b := make([]byte, 20)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("ci: random commit: %w", err)
		}
		sha = hex.EncodeToString(b)
	}
	pipeline := req.Pipeline
	if pipeline == "" {
		pipeline = strconv.FormatInt(now.UnixMilli(), 10)
	}
	job := req.Job
	if job == "" && ValidNumericID(pipeline) {
		n, _ := strconv.ParseInt(pipeline, 10, 64)
		if n < 1<<62 {
			n++
		}
		job = strconv.FormatInt(n, 10)
	}
	user := orDefault(req.User, "hallmark")
	u, _ := url.Parse(c.cfg.URL)
	host := u.Hostname()
	email := orDefault(req.UserEmail, user+"@users.noreply."+host)
	claims, err := JobClaims{Audience: []string{"sigstore"}, ProjectPath: req.Project, Ref: req.Ref, RefType: req.RefType,
		SHA: sha, PipelineID: pipeline, JobID: job, UserLogin: user, UserEmail: email}.normalized(now, ErrInvalidCIJob)
	if err != nil {
		return nil, err
	}
	project := claims.ProjectPath
	// The registry namespace is the lower-cased path (as GitLab's
	// CI_REGISTRY_IMAGE); it must be a valid repository name.
	repo := strings.ToLower(project)
	if err := oci.ValidateName(repo); err != nil {
		return nil, bad("project %q: %v", req.Project, err)
	}
	userName := orDefault(req.UserName, user)
	if len(userName) > 255 || strings.IndexFunc(userName, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return nil, bad("user name %q: at most 255 characters, no control characters", userName)
	}
	ttl := req.TTL
	if ttl < 0 || ttl > c.cfg.MaxJobTokenTTL {
		return nil, bad("ttl %s: want a positive duration of at most %s", ttl, c.cfg.MaxJobTokenTTL)
	}
	idTTL := ttl
	if c.iss != nil {
		if ttl == 0 {
			idTTL = min(CIJobDefaultTTL, c.iss.cfg.MaxTTL)
		}
		if idTTL > c.iss.cfg.MaxTTL {
			return nil, bad("ttl %s: the ID token may live at most %s (the server's --oidc-max-token-ttl)", idTTL, c.iss.cfg.MaxTTL)
		}
	}
	if ttl == 0 {
		ttl = CIJobDefaultTTL
	}

	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	serverURL := c.cfg.URL
	projectURL := serverURL + "/" + project
	registry := u.Host
	fingerprint := ""
	if c.cfg.Fingerprint != nil {
		fingerprint = c.cfg.Fingerprint()
	}
	ref, sha, pipeline, job := claims.Ref, claims.SHA, claims.PipelineID, claims.JobID
	v := map[string]string{
		"CI": "true", "GITLAB_CI": "true",
		"CI_SERVER_URL": serverURL, "CI_SERVER_HOST": host, "CI_SERVER_PORT": port, "CI_SERVER_PROTOCOL": u.Scheme,
		"CI_SERVER_FQDN":            u.Host,
		"CI_PROJECT_ID":             claims.ProjectID,
		"CI_PROJECT_PATH":           project,
		"CI_PROJECT_NAME":           project[strings.LastIndex(project, "/")+1:],
		"CI_PROJECT_NAMESPACE":      claims.NamespacePath,
		"CI_PROJECT_ROOT_NAMESPACE": project[:strings.Index(project, "/")],
		"CI_PROJECT_PATH_SLUG":      ciSlug(project, 0),
		"CI_PROJECT_URL":            projectURL,
		"CI_CONFIG_PATH":            claims.CIConfigPath,
		"CI_COMMIT_SHA":             sha, "CI_COMMIT_SHORT_SHA": sha[:8],
		"CI_COMMIT_REF_NAME": ref, "CI_COMMIT_REF_SLUG": ciSlug(ref, 63),
		"CI_COMMIT_BRANCH": "", "CI_COMMIT_TAG": "",
		"CI_PIPELINE_ID": pipeline, "CI_PIPELINE_SOURCE": claims.PipelineSource, "CI_PIPELINE_URL": projectURL + "/-/pipelines/" + pipeline,
		"CI_JOB_ID": job, "CI_JOB_NAME": "build_and_sign", "CI_JOB_STAGE": "build", "CI_JOB_URL": projectURL + "/-/jobs/" + job,
		"GITLAB_USER_ID": claims.UserID, "GITLAB_USER_LOGIN": claims.UserLogin, "GITLAB_USER_NAME": userName, "GITLAB_USER_EMAIL": claims.UserEmail,
		"CI_REGISTRY": registry, "CI_REGISTRY_IMAGE": registry + "/" + repo, "CI_REGISTRY_USER": "gitlab-ci-token",
		"CI_REGISTRY_PASSWORD": "", "CI_JOB_TOKEN": "",
		"SIGSTORE_ID_TOKEN": "", "COSIGN_YES": "true",
		"HALLMARK_URL": serverURL, "HALLMARK_REGISTRY": registry, "HALLMARK_TRUST_FINGERPRINT": fingerprint,
	}
	if claims.RefType == "branch" {
		v["CI_COMMIT_BRANCH"] = ref
	} else {
		v["CI_COMMIT_TAG"] = ref
	}
	if c.iss != nil {
		claims.TTL = idTTL
		tok, err := c.iss.Mint(ctx, claims)
		if errors.Is(err, ErrInvalidClaims) {
			return nil, fmt.Errorf("%w: %v", ErrInvalidCIJob, err)
		}
		if err != nil {
			return nil, fmt.Errorf("ci: minting the ID token: %w", err)
		}
		v["SIGSTORE_ID_TOKEN"] = tok
	}
	if c.jobTokens != nil {
		secret, err := c.jobTokens(ctx, repo, job, pipeline, claims.UserLogin, ttl)
		if err != nil {
			return nil, fmt.Errorf("ci: issuing the job token for %s: %w", repo, err)
		}
		v["CI_JOB_TOKEN"], v["CI_REGISTRY_PASSWORD"] = secret, secret
	}
	c.log.InfoContext(ctx, "ci: issued a CI job environment", "project", project, "ref", ref, "ref_type", claims.RefType,
		"pipeline_id", pipeline, "job_id", job, "user", claims.UserLogin, "job_token", v["CI_JOB_TOKEN"] != "", "id_token", v["SIGSTORE_ID_TOKEN"] != "")
	return v, nil
}

// ServeHTTP serves POST /api/v1/ci/job: JSON ciJobWire -> CIJobResponse.
// It authorises nothing: the server wraps it in its admin check.
func (c *CIJobs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var in ciJobWire
	if !decodeBody(w, r, &in, "project, ref, ...") {
		return
	}
	req := CIJobRequest{Project: in.Project, Ref: in.Ref, RefType: in.RefType, SHA: in.SHA, Pipeline: in.Pipeline,
		Job: in.Job, User: in.User, UserName: in.UserName, UserEmail: in.UserEmail}
	if in.TTL != "" {
		d, err := time.ParseDuration(in.TTL)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: fmt.Sprintf("ttl %q: want a positive duration such as 1h", in.TTL)})
			return
		}
		req.TTL = d
	}
	vars, err := c.Job(r.Context(), req)
	switch {
	case errors.Is(err, ErrInvalidCIJob):
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	case err != nil:
		c.log.ErrorContext(r.Context(), "ci: building a job environment failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, errorBody{Error: "building the CI job environment failed; see the server log"})
		return
	}
	writeJSON(w, http.StatusOK, CIJobResponse{Variables: vars})
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
