package provenance

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
)

// envOf turns a map into a LookupFunc.
func envOf(m map[string]string) LookupFunc {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// with returns a copy of base with changes applied; a "-" value deletes.
func with(base map[string]string, changes ...string) map[string]string {
	out := maps.Clone(base)
	for i := 0; i+1 < len(changes); i += 2 {
		if changes[i+1] == "-" {
			delete(out, changes[i])
		} else {
			out[changes[i]] = changes[i+1]
		}
	}
	return out
}

var gitlabEnv = map[string]string{
	"GITLAB_CI":           "true",
	"CI":                  "true",
	"GITLAB_USER_NAME":    "Jane Doe",
	"GITLAB_USER_LOGIN":   "jdoe",
	"CI_PIPELINE_ID":      "1234",
	"CI_PIPELINE_URL":     "https://gitlab.example/grp/proj/-/pipelines/1234",
	"CI_JOB_ID":           "5678",
	"CI_JOB_URL":          "https://gitlab.example/grp/proj/-/jobs/5678",
	"CI_COMMIT_SHA":       "0123456789abcdef0123456789abcdef01234567",
	"CI_COMMIT_SHORT_SHA": "01234567",
	"CI_COMMIT_REF_NAME":  "main",
	"CI_PROJECT_PATH":     "grp/proj",
	"CI_PROJECT_URL":      "https://gitlab.example/grp/proj",
}

var gitlabWant = map[string]string{
	"com.gitlab.ci.user.name":           "Jane Doe",
	"com.gitlab.ci.pipeline.id":         "1234",
	"com.gitlab.ci.pipeline.url":        "https://gitlab.example/grp/proj/-/pipelines/1234",
	"com.gitlab.ci.job.id":              "5678",
	"com.gitlab.ci.job.url":             "https://gitlab.example/grp/proj/-/jobs/5678",
	"com.gitlab.ci.commit.sha":          "0123456789abcdef0123456789abcdef01234567",
	"com.gitlab.ci.commit.ref.name":     "main",
	"com.gitlab.ci.project.path":        "grp/proj",
	"org.opencontainers.image.source":   "https://gitlab.example/grp/proj",
	"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
	"tag":                               "01234567",
}

var githubEnv = map[string]string{
	"GITHUB_ACTIONS":      "true",
	"GITHUB_ACTOR":        "octocat",
	"GITHUB_SERVER_URL":   "https://github.com",
	"GITHUB_REPOSITORY":   "octo/app",
	"GITHUB_RUN_ID":       "987654321",
	"GITHUB_RUN_ATTEMPT":  "2",
	"GITHUB_JOB":          "build",
	"GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/release.yml@refs/heads/main",
	"GITHUB_SHA":          "fedcba9876543210fedcba9876543210fedcba98",
	"GITHUB_REF_NAME":     "main",
}

var githubWant = map[string]string{
	"com.github.actions.actor":          "octocat",
	"com.github.actions.run.id":         "987654321",
	"com.github.actions.run.attempt":    "2",
	"com.github.actions.run.url":        "https://github.com/octo/app/actions/runs/987654321",
	"com.github.actions.job":            "build",
	"com.github.actions.workflow.ref":   "octo/app/.github/workflows/release.yml@refs/heads/main",
	"com.github.actions.commit.sha":     "fedcba9876543210fedcba9876543210fedcba98",
	"com.github.actions.ref.name":       "main",
	"com.github.actions.repository":     "octo/app",
	"org.opencontainers.image.source":   "https://github.com/octo/app",
	"org.opencontainers.image.revision": "fedcba9876543210fedcba9876543210fedcba98",
	"tag":                               "fedcba98",
}

func TestCollect(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string
		opts        []Option
		want        map[string]string
		wantMissing []string // non-nil: expect a *MissingVariablesError with these names
		wantNoCI    bool
	}{
		{name: "gitlab", env: gitlabEnv, want: gitlabWant},
		{name: "gitlab IMAGE_TAG", env: with(gitlabEnv, "IMAGE_TAG", "v1.2.3"), want: with(gitlabWant, "tag", "v1.2.3")},
		{name: "gitlab option tag wins", env: with(gitlabEnv, "IMAGE_TAG", "v1.2.3"), opts: []Option{WithImageTag("release")},
			want: with(gitlabWant, "tag", "release")},
		{name: "gitlab empty IMAGE_TAG falls back", env: with(gitlabEnv, "IMAGE_TAG", ""), want: gitlabWant},
		{name: "gitlab IMAGE_TAG covers missing short sha", env: with(gitlabEnv, "IMAGE_TAG", "v1", "CI_COMMIT_SHORT_SHA", "-"),
			want: with(gitlabWant, "tag", "v1")},
		{name: "gitlab one missing", env: with(gitlabEnv, "CI_JOB_URL", "-"), wantMissing: []string{"CI_JOB_URL"}},
		{name: "gitlab empty is missing", env: with(gitlabEnv, "GITLAB_USER_NAME", ""), wantMissing: []string{"GITLAB_USER_NAME"}},
		{name: "gitlab lists all missing, once each, in order",
			env:         with(gitlabEnv, "CI_PROJECT_URL", "-", "CI_COMMIT_SHA", "", "CI_PIPELINE_ID", "-", "CI_COMMIT_SHORT_SHA", "-"),
			wantMissing: []string{"CI_PIPELINE_ID", "CI_COMMIT_SHA", "CI_PROJECT_URL", "CI_COMMIT_SHORT_SHA"}},
		{name: "gitlab only detection variable",
			env: map[string]string{"GITLAB_CI": "true"},
			wantMissing: []string{"GITLAB_USER_NAME", "CI_PIPELINE_ID", "CI_PIPELINE_URL", "CI_JOB_ID", "CI_JOB_URL",
				"CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "CI_PROJECT_PATH", "CI_PROJECT_URL", "CI_COMMIT_SHORT_SHA"}},
		{name: "github", env: githubEnv, want: githubWant},
		{name: "github IMAGE_TAG", env: with(githubEnv, "IMAGE_TAG", "v2"), want: with(githubWant, "tag", "v2")},
		{name: "github lists all missing",
			env:         with(githubEnv, "GITHUB_SERVER_URL", "-", "GITHUB_SHA", "", "GITHUB_WORKFLOW_REF", "-"),
			wantMissing: []string{"GITHUB_SERVER_URL", "GITHUB_WORKFLOW_REF", "GITHUB_SHA"}},
		{name: "gitlab detected first", env: with(gitlabEnv, "GITHUB_ACTIONS", "true"), want: gitlabWant},
		{name: "GITLAB_CI not true", env: with(gitlabEnv, "GITLAB_CI", "1"), wantNoCI: true},
		{name: "no CI", env: map[string]string{"CI": "true"}, wantNoCI: true},
		{name: "nil env", env: nil, wantNoCI: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var env LookupFunc
			if tc.env != nil {
				env = envOf(tc.env)
			}
			got, err := Collect(env, tc.opts...)
			switch {
			case tc.wantNoCI:
				if !errors.Is(err, ErrNoCI) || got != nil {
					t.Fatalf("Collect = %v, %v; want ErrNoCI", got, err)
				}
			case tc.wantMissing != nil:
				var me *MissingVariablesError
				if !errors.As(err, &me) || !errors.Is(err, ErrMissingVariables) {
					t.Fatalf("Collect error = %v, want *MissingVariablesError", err)
				}
				if !reflect.DeepEqual(me.Names, tc.wantMissing) {
					t.Errorf("missing = %q, want %q", me.Names, tc.wantMissing)
				}
				for _, n := range tc.wantMissing {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("error text %q does not name %s", err, n)
					}
				}
				if got != nil {
					t.Errorf("annotations returned with an error: %v", got)
				}
			default:
				if err != nil {
					t.Fatalf("Collect: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Collect =\n%v\nwant\n%v", got, tc.want)
				}
				for k, v := range got {
					if v == "" {
						t.Errorf("annotation %s is empty", k)
					}
				}
			}
		})
	}
}

