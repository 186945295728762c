package oidc

import "time"

// Issuer types, as in Fulcio's configuration.
const (
	// TypeGitLab is a GitLab CI ID token (gitlab.com, self-managed GitLab or
	// Hallmark's built-in issuer, which mints the same claim set).
	TypeGitLab = "gitlab-pipeline"
	// TypeEmail is a generic OIDC token whose identity is a verified email.
	TypeEmail = "email"
	// TypeGeneric is a generic OIDC token whose identity is a configured
	// subject claim (default "sub").
	TypeGeneric = "generic"
)

// Token is a verified OIDC ID token.
type Token struct {
	Issuer     string         // iss
	Subject    string         // sub
	Audience   []string       // aud
	Expiry     time.Time      // exp
	IssuedAt   time.Time      // iat
	IssuerType string         // TypeGitLab, TypeEmail or TypeGeneric (from the trusted issuer's config)
	Identity   string         // the value proof of possession is checked against: email when verified, else sub
	Claims     map[string]any // every claim, as decoded from the JWT payload
}
