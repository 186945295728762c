package blob

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
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

// ReadBlock fills buf from r, for drivers that read a chunk in blocks. It
// returns io.EOF when r ended (buf may be partly filled) and any other
// error of r as it is. io.ReadFull would not do: it reports a clean end
// after a partial block as io.ErrUnexpectedEOF, the error an HTTP body cut
// short of its Content-Length returns, so a truncated chunk would pass for
// a complete one. Append must fail with that error (wrapped or not) and
// drop the chunk.
func ReadBlock(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
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

// Info describes one stored blob (a Lister's listing).
type Info struct {
	Digest   digest.Digest
	Size     int64
	Modified time.Time
}

// BlobPath is where every driver (and the blob cache) keeps blob d under
// its blobs/ directory or prefix: "<algorithm>/<first two hex>/<hex>",
// slash-separated; ParseBlobPath reads it back. d must be valid.
func BlobPath(d digest.Digest) string {
	enc := d.Encoded()
	return string(d.Algorithm()) + "/" + enc[:2] + "/" + enc
}

// ParseBlobPath returns the digest a driver's blob path names:
// "<algorithm>/<first two hex>/<hex>" (the layout every driver uses under
// its blobs/ directory or prefix), for a known algorithm and lowercase hex
// of its length. Anything else (a stray file, an upload's data) is not a
// blob.
func ParseBlobPath(rel string) (digest.Digest, bool) {
	alg, rest, ok := strings.Cut(rel, "/")
	if !ok {
		return "", false
	}
	two, hex, ok := strings.Cut(rest, "/")
	if !ok || len(hex) < 2 || two != hex[:2] || strings.ToLower(hex) != hex {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	if !d.Algorithm().Available() || d.Validate() != nil {
		return "", false
	}
	return d, true
}

// Redirector is an optional ability of a Store: a blob GET may be answered
// with a redirect to a URL that serves the blob directly (a presigned S3
// URL). An empty URL means the caller serves the blob itself.
type Redirector interface {
	RedirectURL(ctx context.Context, d digest.Digest) (string, error)
}

// WholeReader is an optional ability of a reader that Store.Open returns,
// for a GET of the whole blob: Start begins reading it (a storage that
// fails at once fails there, before any answer is written); WriteTo then
// writes it all, in the way the storage does best (S3: in large pieces,
// over plain HTTP on a connection of its own).
type WholeReader interface {
	Start() error
	io.WriterTo
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
