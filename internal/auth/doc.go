// Package auth is Hallmark's registry access control: docker token auth (the
// Bearer challenge, the token endpoint, short-lived ES256 access tokens whose
// `access` claim is checked on every /v2/ request), users, projects
// (repository path prefixes with visibility and member roles), personal
// access tokens, CI job tokens (and their revocation), OIDC ID-token logins,
// failed-login throttling by client address (behind trusted proxies too),
// the cache of verified access tokens, the provenance API's authorizer,
// the web console's sessions and the audit log.
package auth