func TestGitLabMatchesTutorialKeys(t *testing.T) {
	got, err := Collect(envOf(gitlabEnv))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 11 {
		t.Errorf("GitLab gives %d annotations, the tutorial signs 11", len(got))
	}
}

func TestMissingVariablesErrorText(t *testing.T) {
	err := &MissingVariablesError{Provider: "GitLab CI", Names: []string{"CI_JOB_ID", "CI_JOB_URL"}}
	want := "GitLab CI: CI variables missing or empty: CI_JOB_ID, CI_JOB_URL; these are predefined in every job, so check that the job exposes them (or pass the annotations explicitly with -a key=value)"
	if err.Error() != want {
		t.Errorf("Error() = %q\nwant      %q", err, want)
	}
}

func TestMerge(t *testing.T) {
	tests := []struct {
		name                string
		collected, explicit map[string]string
		want                map[string]string
	}{
		{"both nil", nil, nil, map[string]string{}},
		{"only collected", map[string]string{"a": "1"}, nil, map[string]string{"a": "1"}},
		{"only explicit", nil, map[string]string{"b": "2"}, map[string]string{"b": "2"}},
		{"explicit wins", map[string]string{"tag": "abc", "a": "1"}, map[string]string{"tag": "v1", "b": "2"},
			map[string]string{"tag": "v1", "a": "1", "b": "2"}},
		{"explicit empty value wins", map[string]string{"tag": "abc"}, map[string]string{"tag": ""}, map[string]string{"tag": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := maps.Clone(tc.collected)
			got := Merge(tc.collected, tc.explicit)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Merge = %v, want %v", got, tc.want)
			}
			if !maps.Equal(before, tc.collected) {
				t.Errorf("Merge modified its input")
			}
		})
	}
}

// stubProvider checks that CollectFrom passes the options through.
type stubProvider struct{ got *Options }

func (stubProvider) Name() string               { return "stub" }
func (stubProvider) Detect(env LookupFunc) bool { return true }
func (s stubProvider) Annotations(env LookupFunc, o Options) (map[string]string, error) {
	*s.got = o
	return map[string]string{"k": "v"}, nil
}

func TestCollectFromCustomProvider(t *testing.T) {
	var o Options
	got, err := CollectFrom(envOf(nil), []Provider{stubProvider{got: &o}}, WithImageTag("t"))
	if err != nil || got["k"] != "v" || o.ImageTag != "t" {
		t.Errorf("CollectFrom = %v, %v (options %+v)", got, err, o)
	}
}
