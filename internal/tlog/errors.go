package tlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. The HTTP API maps them to status codes: ErrInvalidEntry
// and ErrUnsupported to 400, ErrNotFound to 404, ErrTooLarge to 413.
var (
	// ErrInvalidEntry: the proposed entry is malformed or its signature does
	// not verify.
	ErrInvalidEntry = errors.New("invalid log entry")
	// ErrUnsupported: a kind, API version, key type or algorithm the log does
	// not accept.
	ErrUnsupported = errors.New("unsupported by this log")
	// ErrNotFound: no entry with that UUID or index, or a tree size the log
	// has not reached.
	ErrNotFound = errors.New("not found in the transparency log")
	// ErrTooLarge: a request over the configured size limits.
	ErrTooLarge = errors.New("too large")
	// ErrBadRequest: a malformed query (UUID, index, sizes).
	ErrBadRequest = errors.New("bad request")
	// ErrBusy: too many submissions are waiting; retry shortly (503).
	ErrBusy = errors.New("the transparency log is busy; retry shortly")
)

// DuplicateError is returned by Add when an identical canonical entry is
// already in the log (Rekor answers 409 Conflict with its location).
type DuplicateError struct {
	EntryID string // 80-hex entry ID of the existing entry
	Index   uint64
}

func (e *DuplicateError) Error() string {
	return fmt.Sprintf("an equivalent entry already exists in the transparency log with UUID %s", e.EntryID)
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEntry}, args...)...)
}

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}
