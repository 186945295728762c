// Package e2e holds Hallmark's end-to-end tests: the real `hallmark server`
// binary, a real Docker engine and the real signing clients running the
// reference GitLab pipeline (examples/gitlab/.gitlab-ci.yml) line by line,
// with the CI job environment from `hallmark ci job`. It has no non-test
// code.
package e2e
