package blob

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Errors returned by drivers; test with errors.Is.
var (
	ErrNotFound       = errors.New("blob not found")
	ErrUploadNotFound = errors.New("upload session not found")
	ErrRangeMismatch  = errors.New("chunk does not start where the upload ends")
	// ErrUnavailable wraps failures to reach the storage backend (network
	// errors, 5xx answers, throttling): the request may succeed if retried
	// later, and nothing was changed.
	ErrUnavailable = errors.New("blob storage is unavailable")
)

// ErrTruncated is returned by Append when the chunk's reader failed with
// io.ErrUnexpectedEOF (a request body that ended before its declared
// length): the chunk is dropped, not stored as a shorter one.
var ErrTruncated = errors.New("chunk ended before its declared length")

// Chunk wraps the reader of a chunk for a driver that reads it with
// io.ReadFull, which cannot tell a source's io.ErrUnexpectedEOF from its
// own short read: the source's becomes ErrTruncated.
func Chunk(r io.Reader) io.Reader { return chunkReader{r} }

type chunkReader struct{ r io.Reader }

func (c chunkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.ErrUnexpectedEOF {
		err = ErrTruncated
	}
	return n, err
}

// DigestMismatchError is returned by Commit when the uploaded bytes do not
// hash to the digest the client claimed. The upload is discarded.
type DigestMismatchError struct {
	Want, Got digest.Digest
	Size      int64
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("uploaded content (%d bytes) has digest %s, not %s", e.Size, e.Got, e.Want)
}

// Verify checks an upload of size bytes against want at Commit: h is the
// session's running hash, of algorithm alg; reread writes the content
// again, for a digest of another algorithm. When the content is not want
// it calls discard (the session's Cancel) and returns a
// *DigestMismatchError (joined with discard's error).
func Verify(want digest.Digest, alg digest.Algorithm, h hash.Hash, size int64, reread func(io.Writer) error, discard func() error) error {
	if err := want.Validate(); err != nil {
		return err
	}
	var got digest.Digest
	if want.Algorithm() == alg {
		got = digest.NewDigest(alg, h)
	} else {
		h2 := want.Algorithm().Hash()
		if err := reread(h2); err != nil {
			return err
		}
		got = digest.NewDigest(want.Algorithm(), h2)
	}
	if got != want {
		return errors.Join(&DigestMismatchError{Want: want, Got: got, Size: size}, discard())
	}
	return nil
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

// Redirector is an optional ability of a Store: a blob GET may be answered
// with a redirect to a URL that serves the blob directly (a presigned S3
// URL). An empty URL means the caller serves the blob itself.
type Redirector interface {
	RedirectURL(ctx context.Context, d digest.Digest) (string, error)
}

// Uploads creates and resumes upload sessions. Session state lives in the
// store, not in process memory, so a session survives a restart and can be
// continued by any server sharing the store.
type Uploads interface {
	// New starts an upload for repository repo that hashes with alg.
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
