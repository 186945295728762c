package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// CIJobPath is the server's admin endpoint handing out CI job environments
// (internal/server.CIJobPath).
const CIJobPath = "/api/v1/ci/job"

// JobRequest describes a CI job to get the environment of. Project and Ref
// are required; the server fills in the rest (random commit, ids, user).
type JobRequest struct {
	Project  string // group/project
	Ref      string // branch, e.g. main
	SHA      string
	Pipeline string
	Job      string
	User     string
	UserName string
}

// JobSource hands out CI job environments: GitLab's predefined variables
// (CI_REGISTRY_IMAGE, CI_PROJECT_URL, CI_SERVER_URL, CI_COMMIT_SHA, ...),
// the CI job token (CI_JOB_TOKEN) and the ID token for signing
// (SIGSTORE_ID_TOKEN), as internal/server's CIJob does.
type JobSource interface {
	Job(ctx context.Context, req JobRequest) (map[string]string, error)
}

// JobFunc adapts a function to JobSource.
type JobFunc func(ctx context.Context, req JobRequest) (map[string]string, error)

// Job implements JobSource.
func (f JobFunc) Job(ctx context.Context, req JobRequest) (map[string]string, error) {
	return f(ctx, req)
}

// HTTPJobs gets CI job environments from a running server over its admin
// API (POST /api/v1/ci/job, what `hallmark ci job` uses), authorised by the
// server's admin token.
type HTTPJobs struct {
	URL        string // server base URL
	AdminToken string // contents of <data-dir>/admin-token
	Client     *http.Client
}

// ErrJobRefused is wrapped when the server refuses a CI job request.
var ErrJobRefused = errors.New("the server refused the CI job request")

// Job implements JobSource.
func (h *HTTPJobs) Job(ctx context.Context, req JobRequest) (map[string]string, error) {
	body, err := json.Marshal(map[string]string{"project": req.Project, "ref": req.Ref, "sha": req.SHA,
		"pipeline_id": req.Pipeline, "job_id": req.Job, "user": req.User, "user_name": req.UserName})
	if err != nil {
		return nil, err
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(h.URL, "/")+CIJobPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Authorization", "Bearer "+h.AdminToken)
	r.Header.Set("Content-Type", "application/json")
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: time.Minute}
	}
	resp, err := c.Do(r)
	if err != nil {
		return nil, fmt.Errorf("requesting a CI job from %s: %w", h.URL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the CI job reply of %s: %w", h.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered HTTP %d: %s", ErrJobRefused, h.URL, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	return DecodeJobResponse(raw)
}

// ErrInvalidJob is wrapped by DecodeJobResponse errors.
var ErrInvalidJob = errors.New("invalid CI job environment")

// DecodeJobResponse parses the server's CI job reply,
// {"variables": {"NAME": "value", ...}}: every name must be a portable
// shell variable name and the variables the workflow needs must be there.
func DecodeJobResponse(raw []byte) (map[string]string, error) {
	var out struct {
		Variables map[string]string `json:"variables"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJob, err)
	}
	if out.Variables == nil {
		return nil, fmt.Errorf("%w: no \"variables\" object", ErrInvalidJob)
	}
	for k := range out.Variables {
		if !ValidEnvName(k) {
			return nil, fmt.Errorf("%w: %q is not a variable name", ErrInvalidJob, k)
		}
	}
	if err := CheckJob(out.Variables); err != nil {
		return nil, err
	}
	return out.Variables, nil
}

// jobVariables are the variables a Session needs.
var jobVariables = []string{"CI_SERVER_URL", "CI_PROJECT_URL", "CI_PROJECT_PATH", "CI_REGISTRY_IMAGE", "CI_COMMIT_SHA",
	"CI_COMMIT_SHORT_SHA", "CI_COMMIT_REF_NAME", "HALLMARK_URL"}

// CheckJob reports a CI job environment missing what the workflow needs.
func CheckJob(env map[string]string) error {
	var missing []string
	for _, k := range jobVariables {
		if env[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrInvalidJob, strings.Join(missing, ", "))
	}
	return nil
}

// ValidEnvName reports whether k is a portable shell variable name
// ([A-Za-z_][A-Za-z0-9_]*), as every name of a CI job environment must be.
func ValidEnvName(k string) bool {
	if k == "" || ('0' <= k[0] && k[0] <= '9') {
		return false
	}
	for _, r := range k {
		if !(r == '_' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z') {
			return false
		}
	}
	return true
}
