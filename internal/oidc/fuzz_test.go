package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// FuzzVerify feeds arbitrary token strings to the verifier. It must never
// panic, and anything it accepts must carry exactly the claims of a token
// the issuer really minted (the seeds): no mutation may forge a token.
func FuzzVerify(f *testing.F) {
	c := newClock()
	iss := newTestIssuer(f, c, "")
	v := newTestVerifier(f, c, iss)
	minted := map[string]string{} // jti -> sub
	add := func(j JobClaims) string {
		tok := mint(f, iss, j)
		p := payloadOf(f, tok)
		minted[p["jti"].(string)] = p["sub"].(string)
		return tok
	}
	valid := add(job())
	tag := job()
	tag.Ref, tag.RefType, tag.Audience = "v1.0.0", "tag", []string{"sigstore", "other"}
	validTag := add(tag)
	parts := strings.Split(valid, ".")
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := c.Now()

	for _, s := range []string{
		valid, validTag, "", "a.b.c", "a.b", "....",
		parts[0] + "." + parts[1] + ".",
		parts[0] + ".." + parts[2],
		rawJWT(map[string]any{"alg": "none"}, standardClaims(testIssuerURL, now), nil),
		hs256WithPublicKey(f, &iss.current().priv.PublicKey, iss.KeyID(), standardClaims(testIssuerURL, now)),
		signJWT(f, jose.RS256, other, iss.KeyID(), standardClaims(testIssuerURL, now)),
		`{"protected":"x","payload":"y","signature":"z"}`,
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.AA",
	} {
		f.Add(s, "sigstore")
	}
	f.Fuzz(func(t *testing.T, raw, aud string) {
		tok, err := v.Verify(context.Background(), raw, aud)
		if err != nil {
			if tok != nil {
				t.Fatal("token returned with an error")
			}
			return
		}
		sub, ok := minted[tok.ID]
		if !ok || tok.Subject != sub || tok.Issuer != testIssuerURL {
			t.Fatalf("accepted a token the issuer never minted: %+v", tok)
		}
	})
}
