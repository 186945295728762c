package provenance

// GitLab collects the eleven annotations of GitLab's tutorial "Annotate
// container images with build provenance data"
// (doc/user/packages/container_registry/cosign_tutorial.md), from GitLab's
// predefined CI/CD variables:
//
//	com.gitlab.ci.user.name            $GITLAB_USER_NAME
//	com.gitlab.ci.pipeline.id          $CI_PIPELINE_ID
//	com.gitlab.ci.pipeline.url         $CI_PIPELINE_URL
//	com.gitlab.ci.job.id               $CI_JOB_ID
//	com.gitlab.ci.job.url              $CI_JOB_URL
//	com.gitlab.ci.commit.sha           $CI_COMMIT_SHA
//	com.gitlab.ci.commit.ref.name      $CI_COMMIT_REF_NAME
//	com.gitlab.ci.project.path         $CI_PROJECT_PATH
//	org.opencontainers.image.source    $CI_PROJECT_URL
//	org.opencontainers.image.revision  $CI_COMMIT_SHA
//	tag                                the image tag (see below)
//
// The tutorial signs with tag=$IMAGE_TAG, a job variable it sets to
// $CI_COMMIT_SHORT_SHA and also uses as the pushed image's tag. So "tag" is
// Options.ImageTag when given, else $IMAGE_TAG, else $CI_COMMIT_SHORT_SHA.
// The user annotation is the display name ($GITLAB_USER_NAME), as in the
// tutorial, not the login.
type GitLab struct{}

// Name implements Provider.
func (GitLab) Name() string { return "GitLab CI" }

// Detect implements Provider: GITLAB_CI=true.
func (GitLab) Detect(env LookupFunc) bool {
	v, _ := env("GITLAB_CI")
	return v == "true"
}

// Annotations implements Provider.
func (g GitLab) Annotations(env LookupFunc, o Options) (map[string]string, error) {
	r := &reader{env: env}
	ann := map[string]string{
		"com.gitlab.ci.user.name":           r.get("GITLAB_USER_NAME"),
		"com.gitlab.ci.pipeline.id":         r.get("CI_PIPELINE_ID"),
		"com.gitlab.ci.pipeline.url":        r.get("CI_PIPELINE_URL"),
		"com.gitlab.ci.job.id":              r.get("CI_JOB_ID"),
		"com.gitlab.ci.job.url":             r.get("CI_JOB_URL"),
		"com.gitlab.ci.commit.sha":          r.get("CI_COMMIT_SHA"),
		"com.gitlab.ci.commit.ref.name":     r.get("CI_COMMIT_REF_NAME"),
		"com.gitlab.ci.project.path":        r.get("CI_PROJECT_PATH"),
		"org.opencontainers.image.source":   r.get("CI_PROJECT_URL"),
		"org.opencontainers.image.revision": r.get("CI_COMMIT_SHA"),
	}
	ann["tag"] = imageTag(r, o, func() string { return r.get("CI_COMMIT_SHORT_SHA") })
	return r.result(g.Name(), ann)
}
