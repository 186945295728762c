// Package policy manages the registry's pull policy: quarantines of
// manifests (one or many at once, e.g. the images of a provenance search,
// with one reason) and each project's require-signature setting. Its one
// Service checks who may change what (maintainers of the project, admins),
// validates what is untrusted text, bounds how fast a caller may change
// it, and has the store record every change with its audit event in one
// transaction; the JSON API (/api/v1/quarantine, /api/v1/projects/
// require-signature) and the CLI use it. internal/registry enforces the
// policy on pulls; it lives apart from internal/auth (identity) and
// internal/web (the console) because both use it.
package policy
