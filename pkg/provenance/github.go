package provenance

// GitHubActions collects the GitHub Actions counterpart of the GitLab set
// from GitHub's default environment variables:
//
//	com.github.actions.actor           $GITHUB_ACTOR
//	com.github.actions.run.id          $GITHUB_RUN_ID
//	com.github.actions.run.attempt     $GITHUB_RUN_ATTEMPT
//	com.github.actions.run.url         $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID
//	com.github.actions.job             $GITHUB_JOB (the job's id in the workflow file)
//	com.github.actions.workflow.ref    $GITHUB_WORKFLOW_REF (owner/repo/.github/workflows/x.yml@ref)
//	com.github.actions.commit.sha      $GITHUB_SHA
//	com.github.actions.ref.name        $GITHUB_REF_NAME
//	com.github.actions.repository      $GITHUB_REPOSITORY
//	org.opencontainers.image.source    $GITHUB_SERVER_URL/$GITHUB_REPOSITORY
//	org.opencontainers.image.revision  $GITHUB_SHA
//	tag                                the image tag
//
// "tag" is Options.ImageTag when given, else $IMAGE_TAG, else the first
// eight characters of $GITHUB_SHA (the length of GitLab's
// CI_COMMIT_SHORT_SHA).
type GitHubActions struct{}

// Name implements Provider.
func (GitHubActions) Name() string { return "GitHub Actions" }

// Detect implements Provider: GITHUB_ACTIONS=true.
func (GitHubActions) Detect(env LookupFunc) bool {
	v, _ := env("GITHUB_ACTIONS")
	return v == "true"
}

// Annotations implements Provider.
func (g GitHubActions) Annotations(env LookupFunc, o Options) (map[string]string, error) {
	r := &reader{env: env}
	actor := r.get("GITHUB_ACTOR")
	server, repo, runID := r.get("GITHUB_SERVER_URL"), r.get("GITHUB_REPOSITORY"), r.get("GITHUB_RUN_ID")
	ann := map[string]string{
		"com.github.actions.actor":          actor,
		"com.github.actions.run.id":         runID,
		"com.github.actions.run.attempt":    r.get("GITHUB_RUN_ATTEMPT"),
		"com.github.actions.run.url":        server + "/" + repo + "/actions/runs/" + runID,
		"com.github.actions.job":            r.get("GITHUB_JOB"),
		"com.github.actions.workflow.ref":   r.get("GITHUB_WORKFLOW_REF"),
		"com.github.actions.commit.sha":     r.get("GITHUB_SHA"),
		"com.github.actions.ref.name":       r.get("GITHUB_REF_NAME"),
		"com.github.actions.repository":     repo,
		"org.opencontainers.image.source":   server + "/" + repo,
		"org.opencontainers.image.revision": r.get("GITHUB_SHA"),
	}
	ann["tag"] = imageTag(r, o, func() string {
		sha := r.get("GITHUB_SHA")
		return sha[:min(8, len(sha))]
	})
	return r.result(g.Name(), ann)
}
