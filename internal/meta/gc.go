package meta

import (
	"context"
	"errors"
	"time"

	"github.com/opencontainers/go-digest"
)

// ErrBlobDeleting is what PrepareBlob, LinkBlob and MountBlob return while
// garbage collection deletes the blob's object: the content must be pushed
// again once the deletion is over (it takes one storage request).
var ErrBlobDeleting = errors.New("the blob is being deleted by garbage collection; push it again in a moment")

// BlobDeletion is a blob garbage collection removed from the database and
// whose object it deletes next: until FinishBlobDeletions, the digest is
// tombstoned, and pushes of it wait.
type BlobDeletion struct {
	Digest digest.Digest
	Size   int64 // -1: no blob row named it (an object whose link never committed)
}

// DeletedManifest is one manifest an image delete removed: the image
// itself, or a signature or attestation that went with it.
type DeletedManifest struct {
	Repository string
	Digest     digest.Digest
	// Subject is the image this one was a signature or attestation of
	// (deleted with it); empty for the image itself.
	Subject digest.Digest
}

// CollectOptions configures one garbage collection batch.
type CollectOptions struct {
	// Now is the time of the batch; Grace how long a review waits after
	// the event that queued it (an upload, a link, an untag, a delete).
	Now   time.Time
	Grace time.Duration
	// Limit bounds the tasks of the batch.
	Limit int
	// DryRun evaluates the batch and rolls it back: nothing changes.
	DryRun bool
	// Keep, if set, is asked before a manifest is deleted; true keeps it
	// (quarantined evidence) and postpones its review by another grace.
	Keep func(ctx context.Context, repo string, d digest.Digest) (bool, error)
	// After claims only tasks after this one (a dry run, which removes no
	// task, pages through the queue with the batches' Next).
	After QueueCursor
}

// QueueCursor is a position in a review queue, ordered by queue time, then
// key (a blob's digest, a manifest's id).
type QueueCursor struct {
	Queued int64
	Digest string
	ID     int64
}

// BlobBatch is the outcome of one blob collection batch.
type BlobBatch struct {
	Deleted  []BlobDeletion
	Reviewed int         // tasks claimed (0: none was due)
	Next     QueueCursor // the last task claimed
}

// ManifestBatch is the outcome of one manifest collection batch.
type ManifestBatch struct {
	Deleted  []DeletedManifest
	Reviewed int
	Next     QueueCursor
}

// Due is the queue time at or before which a review is due.
func (o CollectOptions) Due() int64 { return o.Now.Add(-o.Grace).UnixNano() }

// GCPending counts the garbage collection tasks waiting: blob and manifest
// reviews (due or not) and blob deletions not finished.
type GCPending struct {
	Blobs, Manifests, Deletions int64
}

// RetentionTag is one tag as retention policies see it.
type RetentionTag struct {
	Repository string
	Tag        string
	Digest     digest.Digest
	Updated    time.Time // when the tag was last pointed at its manifest
}

// ProjectRetention is a project's stored retention policy (JSON, parsed by
// internal/gc).
type ProjectRetention struct {
	Project string
	Policy  string
	Updated time.Time
	LastRun time.Time
}
