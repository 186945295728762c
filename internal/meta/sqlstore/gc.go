package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Garbage collection's side of the store. internal/gc's package doc has
// the protocol and why it is safe against concurrent pushes; in short:
//
//   - every event that may leave a blob or manifest unreferenced queues
//     (or postpones) its review in the same transaction: a blob upload
//     about to commit (PrepareBlob), a link or mount, a blob unlink, a
//     manifest deleted (its blobs, child manifests and referrers); a
//     manifest that loses its last tag or is pushed without one;
//   - a worker claims due reviews (queued more than a grace period ago;
//     SKIP LOCKED on PostgreSQL), locks what concurrent pushes check, and
//     deletes only what nothing references: a blob's rows are replaced by
//     a tombstone in that transaction, its object is deleted afterwards,
//     then the tombstone goes;
//   - a push of a tombstoned digest waits (ErrBlobDeleting), so it never
//     commits its object while GC deletes the same one.

// Events recorded with review tasks (for operators reading the queues).
const (
	eventUpload         = "upload"          // blob about to be committed; manifest pushed without a tag
	eventLink           = "link"            // blob linked to a repository
	eventMount          = "mount"           // blob mounted from another repository
	eventUnlink         = "unlink"          // blob deleted from a repository
	eventManifestDelete = "manifest_delete" // a manifest referencing the blob or manifest was deleted
	eventUntag          = "untag"           // the manifest lost its last tag
	eventSubjectDelete  = "subject_delete"  // the manifest's subject was deleted
	eventKept           = "kept"            // a Keep check (quarantine) held the manifest
	eventOrphan         = "orphan"          // an object no row names, found by a storage scan
)

// maxAttachmentDepth bounds how far an image delete follows signatures of
// signatures.
const maxAttachmentDepth = 4

// inChunk bounds the values of one IN list or multi-row INSERT.
const inChunk = 200

// errDryRun rolls back a dry run's transaction.
var errDryRun = errors.New("dry run")

// txDry is tx for garbage collection: a dry run's transaction is rolled
// back after fn has evaluated everything.
func (s *Store) txDry(ctx context.Context, dry bool, fn func(conn) error) error {
	err := s.tx(ctx, func(tx conn) error {
		if err := fn(tx); err != nil {
			return err
		}
		if dry {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		return nil
	}
	return err
}

// chunks calls fn with successive slices of at most inChunk values.
func chunks[T any](vs []T, fn func([]T) error) error {
	for len(vs) > 0 {
		n := min(len(vs), inChunk)
		if err := fn(vs[:n]); err != nil {
			return err
		}
		vs = vs[n:]
	}
	return nil
}

func anys[T any](vs []T, extra ...any) []any {
	out := append(make([]any, 0, len(vs)+len(extra)), extra...)
	for _, v := range vs {
		out = append(out, v)
	}
	return out
}

// queueBlobs queues the review of blobs ds at time at, or postpones a
// queued one to at. The digests are deduplicated and sorted: PostgreSQL
// refuses a row twice in one upsert, and a fixed order keeps concurrent
// upserts from deadlocking.
func queueBlobs(ctx context.Context, tx conn, ds []string, at int64, event string) error {
	ds = slices.Compact(slices.Sorted(slices.Values(ds)))
	return chunks(ds, func(part []string) error {
		args := make([]any, 0, 3*len(part))
		for _, d := range part {
			args = append(args, d, at, event)
		}
		_, err := tx.exec(ctx, `INSERT INTO gc_blob_review_queue(digest, queued_at, event) VALUES `+placeholders(len(part), 3)+`
			ON CONFLICT(digest) DO UPDATE SET event = excluded.event,
			queued_at = CASE WHEN excluded.queued_at > gc_blob_review_queue.queued_at THEN excluded.queued_at ELSE gc_blob_review_queue.queued_at END`, args...)
		return err
	})
}

// queueManifests queues (or postpones) the review of manifests ids.
func queueManifests(ctx context.Context, tx conn, ids []int64, at int64, event string) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	return chunks(ids, func(part []int64) error {
		args := make([]any, 0, 3*len(part))
		for _, id := range part {
			args = append(args, id, at, event)
		}
		_, err := tx.exec(ctx, `INSERT INTO gc_manifest_review_queue(manifest_id, queued_at, event) VALUES `+placeholders(len(part), 3)+`
			ON CONFLICT(manifest_id) DO UPDATE SET event = excluded.event,
			queued_at = CASE WHEN excluded.queued_at > gc_manifest_review_queue.queued_at THEN excluded.queued_at ELSE gc_manifest_review_queue.queued_at END`, args...)
		return err
	})
}

// claimBlob queues (postpones) d's review and fails with
// meta.ErrBlobDeleting while d is tombstoned. The upsert comes first: it
// waits for a collecting transaction holding d's review, after which the
// tombstone check (a new statement: a new snapshot) sees what it did.
func claimBlob(ctx context.Context, tx conn, d digest.Digest, at int64, event string) error {
	if err := queueBlobs(ctx, tx, []string{d.String()}, at, event); err != nil {
		return err
	}
	var one int
	err := tx.queryRow(ctx, `SELECT 1 FROM gc_blob_deletions WHERE digest = ?`, d.String()).Scan(&one)
	if err == nil {
		return meta.ErrBlobDeleting
	}
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}

// PrepareBlob implements meta.Blobs.
func (s *Store) PrepareBlob(ctx context.Context, d digest.Digest) error {
	now := time.Now().UnixNano()
	return s.tx(ctx, func(tx conn) error { return claimBlob(ctx, tx, d, now, eventUpload) })
}

// MountBlob implements meta.Blobs.
func (s *Store) MountBlob(ctx context.Context, from, to string, d digest.Digest) (int64, error) {
	now := time.Now().UnixNano()
	var size int64
	err := s.tx(ctx, func(tx conn) error {
		if err := claimBlob(ctx, tx, d, now, eventMount); err != nil {
			if errors.Is(err, meta.ErrBlobDeleting) {
				return meta.ErrBlobNotFound
			}
			return err
		}
		// Lock the source link only (a collecting transaction locks links
		// before it checks references), then read the size.
		var one int
		err := tx.queryRow(ctx, `SELECT 1 FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?`+s.d.ForShare,
			from, d.String()).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return meta.ErrBlobNotFound
		}
		if err != nil {
			return err
		}
		if err := tx.queryRow(ctx, `SELECT size FROM blobs WHERE digest = ?`, d.String()).Scan(&size); err != nil {
			return err
		}
		rid, err := ensureRepo(ctx, tx, to, now)
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO repository_blobs(repository_id, digest, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, rid, d.String(), now)
		return err
	})
	return size, err
}

