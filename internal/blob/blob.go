package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors returned by drivers; test with errors.Is.
var (
	ErrNotFound       = errors.New("blob not found")
	ErrUploadNotFound = errors.New("upload session not found")
	ErrRangeMismatch  = errors.New("chunk does not start where the upload ends")
)

// DigestMismatchError is returned by Commit when the uploaded bytes do not
// hash to the digest the client claimed. The upload is discarded.
type DigestMismatchError struct {
	Want, Got digest.Digest
	Size      int64
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("uploaded content (%d bytes) has digest %s, not %s", e.Size, e.Got, e.Want)
}

// Store is a content-addressed blob store.
type Store interface {
	// Stat returns the size of blob d or ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns the blob's content. Drivers on a local filesystem return
	// an *os.File so HTTP handlers can use sendfile.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, int64, error)
	// Uploads gives access to resumable upload sessions.
	Uploads() Uploads
}

// MaxUploadIDLength is the longest upload session id a driver may hand out.
const MaxUploadIDLength = 64

// ValidUploadID reports whether id has the shape of an upload session id:
// 1 to MaxUploadIDLength ASCII letters, digits, '-' or '_'. Every driver's
// ids have it, so a request naming anything else can be answered without
// asking the driver (or keeping anything about it).
func ValidUploadID(id string) bool {
	if id == "" || len(id) > MaxUploadIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Uploads creates and resumes upload sessions. Session state lives in the
// store, not in process memory, so a session survives a restart and can be
// continued by any server sharing the store.
type Uploads interface {
	// New starts an upload for repository repo that hashes with alg. Its
	// id satisfies ValidUploadID.
	New(ctx context.Context, repo string, alg digest.Algorithm) (Upload, error)
	// Resume reopens the session id, or returns ErrUploadNotFound.
	Resume(ctx context.Context, id string) (Upload, error)
}

// Upload is one open upload session. It is not safe for concurrent use; the
// caller must Close it (which persists its state) unless Commit or Cancel
// succeeded.
type Upload interface {
	ID() string
	Repository() string
	Size() int64
	Started() time.Time
	// Append writes r at offset, which must equal Size() (else
	// ErrRangeMismatch). It returns the number of bytes written.
	Append(ctx context.Context, offset int64, r io.Reader) (int64, error)
	// Commit checks the content against want and makes it visible as a blob.
	// On *DigestMismatchError the session is discarded.
	Commit(ctx context.Context, want digest.Digest) (size int64, err error)
	// Cancel discards the session.
	Cancel(ctx context.Context) error
	// Close persists state and releases resources.
	Close() error
}
