package server

import (
	"context"
	"net/http"
	"path/filepath"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// The CI job endpoint is internal/oidc's (CIJobs); its names stay here for
// the CLI and the demo.
const (
	CIJobPath       = oidc.CIJobPath
	CIJobDefaultTTL = oidc.CIJobDefaultTTL
)

// ErrInvalidCIJob: the CI job request is incomplete or invalid (HTTP 400).
var ErrInvalidCIJob = oidc.ErrInvalidCIJob

// CIJobVariables lists the variables of a CI job environment in the order
// `hallmark ci job` prints them.
var CIJobVariables = oidc.CIJobVariables

type (
	// CIJobRequest describes the CI job whose environment CIJob builds.
	CIJobRequest = oidc.CIJobRequest
	// CIJobResponse is the reply of POST /api/v1/ci/job.
	CIJobResponse = oidc.CIJobResponse
)

// ciJobs wires the CI job endpoint: the built-in issuer mints the ID
// token, the auth service the job token.
func (s *Server) ciJobs() (*oidc.CIJobs, error) {
	var jobTokens oidc.JobTokenMinter
	if s.auth != nil {
		jobTokens = func(ctx context.Context, project, job, pipeline, user string, ttl time.Duration) (string, error) {
			secret, _, err := s.auth.IssueJobToken(ctx, auth.JobTokenRequest{Project: project, JobID: job, Pipeline: pipeline,
				User: user, TTL: ttl, CreateProject: true})
			return secret, err
		}
	}
	return oidc.NewCIJobs(s.oidcIssuer, jobTokens, s.log, oidc.CIJobConfig{URL: s.url, MaxJobTokenTTL: auth.MaxJobTokenLifetime,
		Fingerprint: s.TrustedRootFingerprint})
}

// CIJob builds the environment of a CI job in process (`hallmark demo`);
// see oidc.CIJobs.Job.
func (s *Server) CIJob(ctx context.Context, req CIJobRequest) (map[string]string, error) {
	ci, err := s.ciJobs()
	if err != nil {
		return nil, err
	}
	return ci.Job(ctx, req)
}

// setupCI registers the CI job environment endpoint, admin only: an admin
// user or the admin token with auth on, the admin token with auth off
// (there are no users then; without the built-in issuer there is no admin
// token either, and the endpoint answers 503).
func (s *Server) setupCI(mux *http.ServeMux) error {
	ci, err := s.ciJobs()
	if err != nil {
		return err
	}
	var h http.Handler
	if s.auth != nil {
		h = s.auth.RequireAdmin(ci)
	} else if tok, err := readAdminToken(filepath.Join(s.cfg.DataDir, AdminTokenFile)); err != nil {
		return err
	} else if tok != "" {
		oh, err := oidc.NewHandler(s.oidcIssuer, s.log, tok, nil)
		if err != nil {
			return err
		}
		h = oh.RequireAdmin(ci)
	} else {
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"this server has no admin token (it is created with the built-in OIDC issuer, --oidc-builtin)"}` + "\n"))
		})
	}
	mux.Handle("POST "+CIJobPath, s.metrics.instrument("ci_job", h))
	return nil
}
