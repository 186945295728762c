// Package oidc is Hallmark's OpenID Connect side of keyless signing: a
// built-in issuer that mints GitLab-compatible CI job ID tokens (discovery
// document, JWKS, RS256 keys kept in the data dir, rotation), the CI job
// endpoint that hands out a job's environment (GitLab's variables, its ID
// token and CI job token, from one validation of its claims), and a Verifier
// that checks ID tokens from the built-in issuer and from trusted external
// issuers (GitLab.com, self-managed GitLab, generic OIDC providers).
package oidc
