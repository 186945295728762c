// Package web serves Hallmark's JSON API for provenance: the signatures of
// an image (who signed it, with which annotations, certificate and the
// claims the CA recorded for it, its status under the project's trust
// policy, and which annotations the evidence contradicts) and the incident
// search (Searcher: by commit, pipeline, job, project, ref, user, runner,
// identity, issuer, annotation, status and time, evidence before
// annotations, access inside the query, keyset pages) with its CSV, NDJSON
// and sigstore bundle exports. It also serves the projects' trust policies
// (GET/PUT /api/v1/projects/{path}/policy) and index rebuilds, from
// internal/index. The console builds on the same Searcher.
// The web console (/ui/) lives here too: server-rendered pages of the same
// data for people, with sessions and CSRF tokens from internal/auth and
// templates and assets embedded (ui/).
package web
