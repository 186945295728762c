package tlog

import (
	"errors"
	"fmt"
)

// Sentinel errors. The HTTP API maps them, and the entry errors of
// pkg/rekor, to status codes: rekor.ErrInvalidEntry and
// rekor.ErrUnsupported to 400, ErrNotFound to 404, rekor.ErrTooLarge to 413.
var (
	// ErrNotFound: no entry with that UUID or index, or a tree size the log
	// has not reached.
	ErrNotFound = errors.New("not found in the transparency log")
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