// victim is a manifest an image delete removes.
type victim struct {
	id      int64
	digest  string
	subject string // the image it is an attachment of; "" for the image
}

// deleteImage deletes manifest d of repository rid with its signatures and
// attestations (see meta.Manifests.DeleteImage) and queues the reviews its
// deletion calls for: the blobs and child manifests the deleted manifests
// referenced, and the referrers left without their subject.
func deleteImage(ctx context.Context, tx conn, rid int64, repo string, d digest.Digest, now int64) ([]meta.DeletedManifest, error) {
	var rootID int64
	err := tx.queryRow(ctx, `SELECT id FROM manifests WHERE repository_id = ? AND digest = ?`+tx.d.ForUpdate, rid, d.String()).Scan(&rootID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, meta.ErrManifestNotFound
	}
	if err != nil {
		return nil, err
	}
	victims := []victim{{id: rootID, digest: d.String()}}
	seen := map[int64]bool{rootID: true}
	frontier := []digest.Digest{d}
	for depth := 0; depth < maxAttachmentDepth && len(frontier) > 0; depth++ {
		var next []digest.Digest
		for _, x := range frontier {
			found, err := attachments(ctx, tx, rid, x)
			if err != nil {
				return nil, err
			}
			for _, v := range found {
				if !seen[v.id] {
					seen[v.id] = true
					victims = append(victims, v)
					next = append(next, digest.Digest(v.digest))
				}
			}
		}
		frontier = next
	}
	ids := make([]int64, len(victims))
	digests := make([]string, len(victims))
	for i, v := range victims {
		ids[i], digests[i] = v.id, v.digest
	}
	var blobs []string
	var review []int64
	err = chunks(ids, func(part []int64) error {
		b, err := strings1(ctx, tx, `SELECT DISTINCT child_digest FROM manifest_references WHERE kind = 'blob' AND manifest_id IN (`+placeholders(len(part), 1)+`)`, anys(part)...)
		blobs = append(blobs, b...)
		if err != nil {
			return err
		}
		c, err := ints1(ctx, tx, `SELECT DISTINCT m.id FROM manifest_references mr JOIN manifests m ON m.repository_id = ? AND m.digest = mr.child_digest
			WHERE mr.kind = 'manifest' AND mr.manifest_id IN (`+placeholders(len(part), 1)+`)`, anys(part, rid)...)
		review = append(review, c...)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = chunks(digests, func(part []string) error {
		r, err := ints1(ctx, tx, `SELECT id FROM manifests WHERE repository_id = ? AND subject_digest IN (`+placeholders(len(part), 1)+`)`, anys(part, rid)...)
		review = append(review, r...)
		if err != nil {
			return err
		}
		// The index keeps the signatures they carried, or that signed
		// them, as history: marked deleted, no longer listed or found.
		args := anys(part, now, rid)
		args = append(args, anys(part)...)
		_, err = tx.exec(ctx, `UPDATE signatures SET deleted_at = ? WHERE repository_id = ? AND deleted_at IS NULL
			AND (manifest_digest IN (`+placeholders(len(part), 1)+`) OR subject_digest IN (`+placeholders(len(part), 1)+`))`, args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := chunks(ids, func(part []int64) error {
		_, err := tx.exec(ctx, `DELETE FROM manifests WHERE id IN (`+placeholders(len(part), 1)+`)`, anys(part)...)
		return err
	}); err != nil {
		return nil, err
	}
	review = slices.DeleteFunc(review, func(id int64) bool { return seen[id] })
	if err := queueManifests(ctx, tx, review, now, eventManifestDelete); err != nil {
		return nil, err
	}
	if err := queueBlobs(ctx, tx, blobs, now, eventManifestDelete); err != nil {
		return nil, err
	}
	out := make([]meta.DeletedManifest, len(victims))
	for i, v := range victims {
		out[i] = meta.DeletedManifest{Repository: repo, Digest: digest.Digest(v.digest), Subject: digest.Digest(v.subject)}
	}
	return out, nil
}

// attachments returns the manifests of repository rid that go when image
// x does: those cosign's ".sig" and ".att" tags naming x point at, and the
// referrers of x that are signatures (meta.Manifest.SignatureSubject).
func attachments(ctx context.Context, tx conn, rid int64, x digest.Digest) ([]victim, error) {
	var out []victim
	rows, err := tx.query(ctx, `SELECT m.id, m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
		WHERE t.repository_id = ? AND t.name IN (?, ?)`, rid, oci.AttachmentTagName(x, oci.SignatureSuffix), oci.AttachmentTagName(x, oci.AttestationSuffix))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		v := victim{subject: x.String()}
		if err := rows.Scan(&v.id, &v.digest); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.query(ctx, `SELECT id, digest, artifact_type FROM manifests WHERE repository_id = ? AND subject_digest = ?`, rid, x.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		v := victim{subject: x.String()}
		m := meta.Manifest{Subject: x}
		if err := rows.Scan(&v.id, &v.digest, &m.ArtifactType); err != nil {
			return nil, err
		}
		if _, ok := m.SignatureSubject(nil); ok {
			out = append(out, v)
		}
	}
	return out, rows.Err()
}

// strings1 runs q and returns its one text column.
func strings1(ctx context.Context, tx conn, q string, args ...any) ([]string, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ints1 runs q and returns its one integer column.
func ints1(ctx context.Context, tx conn, q string, args ...any) ([]int64, error) {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// DeleteImage implements meta.Manifests.
func (s *Store) DeleteImage(ctx context.Context, repo string, d digest.Digest) ([]meta.DeletedManifest, error) {
	now := time.Now().UnixNano()
	var out []meta.DeletedManifest
	err := s.tx(ctx, func(tx conn) error {
		rid, err := repoID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryNotFound) {
			return &meta.RepositoryNotFoundError{Repository: repo, Miss: meta.ErrManifestNotFound}
		}
		if err != nil {
			return err
		}
		out, err = deleteImage(ctx, tx, rid, repo, d, now)
		return err
	})
	return out, err
}

// CollectBlobs runs one blob collection batch: it claims up to o.Limit due
// blob reviews (after o.After), and of those blobs no manifest of any
// repository references it deletes the rows (links and blob) and
// tombstones the digest, in one transaction. The caller deletes the
// deleted blobs' objects, then calls FinishBlobDeletions.
func (s *Store) CollectBlobs(ctx context.Context, o meta.CollectOptions) (meta.BlobBatch, error) {
	started := time.Now().UnixNano()
	var b meta.BlobBatch
	err := s.txDry(ctx, o.DryRun, func(tx conn) error {
		b = meta.BlobBatch{Next: o.After}
		// The index on (queued_at, digest) serves the order and the
		// cursor (a row-value comparison): a batch reads only its rows.
		rows, err := tx.query(ctx, `SELECT digest, queued_at FROM gc_blob_review_queue
			WHERE queued_at <= ? AND (queued_at, digest) > (?, ?)
			ORDER BY queued_at, digest LIMIT ?`+s.d.SkipLocked, o.Due(), o.After.Queued, o.After.Digest, max(o.Limit, 1))
		if err != nil {
			return err
		}
		var claimed []string
		for rows.Next() {
			if err := rows.Scan(&b.Next.Digest, &b.Next.Queued); err != nil {
				rows.Close()
				return err
			}
			claimed = append(claimed, b.Next.Digest)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(claimed) == 0 {
			return err
		}
		slices.Sort(claimed)
		in := placeholders(len(claimed), 1)
		if s.d.ForUpdate != "" {
			// Lock the links a manifest push checks (FOR SHARE): a push
			// that checked first has committed its references when the
			// check below runs; one that checks later finds no link.
			if _, err := strings1(ctx, tx, `SELECT digest FROM repository_blobs WHERE digest IN (`+in+`) ORDER BY digest, repository_id`+s.d.ForUpdate, anys(claimed)...); err != nil {
				return err
			}
		}
		referenced, err := strings1(ctx, tx, `SELECT DISTINCT child_digest FROM manifest_references WHERE child_digest IN (`+in+`)`, anys(claimed)...)
		if err != nil {
			return err
		}
		sizes := map[string]int64{}
		rows, err = tx.query(ctx, `SELECT digest, size FROM blobs WHERE digest IN (`+in+`)`, anys(claimed)...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var d string
			var n int64
			if err := rows.Scan(&d, &n); err != nil {
				rows.Close()
				return err
			}
			sizes[d] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var garbage []string
		for _, d := range claimed {
			if !slices.Contains(referenced, d) {
				garbage = append(garbage, d)
			}
		}
		if len(garbage) > 0 {
			gin := placeholders(len(garbage), 1)
			if _, err := tx.exec(ctx, `DELETE FROM repository_blobs WHERE digest IN (`+gin+`)`, anys(garbage)...); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `DELETE FROM blobs WHERE digest IN (`+gin+`)`, anys(garbage)...); err != nil {
				return err
			}
			args := make([]any, 0, 3*len(garbage))
			for _, d := range garbage {
				size, ok := sizes[d]
				if !ok {
					size = -1
				}
				args = append(args, d, size, started)
				b.Deleted = append(b.Deleted, meta.BlobDeletion{Digest: digest.Digest(d), Size: size})
			}
			if _, err := tx.exec(ctx, `INSERT INTO gc_blob_deletions(digest, size, started_at) VALUES `+placeholders(len(garbage), 3)+` ON CONFLICT(digest) DO NOTHING`, args...); err != nil {
				return err
			}
		}
		if _, err := tx.exec(ctx, `DELETE FROM gc_blob_review_queue WHERE digest IN (`+in+`)`, anys(claimed)...); err != nil {
			return err
		}
		b.Reviewed = len(claimed)
		return nil
	})
	return b, err
}

// FinishBlobDeletions removes the tombstones of ds, whose objects are
// deleted: pushes of those digests go ahead again.
func (s *Store) FinishBlobDeletions(ctx context.Context, ds []digest.Digest) error {
	return chunks(ds, func(part []digest.Digest) error {
		_, err := s.w.exec(ctx, `DELETE FROM gc_blob_deletions WHERE digest IN (`+placeholders(len(part), 1)+`)`, anys(part)...)
		return s.d.wrap(err)
	})
}

// ClaimBlobDeletions takes over up to limit blob deletions started before
// staleBefore (their collector died, or gave up on the storage), renewing
// their start to now so no one else takes them meanwhile. With dryRun it
// only lists them.
func (s *Store) ClaimBlobDeletions(ctx context.Context, now, staleBefore time.Time, limit int, dryRun bool) ([]meta.BlobDeletion, error) {
	q := `UPDATE gc_blob_deletions SET started_at = ? WHERE digest IN (
		SELECT digest FROM gc_blob_deletions WHERE started_at <= ? ORDER BY started_at LIMIT ?` + s.d.SkipLocked + `) RETURNING digest, size`
	args := []any{now.UnixNano(), staleBefore.UnixNano(), max(limit, 1)}
	db := s.w
	if dryRun {
		q = `SELECT digest, size FROM gc_blob_deletions WHERE started_at <= ? ORDER BY started_at LIMIT ?`
		args, db = args[1:], s.r
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.BlobDeletion
	for rows.Next() {
		var d string
		var n int64
		if err := rows.Scan(&d, &n); err != nil {
			return nil, err
		}
		out = append(out, meta.BlobDeletion{Digest: digest.Digest(d), Size: n})
	}
	return out, s.d.wrap(rows.Err())
}

// candidate is a manifest under review.
type candidate struct {
	id, rid         int64
	repo            string
	digest, subject string
}

// CollectManifests runs one untagged-manifest collection batch: it claims
// up to o.Limit due manifest reviews and deletes, as DeleteImage does, the
// manifests that have no tag, are no child of an index in their
// repository and are no referrer of a manifest there, unless o.Keep keeps
// them.
func (s *Store) CollectManifests(ctx context.Context, o meta.CollectOptions) (meta.ManifestBatch, error) {
	now := time.Now().UnixNano()
	var b meta.ManifestBatch
	err := s.txDry(ctx, o.DryRun, func(tx conn) error {
		b = meta.ManifestBatch{Next: o.After}
		rows, err := tx.query(ctx, `SELECT manifest_id, queued_at FROM gc_manifest_review_queue
			WHERE queued_at <= ? AND (queued_at, manifest_id) > (?, ?)
			ORDER BY queued_at, manifest_id LIMIT ?`+s.d.SkipLocked, o.Due(), o.After.Queued, o.After.ID, max(o.Limit, 1))
		if err != nil {
			return err
		}
		var claimed []int64
		for rows.Next() {
			if err := rows.Scan(&b.Next.ID, &b.Next.Queued); err != nil {
				rows.Close()
				return err
			}
			claimed = append(claimed, b.Next.ID)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(claimed) == 0 {
			return err
		}
		slices.Sort(claimed)
		in := placeholders(len(claimed), 1)
		// Lock the manifests: a push tagging one, or an index naming one
		// as its child (FOR SHARE), waits for this transaction or is seen
		// by the checks below.
		rows, err = tx.query(ctx, `SELECT id, repository_id, digest, subject_digest FROM manifests WHERE id IN (`+in+`) ORDER BY id`+s.d.ForUpdate, anys(claimed)...)
		if err != nil {
			return err
		}
		var cands []candidate
		for rows.Next() {
			var c candidate
			if err := rows.Scan(&c.id, &c.rid, &c.digest, &c.subject); err != nil {
				rows.Close()
				return err
			}
			cands = append(cands, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		tagged, err := ints1(ctx, tx, `SELECT DISTINCT manifest_id FROM tags WHERE manifest_id IN (`+in+`)`, anys(claimed)...)
		if err != nil {
			return err
		}
		var victims []candidate
		var kept []int64
		for _, c := range cands {
			if slices.Contains(tagged, c.id) {
				continue
			}
			alive, err := manifestInUse(ctx, tx, c)
			if err != nil {
				return err
			}
			if alive {
				continue
			}
			if err := tx.queryRow(ctx, `SELECT name FROM repositories WHERE id = ?`, c.rid).Scan(&c.repo); err != nil {
				return err
			}
			if o.Keep != nil {
				keep, err := o.Keep(ctx, c.repo, digest.Digest(c.digest))
				if err != nil {
					return err
				}
				if keep {
					kept = append(kept, c.id)
					continue
				}
			}
			victims = append(victims, c)
		}
		// Every claimed review is done (the kept ones come back after
		// another grace period); deleting a manifest below may queue a
		// claimed one again (a referrer of it), which then stays queued.
		if _, err := tx.exec(ctx, `DELETE FROM gc_manifest_review_queue WHERE manifest_id IN (`+in+`)`, anys(claimed)...); err != nil {
			return err
		}
		if err := queueManifests(ctx, tx, kept, now, eventKept); err != nil {
			return err
		}
		for _, c := range victims {
			ms, err := deleteImage(ctx, tx, c.rid, c.repo, digest.Digest(c.digest), now)
			if errors.Is(err, meta.ErrManifestNotFound) {
				continue // deleted with an image earlier in this batch
			}
			if err != nil {
				return err
			}
			b.Deleted = append(b.Deleted, ms...)
		}
		b.Reviewed = len(claimed)
		return nil
	})
	return b, err
}

// manifestInUse reports whether an untagged manifest is still part of
// something: a child of an index in its repository, or a referrer whose
// subject is there.
func manifestInUse(ctx context.Context, tx conn, c candidate) (bool, error) {
	var one int
	err := tx.queryRow(ctx, `SELECT 1 FROM manifest_references mr JOIN manifests p ON p.id = mr.manifest_id
		WHERE mr.child_digest = ? AND mr.kind = 'manifest' AND p.repository_id = ? LIMIT 1`, c.digest, c.rid).Scan(&one)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if c.subject == "" {
		return false, nil
	}
	err = tx.queryRow(ctx, `SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?`, c.rid, c.subject).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// GCPending counts the queued reviews and unfinished blob deletions.
func (s *Store) GCPending(ctx context.Context) (meta.GCPending, error) {
	var p meta.GCPending
	err := s.r.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM gc_blob_review_queue), (SELECT COUNT(*) FROM gc_manifest_review_queue),
		(SELECT COUNT(*) FROM gc_blob_deletions)`).Scan(&p.Blobs, &p.Manifests, &p.Deletions)
	return p, err
}

// QueueUnknownBlobs queues a review for each stored object (digest ->
// modification time) that no blob row, review or deletion names: objects
// left behind by a crash before garbage collection existed, or whose
// removal a crash undid. Each is due a grace period after its
// modification time. It returns how many it queued (with dryRun: found,
// and queues none).
func (s *Store) QueueUnknownBlobs(ctx context.Context, objects map[digest.Digest]time.Time, dryRun bool) (int, error) {
	ds := make([]string, 0, len(objects))
	for d := range objects {
		ds = append(ds, d.String())
	}
	slices.Sort(ds)
	queued := 0
	err := chunks(ds, func(part []string) error {
		n := 0
		err := s.txDry(ctx, dryRun, func(tx conn) error {
			in := placeholders(len(part), 1)
			args := anys(part)
			args = append(append(args, anys(part)...), anys(part)...)
			known, err := strings1(ctx, tx, `SELECT digest FROM blobs WHERE digest IN (`+in+`)
				UNION SELECT digest FROM gc_blob_review_queue WHERE digest IN (`+in+`)
				UNION SELECT digest FROM gc_blob_deletions WHERE digest IN (`+in+`)`, args...)
			if err != nil {
				return err
			}
			n = 0
			for _, d := range part {
				if slices.Contains(known, d) {
					continue
				}
				if _, err := tx.exec(ctx, `INSERT INTO gc_blob_review_queue(digest, queued_at, event) VALUES (?, ?, ?) ON CONFLICT(digest) DO NOTHING`,
					d, objects[digest.Digest(d)].UnixNano(), eventOrphan); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		queued += n
		return err
	})
	return queued, err
}

// ListBlobs calls fn for every blob row (digest and size), in digest
// order, reading a page at a time.
func (s *Store) ListBlobs(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	after := ""
	for {
		rows, err := s.r.query(ctx, `SELECT digest, size FROM blobs WHERE digest > ? ORDER BY digest LIMIT 1000`, after)
		if err != nil {
			return err
		}
		type row struct {
			d    string
			size int64
		}
		var page []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.d, &r.size); err != nil {
				rows.Close()
				return err
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range page {
			if err := fn(digest.Digest(r.d), r.size); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			return nil
		}
		after = page[len(page)-1].d
	}
}

// ForgetBlobs deletes the rows (links, blob, review) of blobs ds whose
// objects are gone, in one transaction, or fails if a manifest references
// one of them (a backup's snapshot drops the blobs garbage collection
// removed after it was taken).
func (s *Store) ForgetBlobs(ctx context.Context, ds []digest.Digest) error {
	return s.tx(ctx, func(tx conn) error {
		return chunks(ds, func(part []digest.Digest) error {
			in := placeholders(len(part), 1)
			ref, err := strings1(ctx, tx, `SELECT DISTINCT child_digest FROM manifest_references WHERE child_digest IN (`+in+`)`, anys(part)...)
			if err != nil {
				return err
			}
			if len(ref) > 0 {
				return fmt.Errorf("blob %s is referenced by a manifest but missing from the blob store (%d such blobs)", ref[0], len(ref))
			}
			for _, q := range []string{`DELETE FROM repository_blobs WHERE digest IN (`, `DELETE FROM blobs WHERE digest IN (`, `DELETE FROM gc_blob_review_queue WHERE digest IN (`} {
				if _, err := tx.exec(ctx, q+in+`)`, anys(part)...); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
