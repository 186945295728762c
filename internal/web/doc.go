// Package web serves Hallmark's JSON API for provenance: the signatures of
// an image (who signed it, with which annotations and certificate
// extensions, verified or not) and a search by signed annotation, by
// certificate extension (commit, ref, pipeline job, runner environment) or
// by signer identity, e.g. every image built from a commit. With access
// control on, answers are limited to the repositories the caller may pull.
// It also serves the projects' trust policies (GET/PUT
// /api/v1/projects/{path}/policy) and index rebuilds, from internal/index.
// The HTML UI will live here too.
package web
