package oci

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ErrorCode is an OCI distribution error code.
type ErrorCode string

// Error codes of the OCI distribution spec, plus the pagination and
// throttling codes of the distribution registry.
const (
	CodeBlobUnknown         ErrorCode = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   ErrorCode = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   ErrorCode = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       ErrorCode = "DIGEST_INVALID"
	CodeManifestBlobUnknown ErrorCode = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     ErrorCode = "MANIFEST_INVALID"
	CodeManifestUnknown     ErrorCode = "MANIFEST_UNKNOWN"
	CodeNameInvalid         ErrorCode = "NAME_INVALID"
	CodeNameUnknown         ErrorCode = "NAME_UNKNOWN"
	CodeSizeInvalid         ErrorCode = "SIZE_INVALID"
	CodeUnauthorized        ErrorCode = "UNAUTHORIZED"
	CodeDenied              ErrorCode = "DENIED"
	CodeUnsupported         ErrorCode = "UNSUPPORTED"
	CodeTooManyRequests     ErrorCode = "TOOMANYREQUESTS"
	CodePaginationInvalid   ErrorCode = "PAGINATION_NUMBER_INVALID"
	CodeRangeInvalid        ErrorCode = "RANGE_INVALID"
	CodeUnavailable         ErrorCode = "UNAVAILABLE" // distribution's code for a 503 (storage down)
	CodeUnknown             ErrorCode = "UNKNOWN"
)

// ErrorInfo is one error of an OCI error response.
type ErrorInfo struct {
	Code    ErrorCode `json:"code"`
	Message string    `json:"message"`
	Detail  any       `json:"detail,omitempty"`
}

// ErrorResponse is the body of an OCI error response.
type ErrorResponse struct {
	Errors []ErrorInfo `json:"errors"`
}

// WriteError answers r with status and the OCI error body listing errs
// (for a HEAD request, the headers only). It is the one place Hallmark
// writes such a body.
func WriteError(w http.ResponseWriter, r *http.Request, status int, errs ...ErrorInfo) {
	if errs == nil {
		errs = []ErrorInfo{}
	}
	b, err := json.Marshal(ErrorResponse{Errors: errs})
	if err != nil { // a Detail that does not marshal: send the errors without details
		plain := make([]ErrorInfo, len(errs))
		for i, e := range errs {
			plain[i] = ErrorInfo{Code: e.Code, Message: e.Message}
		}
		b, _ = json.Marshal(ErrorResponse{Errors: plain})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r == nil || r.Method != http.MethodHead {
		w.Write(b)
	}
}
