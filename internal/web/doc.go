// Package web serves Hallmark's JSON API for provenance: the signatures of
// an image (who signed it, with which annotations and certificate
// extensions, verified or not) and a search by signed annotation, by
// certificate extension (commit, ref, pipeline job, runner environment) or
// by signer identity, e.g. every image built from a commit. With access
// control on, answers are limited to the repositories the caller may pull.
// The web console (/ui/) lives here too: server-rendered pages of the same
// data for people, with sessions and CSRF tokens from internal/auth and
// templates and assets embedded (ui/).
package web
