package registry

import (
	"errors"
	"io"
	"net/http"
	"os"

	"github.com/hallmark-dev/hallmark/internal/blob"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Error is an API error: an OCI code, a message, an optional detail and the
// HTTP status it is sent with.
type Error struct {
	Status  int
	Code    oci.ErrorCode
	Message string
	Detail  any
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func apiErr(status int, code oci.ErrorCode, msg string, detail any) *Error {
	return &Error{Status: status, Code: code, Message: msg, Detail: detail}
}

// errorTable is the one place where domain errors become HTTP statuses and
// OCI codes. The first matching row wins: a *meta.RepositoryNotFoundError
// is also the miss it stands for, so its row comes first.
var errorTable = []struct {
	match   func(error) bool
	status  int
	code    oci.ErrorCode
	message string          // empty: use err.Error()
	detail  func(error) any // nil: no detail
}{
	{is(meta.ErrRepositoryNotFound), http.StatusNotFound, oci.CodeNameUnknown, "repository name not known to registry", repositoryDetail},
	{is(meta.ErrManifestNotFound), http.StatusNotFound, oci.CodeManifestUnknown, "manifest unknown", nil},
	{is(meta.ErrTagNotFound), http.StatusNotFound, oci.CodeManifestUnknown, "manifest unknown", nil},
	{is(meta.ErrBlobNotFound), http.StatusNotFound, oci.CodeBlobUnknown, "blob unknown to registry", nil},
	{is(blob.ErrNotFound), http.StatusNotFound, oci.CodeBlobUnknown, "blob unknown to registry", nil},
	{as[*meta.MissingReferenceError], http.StatusBadRequest, oci.CodeManifestBlobUnknown, "", missingDetail},
	{as[*meta.SizeMismatchError], http.StatusBadRequest, oci.CodeManifestInvalid, "", nil},
	{is(meta.ErrPreconditionFailed), http.StatusPreconditionFailed, oci.CodeDenied, "", nil},
	{is(blob.ErrUploadNotFound), http.StatusNotFound, oci.CodeBlobUploadUnknown, "blob upload unknown to registry", nil},
	{is(blob.ErrRangeMismatch), http.StatusRequestedRangeNotSatisfiable, oci.CodeBlobUploadInvalid, "", nil},
	{as[*blob.DigestMismatchError], http.StatusBadRequest, oci.CodeDigestInvalid, "", nil},
	{is(oci.ErrInvalidManifest), http.StatusBadRequest, oci.CodeManifestInvalid, "", nil},
	{is(blob.ErrUnavailable), http.StatusServiceUnavailable, oci.CodeUnavailable, "blob storage is unavailable; retry later", nil},
	{is(meta.ErrUnavailable), http.StatusServiceUnavailable, oci.CodeUnavailable, meta.ErrUnavailable.Error(), nil},
	{is(meta.ErrBlobDeleting), http.StatusServiceUnavailable, oci.CodeUnavailable, meta.ErrBlobDeleting.Error(), nil},
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func as[T error](err error) bool {
	var t T
	return errors.As(err, &t)
}

func repositoryDetail(err error) any {
	var rn *meta.RepositoryNotFoundError
	if errors.As(err, &rn) {
		return map[string]string{"name": rn.Repository}
	}
	return nil
}

func missingDetail(err error) any {
	var mr *meta.MissingReferenceError
	errors.As(err, &mr)
	return map[string]string{"digest": mr.Digest.String()}
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
			if row.detail != nil {
				detail = row.detail(err)
			}
			return apiErr(row.status, row.code, msg, detail), false
		}
	}
	return apiErr(http.StatusInternalServerError, oci.CodeUnknown, "internal server error; see the server log", nil), true
}

// bodyReadError turns a failure to read the request body into the
// client's error (code says what the body was): too large, cut short of its
// Content-Length, or too slow (the server's progress deadline). Anything
// else is returned as it is. Nothing of such a body is kept.
func bodyReadError(err error, code oci.ErrorCode) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return apiErr(http.StatusRequestEntityTooLarge, oci.CodeSizeInvalid, err.Error(), nil)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apiErr(http.StatusBadRequest, code, "the request body ended before its Content-Length and was discarded; send it again", nil)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return apiErr(http.StatusRequestTimeout, code, "the request body arrived too slowly and was discarded; send it again at a steady pace", nil)
	}
	return err
}

func writeError(w http.ResponseWriter, r *http.Request, e *Error) {
	oci.WriteError(w, r, e.Status, oci.ErrorInfo{Code: e.Code, Message: e.Message, Detail: e.Detail})
}
