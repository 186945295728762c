package rekor

import (
	"errors"
	"fmt"
)

// Errors of entry validation (the log answers them with 400, 400 and 413)
// and of log evidence. Match them with errors.Is; the messages around them
// say what was wrong and what to send instead.
var (
	// ErrInvalidEntry: a proposed entry is malformed or its signature does
	// not verify.
	ErrInvalidEntry = errors.New("invalid log entry")
	// ErrUnsupported: a kind, API version, key type or algorithm the log
	// does not accept.
	ErrUnsupported = errors.New("unsupported by this log")
	// ErrTooLarge: a proposed entry over the bounds on what one entry may
	// cost the log.
	ErrTooLarge = errors.New("too large")
	// ErrSET: a signed entry timestamp does not verify with the log key.
	ErrSET = errors.New("signed entry timestamp does not verify")
	// ErrInclusionProof: an inclusion proof or its checkpoint is wrong.
	ErrInclusionProof = errors.New("inclusion proof does not verify")
	// ErrEntryMismatch: a logged entry is not the signature it should log
	// (other content, signature or key).
	ErrEntryMismatch = errors.New("logged entry does not match the signature")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidEntry}, args...)...)
}

func unsupportedf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}
