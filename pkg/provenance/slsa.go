package provenance

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The build types of the SLSA provenance v1
// (https://slsa.dev/spec/v1.0/provenance) predicates Hallmark writes; the
// predicate type is payload.PredicateSLSA1.
const (
	// GitLabBuildType is GitLab's published buildType for a CI/CD job
	// (docs.gitlab.com/ci/pipeline_security/slsa/provenance_v1).
	GitLabBuildType = "https://docs.gitlab.com/ci/pipeline_security/slsa/provenance_v1"
	// GitHubBuildType is GitHub's buildType for an Actions workflow run.
	GitHubBuildType = "https://actions.github.io/buildtypes/workflow/v1"
)

// SLSAProvenance is the SLSA v1 provenance predicate.
type SLSAProvenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built and how.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   map[string]any       `json:"externalParameters"`
	InternalParameters   map[string]any       `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies,omitempty"`
}

// ResourceDescriptor is an in-toto ResourceDescriptor.
type ResourceDescriptor struct {
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
	Name   string            `json:"name,omitempty"`
}

// RunDetails says who built it and when.
type RunDetails struct {
	Builder  Builder       `json:"builder"`
	Metadata BuildMetadata `json:"metadata"`
}

// Builder identifies the build platform.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// BuildMetadata identifies the run.
type BuildMetadata struct {
	InvocationID string `json:"invocationId,omitempty"`
	StartedOn    string `json:"startedOn,omitempty"`
	FinishedOn   string `json:"finishedOn,omitempty"`
}

// gitlabPublicVariables are the predefined GitLab variables recorded in
// externalParameters.variables. Only these: a job's environment also holds
// secrets (CI_JOB_TOKEN, CI_REGISTRY_PASSWORD, SIGSTORE_ID_TOKEN, masked
// project variables) that must never reach a public attestation.
var gitlabPublicVariables = []string{
	"CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME", "CI_COMMIT_REF_PROTECTED", "CI_COMMIT_SHA", "CI_COMMIT_TAG",
	"CI_CONFIG_PATH", "CI_DEFAULT_BRANCH", "CI_JOB_ID", "CI_JOB_NAME", "CI_JOB_STAGE", "CI_JOB_URL",
	"CI_PIPELINE_ID", "CI_PIPELINE_SOURCE", "CI_PIPELINE_URL", "CI_PROJECT_ID", "CI_PROJECT_PATH",
	"CI_PROJECT_URL", "CI_PROJECT_VISIBILITY", "CI_REGISTRY_IMAGE", "CI_RUNNER_ID", "CI_SERVER_URL",
	"GITLAB_USER_LOGIN",
}

// CollectSLSA builds a SLSA v1 provenance predicate for the CI job
// described by env (GitLab CI, or GitHub Actions), with now as the
// finishing time. Only non-secret predefined variables are recorded.
func CollectSLSA(env LookupFunc, now time.Time) (*SLSAProvenance, error) {
	if env == nil {
		return nil, ErrNoCI
	}
	if (GitLab{}).Detect(env) {
		return gitlabSLSA(env, now)
	}
	if (GitHubActions{}).Detect(env) {
		return githubSLSA(env, now)
	}
	return nil, ErrNoCI
}

func gitlabSLSA(env LookupFunc, now time.Time) (*SLSAProvenance, error) {
	r := &reader{env: env}
	project, sha, jobURL, jobID := r.get("CI_PROJECT_URL"), r.get("CI_COMMIT_SHA"), r.get("CI_JOB_URL"), r.get("CI_JOB_ID")
	if len(r.missing) > 0 {
		return nil, &MissingVariablesError{Provider: GitLab{}.Name(), Names: r.missing}
	}
	vars := map[string]string{}
	for _, k := range gitlabPublicVariables {
		if v := r.optional(k); v != "" {
			vars[k] = v
		}
	}
	ext := map[string]any{"source": project, "variables": vars}
	if name := r.optional("CI_JOB_NAME"); name != "" {
		ext["entryPoint"] = name
	}
	internal := map[string]any{"job": jobID}
	for k, v := range map[string]string{"name": "CI_RUNNER_DESCRIPTION", "executor": "CI_RUNNER_EXECUTOR", "architecture": "CI_RUNNER_EXECUTABLE_ARCH"} {
		if val := r.optional(v); val != "" {
			internal[k] = val
		}
	}
	dep := ResourceDescriptor{URI: "git+" + project, Digest: map[string]string{"gitCommit": sha}}
	if ref := r.optional("CI_COMMIT_REF_NAME"); ref != "" {
		prefix := "refs/heads/"
		if r.optional("CI_COMMIT_TAG") != "" {
			prefix = "refs/tags/"
		}
		dep.URI += "@" + prefix + ref
	}
	builder := Builder{ID: strings.TrimRight(r.optional("CI_SERVER_URL"), "/")}
	if id := r.optional("CI_RUNNER_ID"); id != "" {
		builder.ID = project + "/-/runners/" + id
	}
	if builder.ID == "" {
		builder.ID = project
	}
	if v := r.optional("CI_RUNNER_VERSION"); v != "" {
		builder.Version = map[string]string{"gitlab-runner": v}
	}
	return &SLSAProvenance{
		BuildDefinition: BuildDefinition{BuildType: GitLabBuildType, ExternalParameters: ext, InternalParameters: internal,
			ResolvedDependencies: []ResourceDescriptor{dep}},
		RunDetails: RunDetails{Builder: builder, Metadata: BuildMetadata{InvocationID: jobURL,
			StartedOn: r.optional("CI_JOB_STARTED_AT"), FinishedOn: now.UTC().Format(time.RFC3339)}},
	}, nil
}

func githubSLSA(env LookupFunc, now time.Time) (*SLSAProvenance, error) {
	r := &reader{env: env}
	server, repo, sha, runID, attempt := r.get("GITHUB_SERVER_URL"), r.get("GITHUB_REPOSITORY"), r.get("GITHUB_SHA"), r.get("GITHUB_RUN_ID"), r.get("GITHUB_RUN_ATTEMPT")
	wfRef := r.get("GITHUB_WORKFLOW_REF")
	if len(r.missing) > 0 {
		return nil, &MissingVariablesError{Provider: GitHubActions{}.Name(), Names: r.missing}
	}
	ref := r.optional("GITHUB_REF")
	path := wfRef
	if _, rest, ok := strings.Cut(wfRef, repo+"/"); ok {
		path, _, _ = strings.Cut(rest, "@")
	}
	return &SLSAProvenance{
		BuildDefinition: BuildDefinition{BuildType: GitHubBuildType,
			ExternalParameters: map[string]any{"workflow": map[string]string{"ref": ref, "repository": server + "/" + repo, "path": path}},
			InternalParameters: map[string]any{"github": map[string]string{"event_name": r.optional("GITHUB_EVENT_NAME"),
				"repository_id": r.optional("GITHUB_REPOSITORY_ID"), "repository_owner_id": r.optional("GITHUB_REPOSITORY_OWNER_ID")}},
			ResolvedDependencies: []ResourceDescriptor{{URI: "git+" + server + "/" + repo + "@" + ref, Digest: map[string]string{"gitCommit": sha}}}},
		RunDetails: RunDetails{Builder: Builder{ID: server + "/" + wfRef},
			Metadata: BuildMetadata{InvocationID: fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", server, repo, runID, attempt),
				FinishedOn: now.UTC().Format(time.RFC3339)}},
	}, nil
}

// JSON returns the predicate as compact JSON.
func (p *SLSAProvenance) JSON() (json.RawMessage, error) { return json.Marshal(p) }
