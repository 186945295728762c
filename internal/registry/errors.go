package registry

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Code is an OCI distribution error code.
type Code string

// Error codes from the OCI distribution spec (plus the Docker pagination and
// size codes distribution uses).
const (
	CodeBlobUnknown         Code = "BLOB_UNKNOWN"
	CodeBlobUploadInvalid   Code = "BLOB_UPLOAD_INVALID"
	CodeBlobUploadUnknown   Code = "BLOB_UPLOAD_UNKNOWN"
	CodeDigestInvalid       Code = "DIGEST_INVALID"
	CodeManifestBlobUnknown Code = "MANIFEST_BLOB_UNKNOWN"
	CodeManifestInvalid     Code = "MANIFEST_INVALID"
	CodeManifestUnknown     Code = "MANIFEST_UNKNOWN"
	CodeNameInvalid         Code = "NAME_INVALID"
	CodeNameUnknown         Code = "NAME_UNKNOWN"
	CodeSizeInvalid         Code = "SIZE_INVALID"
	CodeUnauthorized        Code = "UNAUTHORIZED"
	CodeDenied              Code = "DENIED"
	CodeUnsupported         Code = "UNSUPPORTED"
	CodeTooManyRequests     Code = "TOOMANYREQUESTS"
	CodePaginationInvalid   Code = "PAGINATION_NUMBER_INVALID"
	CodeRangeInvalid        Code = "RANGE_INVALID"
	CodeUnknown             Code = "UNKNOWN"
)

// Error is an API error: an OCI code, a message, an optional detail and the
// HTTP status it is sent with.
type Error struct {
	Status  int
	Code    Code
	Message string
	Detail  any
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func apiErr(status int, code Code, msg string, detail any) *Error {
	return &Error{Status: status, Code: code, Message: msg, Detail: detail}
}

// errorTable is the one place where domain errors become HTTP statuses and
// OCI codes. The first matching row wins.
var errorTable = []struct {
	match   func(error) bool
	status  int
	code    Code
	message string // empty: use err.Error()
}{
	{is(meta.ErrManifestNotFound), http.StatusNotFound, CodeManifestUnknown, "manifest unknown"},
	{is(meta.ErrTagNotFound), http.StatusNotFound, CodeManifestUnknown, "manifest unknown"},
	{is(meta.ErrBlobNotFound), http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry"},
	{is(blob.ErrNotFound), http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry"},
	{is(meta.ErrRepositoryNotFound), http.StatusNotFound, CodeNameUnknown, "repository name not known to registry"},
	{as[*meta.MissingReferenceError], http.StatusBadRequest, CodeManifestBlobUnknown, ""},
	{as[*meta.SizeMismatchError], http.StatusBadRequest, CodeManifestInvalid, ""},
	{is(blob.ErrUploadNotFound), http.StatusNotFound, CodeBlobUploadUnknown, "blob upload unknown to registry"},
	{is(blob.ErrRangeMismatch), http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid, ""},
	{as[*blob.DigestMismatchError], http.StatusBadRequest, CodeDigestInvalid, ""},
	{is(oci.ErrInvalidManifest), http.StatusBadRequest, CodeManifestInvalid, ""},
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func as[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

// bodyReadError turns a failure to read the request body into the
// client's error (code says what the body was): too large, cut short of its
// Content-Length, or too slow (the server's progress deadline). Anything
// else is returned as it is. Nothing of such a body is kept.
func bodyReadError(err error, code Code) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return apiErr(http.StatusRequestEntityTooLarge, CodeSizeInvalid, err.Error(), nil)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiErr(http.StatusBadRequest, code, "the request body ended before its Content-Length and was discarded; send it again", nil)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return apiErr(http.StatusRequestTimeout, code, "the request body arrived too slowly and was discarded; send it again at a steady pace", nil)
	}
	return err
}

// toAPIError maps err through errorTable; unknown errors become 500s whose
// text is not shown to the client (it is logged instead).
func toAPIError(err error) (e *Error, internal bool) {
	if errors.As(err, &e) {
		return e, false
	}
	for _, row := range errorTable {
		if row.match(err) {
			msg := row.message
			if msg == "" {
				msg = err.Error()
			}
			var detail any
			var mr *meta.MissingReferenceError
			if errors.As(err, &mr) {
				detail = map[string]string{"digest": mr.Digest.String()}
			}
			return apiErr(row.status, row.code, msg, detail), false
		}
	}
	return apiErr(http.StatusInternalServerError, CodeUnknown, "internal server error; see the server log", nil), true
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func writeError(w http.ResponseWriter, e *Error) {
	b, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.Status)
	w.Write(b)
}
