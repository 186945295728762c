package oidc

import "errors"

// Sentinel errors returned (wrapped, with details) by Verifier.Verify. Use
// errors.Is to classify; the wrapping message says what was wrong.
var (
	// ErrMalformed: the token is not a compact JWS with a JSON header and
	// payload (wrong number of parts, bad base64url, bad JSON, wrong claim
	// types).
	ErrMalformed = errors.New("malformed ID token")
	// ErrTooLarge: the token is longer than the verifier accepts.
	ErrTooLarge = errors.New("ID token too large")
	// ErrUnknownIssuer: the token's iss is not a trusted issuer.
	ErrUnknownIssuer = errors.New("untrusted token issuer")
	// ErrAlgorithm: the signing algorithm is not accepted (alg none, any
	// HMAC algorithm, or an algorithm the issuer does not advertise).
	ErrAlgorithm = errors.New("ID token signing algorithm not accepted")
	// ErrUnknownKey: no key of the issuer's key set has the token's kid
	// (checked again after one key set refresh).
	ErrUnknownKey = errors.New("ID token signed with an unknown key")
	// ErrSignature: the signature does not verify with the issuer's key.
	ErrSignature = errors.New("ID token signature invalid")
	// ErrExpired: exp is in the past (beyond the leeway).
	ErrExpired = errors.New("ID token expired")
	// ErrNotYetValid: nbf or iat is in the future (beyond the leeway).
	ErrNotYetValid = errors.New("ID token not yet valid")
	// ErrAudience: aud does not contain the expected audience.
	ErrAudience = errors.New("ID token audience mismatch")
	// ErrClaims: a required claim is missing or invalid for the issuer type
	// (no sub, unverified email, missing subject claim...).
	ErrClaims = errors.New("ID token claims invalid")
	// ErrIssuerUnavailable: the issuer's discovery document or key set
	// could not be fetched or is invalid; retrying later may succeed.
	ErrIssuerUnavailable = errors.New("token issuer unavailable")
)

// Errors returned by Issuer.Mint.
var (
	// ErrInvalidClaims: the requested job claims are incomplete or invalid.
	ErrInvalidClaims = errors.New("invalid job claims")
)
