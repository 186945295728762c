package ca_test

import (
	"errors"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// TestEmailClaimMustBeABareAddress: an email issuer's email claim becomes
// the rfc822Name SAN verbatim, so it must be exactly one bare address.
// net/mail also parses "Display Name <addr>" and comments; such a claim
// would put a misleading string in the certificate (one that contains
// another address) instead of being refused.
func TestEmailClaimMustBeABareAddress(t *testing.T) {
	for _, email := range []string{
		"Victim <victim@corp.example>",
		"<victim@corp.example>",
		"attacker@evil.example (victim@corp.example)",
		`"victim@corp.example" <attacker@evil.example>`,
	} {
		tok := &oidc.Token{Issuer: "https://idp.example", IssuerType: oidc.TypeEmail, Subject: "1234", Identity: email,
			Claims: map[string]any{"iss": "https://idp.example", "sub": "1234", "email": email, "email_verified": true}}
		p, err := ca.PrincipalFromToken(tok)
		if !errors.Is(err, ca.ErrInvalidToken) {
			t.Errorf("email claim %q: got principal %+v, err %v; want ErrInvalidToken", email, p, err)
		}
	}
	tok := &oidc.Token{Issuer: "https://idp.example", IssuerType: oidc.TypeEmail, Subject: "1234", Identity: "dev@corp.example",
		Claims: map[string]any{"iss": "https://idp.example", "sub": "1234", "email": "dev@corp.example", "email_verified": true}}
	if p, err := ca.PrincipalFromToken(tok); err != nil || p.Subject.Email != "dev@corp.example" {
		t.Fatalf("plain address: %+v, %v", p, err)
	}
}
