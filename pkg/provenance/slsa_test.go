package provenance

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func lookup(m map[string]string) LookupFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestCollectSLSAGitLab(t *testing.T) {
	env := map[string]string{
		"GITLAB_CI": "true", "CI_SERVER_URL": "https://gitlab.example", "CI_PROJECT_URL": "https://gitlab.example/grp/app",
		"CI_COMMIT_SHA": "714a629c0b401fdce83e847fc9589983fc6f46bc", "CI_COMMIT_REF_NAME": "main", "CI_JOB_ID": "302",
		"CI_JOB_URL": "https://gitlab.example/grp/app/-/jobs/302", "CI_JOB_NAME": "build", "CI_RUNNER_ID": "7",
		"CI_RUNNER_VERSION": "17.0.0", "CI_JOB_STARTED_AT": "2026-11-25T09:00:00Z", "CI_PIPELINE_ID": "574",
		"CI_JOB_TOKEN": "glcbt-secret", "CI_REGISTRY_PASSWORD": "secret2", "SIGSTORE_ID_TOKEN": "eyJsecret", "MY_MASKED_VAR": "secret3",
	}
	now := time.Date(2026, 11, 25, 9, 5, 0, 0, time.UTC)
	p, err := CollectSLSA(lookup(env), now)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.JSON()
	for _, secret := range []string{"secret", "CI_JOB_TOKEN", "SIGSTORE_ID_TOKEN", "MY_MASKED_VAR"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the predicate holds %s:\n%s", secret, b)
		}
	}
	var got struct {
		BuildDefinition struct {
			BuildType          string `json:"buildType"`
			ExternalParameters struct {
				Source     string            `json:"source"`
				EntryPoint string            `json:"entryPoint"`
				Variables  map[string]string `json:"variables"`
			} `json:"externalParameters"`
			InternalParameters   map[string]any `json:"internalParameters"`
			ResolvedDependencies []struct {
				URI    string            `json:"uri"`
				Digest map[string]string `json:"digest"`
			} `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID      string            `json:"id"`
				Version map[string]string `json:"version"`
			} `json:"builder"`
			Metadata BuildMetadata `json:"metadata"`
		} `json:"runDetails"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	bd, rd := got.BuildDefinition, got.RunDetails
	if bd.BuildType != GitLabBuildType || bd.ExternalParameters.Source != env["CI_PROJECT_URL"] || bd.ExternalParameters.EntryPoint != "build" ||
		bd.ExternalParameters.Variables["CI_PIPELINE_ID"] != "574" || bd.InternalParameters["job"] != "302" ||
		bd.ResolvedDependencies[0].URI != "git+https://gitlab.example/grp/app@refs/heads/main" ||
		bd.ResolvedDependencies[0].Digest["gitCommit"] != env["CI_COMMIT_SHA"] ||
		rd.Builder.ID != "https://gitlab.example/grp/app/-/runners/7" || rd.Builder.Version["gitlab-runner"] != "17.0.0" ||
		rd.Metadata != (BuildMetadata{InvocationID: env["CI_JOB_URL"], StartedOn: "2026-11-25T09:00:00Z", FinishedOn: "2026-11-25T09:05:00Z"}) {
		t.Errorf("predicate:\n%s", b)
	}

	delete(env, "CI_JOB_URL")
	delete(env, "CI_COMMIT_SHA")
	_, err = CollectSLSA(lookup(env), now)
	var me *MissingVariablesError
	if !errors.As(err, &me) || strings.Join(me.Names, ",") != "CI_COMMIT_SHA,CI_JOB_URL" {
		t.Errorf("missing variables: %v", err)
	}
	if _, err := CollectSLSA(lookup(map[string]string{}), now); !errors.Is(err, ErrNoCI) {
		t.Errorf("no CI: %v", err)
	}
}

func TestCollectSLSAGitHub(t *testing.T) {
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "o/r",
		"GITHUB_SHA": "abc", "GITHUB_RUN_ID": "9", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_REF": "refs/heads/main",
		"GITHUB_WORKFLOW_REF": "o/r/.github/workflows/build.yml@refs/heads/main", "GITHUB_TOKEN": "ghs_secret"}
	p, err := CollectSLSA(lookup(env), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p.JSON()
	if strings.Contains(string(b), "secret") || p.BuildDefinition.BuildType != GitHubBuildType ||
		p.RunDetails.Metadata.InvocationID != "https://github.com/o/r/actions/runs/9/attempts/1" ||
		p.BuildDefinition.ExternalParameters["workflow"].(map[string]string)["path"] != ".github/workflows/build.yml" {
		t.Errorf("predicate:\n%s", b)
	}
}
