// Package provenance turns the predefined variables of a CI job into the
// signature annotations that record where an image was built (GitLab CI, as
// in GitLab's "annotate container images with build provenance data"
// tutorial, and GitHub Actions), and into a SLSA provenance v1 predicate for
// attestations (CollectSLSA; only non-secret variables are recorded).
//
// A variable that is missing or empty is an error naming every such
// variable: an annotation is never written with an empty value.
package provenance
