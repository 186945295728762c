package ca

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// gRPC status codes used in Fulcio's grpc-gateway error bodies.
const (
	codeInvalidArgument = 3
	codeUnauthenticated = 16
	codeInternal        = 13
	codeUnavailable     = 14
)

// Sentinel errors. Every error returned by Issue wraps one of them, so
// callers can classify failures with errors.Is.
var (
	// ErrMissingToken: no OIDC identity token in the request.
	ErrMissingToken = errors.New("no OIDC identity token in the request")
	// ErrInvalidToken: the token did not verify (signature, issuer,
	// audience, expiry, ...) or lacks claims the certificate needs.
	ErrInvalidToken = errors.New("invalid OIDC identity token")
	// ErrInvalidRequest: the request body is malformed.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidPublicKey: the public key could not be parsed.
	ErrInvalidPublicKey = errors.New("invalid public key")
	// ErrInsecureKey: the key type or size is not accepted.
	ErrInsecureKey = errors.New("insecure or unsupported public key")
	// ErrInvalidCSR: the certificate signing request could not be parsed.
	ErrInvalidCSR = errors.New("invalid certificate signing request")
	// ErrInvalidSignature: the proof of possession (or the CSR's
	// self-signature) does not verify.
	ErrInvalidSignature = errors.New("proof of possession does not verify")
	// ErrInternal: the CA failed; the request may be retried.
	ErrInternal = errors.New("certificate authority error")
)

// Messages Fulcio returns for each class of error (pkg/server/error.go);
// Hallmark appends the specific reason so the client can act on it. Codes
// and statuses are Fulcio's (InvalidArgument -> 400 for a bad token, key,
// CSR or signature; Internal -> 500) except that a request with no token
// at all is Unauthenticated -> 401, and an issuer whose keys cannot be
// fetched is Unavailable -> 503 so clients retry.
var fulcioMessages = []struct {
	err  error
	code int
	http int
	msg  string
}{
	{ErrMissingToken, codeUnauthenticated, http.StatusUnauthorized, "There was an error processing the identity token"},
	{ErrInvalidToken, codeInvalidArgument, http.StatusBadRequest, "There was an error processing the identity token"},
	{ErrInvalidRequest, codeInvalidArgument, http.StatusBadRequest, "The request could not be parsed"},
	{ErrInvalidPublicKey, codeInvalidArgument, http.StatusBadRequest, "The public key supplied in the request could not be parsed"},
	{ErrInsecureKey, codeInvalidArgument, http.StatusBadRequest, "The public key supplied in the request is insecure"},
	{ErrInvalidCSR, codeInvalidArgument, http.StatusBadRequest, "The certificate signing request could not be parsed"},
	{ErrInvalidSignature, codeInvalidArgument, http.StatusBadRequest, "The signature supplied in the request could not be verified"},
	{errUnavailable, codeUnavailable, http.StatusServiceUnavailable, "The identity token could not be checked right now; retry later"},
	{errNotRecorded, codeUnavailable, http.StatusServiceUnavailable, "The certificate could not be recorded right now; retry later"},
}

// errorBody is grpc-gateway's JSON error shape, which Fulcio clients parse.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

// writeError maps err onto Fulcio's status code, HTTP status and message.
// Unclassified errors become 500 with a generic message (the cause is
// logged by the caller, never sent: it may reveal internals).
func writeError(w http.ResponseWriter, err error) {
	body := errorBody{Code: codeInternal, Message: "error communicating with CA backend", Details: []any{}}
	status := http.StatusInternalServerError
	for _, m := range fulcioMessages {
		if errors.Is(err, m.err) {
			body.Code, status = m.code, m.http
			body.Message = fmt.Sprintf("%s: %v", m.msg, err)
			break
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// errUnavailable marks a transient failure (e.g. the issuer's JWKS could
// not be fetched, or the request context ended) that a client may retry.
var errUnavailable = errors.New("temporarily unavailable")

// errNotRecorded: the certificate was issued but the CA's record of it
// could not be stored (the database is unavailable); it is not handed
// out, and the client may retry.
var errNotRecorded = errors.New("the certificate authority could not record the certificate")
