// Package auth is Hallmark's registry access control: docker token auth (the
// Bearer challenge, the token endpoint, short-lived ES256 access tokens whose
// `access` claim is checked on every /v2/ request), users, projects
// (repository path prefixes with visibility and member roles), personal
// access tokens, CI job tokens (and their revocation), OIDC ID-token logins,
// failed-login throttling by client address (behind trusted proxies too),
// the cache of verified access tokens, the JSON APIs' authorizer (callers
// with their rights, e.g. maintainers for quarantines), whether a
// registry client may push (producers are served unsigned images under
// require-signature: enforce), the web console's sessions, the audit log (refused and warned pulls
// sampled per image), and external token services (--auth=token: GitLab's
// /jwt/auth signs the tokens, the registry authorizes from their access
// claim alone; external.go).
package auth
