package oidc

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// asymmetricAlgs are the only JWS algorithms a verifier ever accepts; an
// issuer may narrow them down in its discovery document. HMAC algorithms and
// "none" are never accepted: with HS256 a public key would become the MAC
// secret (algorithm confusion).
var asymmetricAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.EdDSA,
}

// jwtHeader is the part of the JOSE header the verifier looks at before
// handing the token to go-jose.
type jwtHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// unverifiedJWT is a token split and decoded but not yet verified.
type unverifiedJWT struct {
	header jwtHeader
	iss    string
}

// parseUnverified checks the shape of raw (three base64url parts, JSON
// header and payload object) and returns the header and the claimed issuer.
// Nothing it returns may be trusted before the signature is verified.
func parseUnverified(raw string, maxSize int) (*unverifiedJWT, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: empty token", ErrMalformed)
	}
	if len(raw) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(raw), maxSize)
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, fmt.Errorf("%w: this is an encrypted JWE (5 parts); an ID token is a signed JWS (header.payload.signature)", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: want 3 dot-separated parts (header.payload.signature), got %d", ErrMalformed, len(parts))
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, fmt.Errorf("%w: header is not base64url: %v", ErrMalformed, err)
	}
	var h jwtHeader
	if err := decodeJSONObject(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64url: %v", ErrMalformed, err)
	}
	var p struct {
		Iss any `json:"iss"`
	}
	if err := decodeJSONObject(pb, &p); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	iss, ok := p.Iss.(string)
	if !ok || iss == "" {
		return nil, fmt.Errorf("%w: no iss (issuer) claim of type string", ErrMalformed)
	}
	if _, err := base64.RawURLEncoding.DecodeString(parts[2]); err != nil {
		return nil, fmt.Errorf("%w: signature is not base64url: %v", ErrMalformed, err)
	}
	return &unverifiedJWT{header: h, iss: iss}, nil
}

// decodeJSONObject decodes exactly one JSON object from b into v.
func decodeJSONObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// checkAlg rejects "none", HMAC algorithms and anything not in allowed.
func checkAlg(alg string, allowed []jose.SignatureAlgorithm) error {
	switch {
	case alg == "" || strings.EqualFold(alg, "none"):
		return fmt.Errorf("%w: alg %q: unsigned tokens are never accepted", ErrAlgorithm, alg)
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return fmt.Errorf("%w: alg %s is a shared-secret MAC; ID tokens must be signed with the issuer's private key (accepted: %s)", ErrAlgorithm, alg, algList(allowed))
	}
	for _, a := range allowed {
		if string(a) == alg {
			return nil
		}
	}
	return fmt.Errorf("%w: alg %s (accepted for this issuer: %s)", ErrAlgorithm, alg, algList(allowed))
}

func algList(algs []jose.SignatureAlgorithm) string {
	s := make([]string, len(algs))
	for i, a := range algs {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// verificationKey is one public key of an issuer's key set.
type verificationKey struct {
	kid string
	alg string // the JWK's "alg", "" when the JWK does not say
	key crypto.PublicKey
}

// keyFitsAlg reports whether key k can verify a signature made with alg.
func keyFitsAlg(k verificationKey, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		return strings.HasPrefix(alg, "ES")
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// verifySignature verifies raw with the candidate keys (those with the
// token's kid, or all keys when the token has none) and returns the signed
// payload and the kid of the key that verified it.
func verifySignature(raw string, h jwtHeader, allowed []jose.SignatureAlgorithm, keys []verificationKey) ([]byte, string, error) {
	jws, err := jose.ParseSignedCompact(raw, allowed)
	if err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) {
			return nil, "", fmt.Errorf("%w: %v", ErrAlgorithm, err)
		}
		return nil, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(jws.Signatures) != 1 {
		return nil, "", fmt.Errorf("%w: want exactly one signature", ErrMalformed)
	}
	tried := 0
	for _, k := range keys {
		if h.Kid != "" && k.kid != h.Kid {
			continue
		}
		if !keyFitsAlg(k, h.Alg) {
			continue
		}
		tried++
		if payload, err := jws.Verify(k.key); err == nil {
			return payload, k.kid, nil
		}
	}
	if tried == 0 {
		if h.Kid != "" {
			return nil, "", fmt.Errorf("%w: the issuer's key %q cannot verify alg %s", ErrAlgorithm, h.Kid, h.Alg)
		}
		return nil, "", fmt.Errorf("%w: the token has no kid and no key of the issuer fits alg %s", ErrUnknownKey, h.Alg)
	}
	return nil, "", fmt.Errorf("%w: the signature does not verify with the issuer's key (forged or tampered token)", ErrSignature)
}

// hasKid reports whether keys holds a key with this kid.
func hasKid(keys []verificationKey, kid string) bool {
	for _, k := range keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// numericDate reads a NumericDate claim (seconds since the epoch, integer
// or fraction). ok is false when the claim is absent.
func numericDate(claims map[string]any, name string) (t time.Time, ok bool, err error) {
	v, present := claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false, fmt.Errorf("%w: claim %s must be a number of seconds, got %T", ErrMalformed, name, v)
	}
	if i, err := n.Int64(); err == nil {
		if i < 0 || i > 1<<40 {
			return time.Time{}, false, fmt.Errorf("%w: claim %s=%d is out of range", ErrMalformed, name, i)
		}
		return time.Unix(i, 0), true, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, false, fmt.Errorf("%w: claim %s=%s is not a valid time", ErrMalformed, name, n)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

// audiences reads aud: a string or an array of strings.
func audiences(claims map[string]any) ([]string, error) {
	switch v := claims["aud"].(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return nil, fmt.Errorf("%w: aud array holds a %T, want strings", ErrMalformed, a)
			}
			out = append(out, s)
		}
		return out, nil
	case nil:
		return nil, fmt.Errorf("%w: no aud (audience) claim", ErrAudience)
	default:
		return nil, fmt.Errorf("%w: aud must be a string or an array of strings, got %T", ErrMalformed, v)
	}
}
