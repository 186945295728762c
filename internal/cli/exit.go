package cli

// exitError carries a process exit code with an error (cosign's codes:
// 10 no signatures, 11 tag not found, 12 no matching signature).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// Exit codes shared with cosign.
const (
	exitNoSignatures = 10
	exitTagNotFound  = 11
	exitNoMatching   = 12
)
