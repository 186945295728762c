package oidc

import (
	"encoding/json"
	"strconv"
	"time"
)

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
	Issuer     string    // iss
	Subject    string    // sub
	Audience   []string  // aud
	Expiry     time.Time // exp
	IssuedAt   time.Time // iat
	IssuerType string    // TypeGitLab, TypeEmail or TypeGeneric (from the trusted issuer's config)
	Identity   string    // the value proof of possession is checked against: email when verified, else sub
	// Claims holds every claim, as decoded from the JWT payload with
	// json.Decoder.UseNumber: strings are string, numbers json.Number (so
	// runner_id 12270835 prints as "12270835", never "1.2270835e+07"),
	// booleans bool, null nil, arrays []any, objects map[string]any. Use
	// StringClaim for a claim rendered as text.
	Claims map[string]any

	NotBefore time.Time // nbf (zero if absent)
	ID        string    // jti ("" if absent)
	KeyID     string    // kid of the key that verified the signature
}

// StringClaim returns claim name as text: strings as they are, numbers in
// their JSON spelling, booleans as "true"/"false". ok is false when the
// claim is absent, null, or an array/object.
func (t *Token) StringClaim(name string) (s string, ok bool) {
	if t == nil {
		return "", false
	}
	switch v := t.Claims[name].(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}
