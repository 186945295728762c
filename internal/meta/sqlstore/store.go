package sqlstore

import (
	"context"
	// go-digest validates sha512 digests only when the hash is linked in;
	// GetManifest relies on that to tell a digest from a tag.
	_ "crypto/sha512"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Store is a meta.Store, auth.Store and tlog storage over database/sql,
// for any Dialect.
type Store struct {
	d   *Dialect
	w   conn // writes: SQLite's single writer connection, PostgreSQL's pool
	r   conn // reads: a pool (the same *sql.DB as w on PostgreSQL)
	wdb *sql.DB
	dbs []*sql.DB
	// onClose runs first in Close (a driver's background work).
	onClose []func()

	getByTag, getByDigest, blobSize stmt
}

var _ meta.Store = (*Store)(nil)

// Open applies the pending migrations to w and returns the store over w
// (writes) and r (reads; may be w) of dialect d, with the hot read
// statements prepared. The store owns w and r: Close closes them, and so
// does a failing Open.
func Open(ctx context.Context, d *Dialect, w, r *sql.DB) (*Store, error) {
	s, err := open(ctx, d, w, r)
	if err != nil {
		w.Close()
		if r != w {
			r.Close()
		}
		return nil, err
	}
	return s, nil
}

func open(ctx context.Context, d *Dialect, w, r *sql.DB) (*Store, error) {
	if _, err := Migrate(ctx, w, d); err != nil {
		return nil, err
	}
	s := &Store{d: d, w: conn{w, d}, r: conn{r, d}, wdb: w, dbs: []*sql.DB{w}}
	if r != w {
		s.dbs = append(s.dbs, r)
	}
	var err error
	prep := func(dst *stmt, q string) {
		if err == nil {
			*dst, err = s.r.prepare(ctx, q)
		}
	}
	// The lookups start from the repository and left-join what is looked
	// up: no row means no repository, a row of NULLs no such item. The
	// pull policy comes along (pullPolicy).
	const manifestColumns = `COALESCE(m.digest, ''), COALESCE(m.media_type, ''), COALESCE(m.artifact_type, ''),
		m.payload, COALESCE(m.subject_digest, ''), COALESCE(m.created_at, 0)`
	prep(&s.getByTag, `SELECT `+manifestColumns+`, `+pullPolicyColumns+` FROM (SELECT id, name FROM repositories WHERE name = ?) r
		LEFT JOIN tags t ON t.repository_id = r.id AND t.name = ? LEFT JOIN manifests m ON m.id = t.manifest_id`)
	prep(&s.getByDigest, `SELECT `+manifestColumns+`, `+pullPolicyColumns+` FROM (SELECT id, name FROM repositories WHERE name = ?) r
		LEFT JOIN manifests m ON m.repository_id = r.id AND m.digest = ?`)
	prep(&s.blobSize, `SELECT b.size FROM (SELECT id FROM repositories WHERE name = ?) r
		LEFT JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = ? LEFT JOIN blobs b ON b.digest = rb.digest`)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare statements: %w", d.Name, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	for _, fn := range s.onClose {
		fn()
	}
	s.onClose = nil
	var errs []error
	for _, db := range s.dbs {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

// OnClose makes Close call fn before it closes the databases: a driver
// stops its background work on them there.
func (s *Store) OnClose(fn func()) { s.onClose = append(s.onClose, fn) }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.r.queryRow(ctx, `SELECT 1`).Scan(&one)
}

// maxTxAttempts bounds how often a transaction that PostgreSQL aborted for
// a serialization failure or deadlock is run again.
const maxTxAttempts = 5

// tx runs fn in a write transaction (SQLite: BEGIN IMMEDIATE on the single
// writer; PostgreSQL: READ COMMITTED), committing if it returns nil. A
// transaction the database aborted as retryable (serialization failure,
// deadlock) runs again from the start, so fn must only set what it
// returns.
func (s *Store) tx(ctx context.Context, fn func(conn) error) error {
	for attempt := 1; ; attempt++ {
		err := s.tx1(ctx, fn)
		if err == nil || attempt == maxTxAttempts || s.d.Retryable == nil || !s.d.Retryable(err) || ctx.Err() != nil {
			return s.d.wrap(err)
		}
	}
}

func (s *Store) tx1(ctx context.Context, fn func(conn) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(conn{tx, s.d}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ensureRepo returns the id of repository name, creating it if needed with
// its project: the project whose path is the longest of name and its
// '/'-prefixes (auth's rule), kept up to date by CreateProject and
// DeleteProject.
func ensureRepo(ctx context.Context, tx conn, name string, now int64) (int64, error) {
	var id int64
	cands := projectCandidates(name)
	if len(cands) == 0 {
		cands = []any{""}
	}
	args := append([]any{name, now}, cands...)
	err := tx.queryRow(ctx, `INSERT INTO repositories(name, created_at, project_id) VALUES (?, ?,
		(SELECT id FROM projects WHERE path IN (`+placeholders(len(cands), 1)+`) ORDER BY length(path) DESC LIMIT 1))
		ON CONFLICT(name) DO UPDATE SET name = excluded.name RETURNING id`, args...).Scan(&id)
	return id, err
}

func repoID(ctx context.Context, q conn, name string) (int64, error) {
	var id int64
	err := q.queryRow(ctx, `SELECT id FROM repositories WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, meta.ErrRepositoryNotFound
	}
	return id, err
}

// deleteIn runs q (a DELETE whose first argument is the repository id) in
// repo's transaction, then after (if set) in the same transaction: miss
// when it deletes nothing, a *meta.RepositoryNotFoundError wrapping miss
// when repo does not exist.
func (s *Store) deleteIn(ctx context.Context, repo string, miss error, after func(conn) error, q string, args ...any) error {
	return s.tx(ctx, func(tx conn) error {
		id, err := repoID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryNotFound) {
			return &meta.RepositoryNotFoundError{Repository: repo, Miss: miss}
		}
		if err != nil {
			return err
		}
		res, err := tx.exec(ctx, q, append([]any{id}, args...)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return miss
		}
		if after != nil {
			return after(tx)
		}
		return nil
	})
}

// LinkBlob implements meta.Blobs. It postpones the blob's review by
// garbage collection and fails with meta.ErrBlobDeleting while GC deletes
// the blob's object (after PrepareBlob it cannot have started since).
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	now := time.Now().UnixNano()
	return s.tx(ctx, func(tx conn) error {
		if err := claimBlob(ctx, tx, d, now, eventLink); err != nil {
			return err
		}
		id, err := ensureRepo(ctx, tx, repo, now)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO blobs(digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT(digest) DO NOTHING`, d.String(), size, now); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO repository_blobs(repository_id, digest, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, id, d.String(), now)
		return err
	})
}

// BlobSize implements meta.Blobs.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size sql.NullInt64
	err := s.blobSize.queryRow(ctx, repo, d.String()).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &meta.RepositoryNotFoundError{Repository: repo, Miss: meta.ErrBlobNotFound}
	}
	if err == nil && !size.Valid {
		return 0, meta.ErrBlobNotFound
	}
	return size.Int64, err
}

// UnlinkBlob implements meta.Blobs; the blob's review by garbage
// collection is queued.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	now := time.Now().UnixNano()
	return s.deleteIn(ctx, repo, meta.ErrBlobNotFound, func(tx conn) error {
		return queueBlobs(ctx, tx, []string{d.String()}, now, eventUnlink)
	}, `DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?`, d.String())
}

// PutManifest implements meta.Manifests.
func (s *Store) PutManifest(ctx context.Context, m *meta.Manifest, tags []string, conds ...meta.TagCondition) error {
	now := time.Now()
	queued := now.UnixNano() // garbage collection's clock: always the real time
	if !m.Created.IsZero() {
		now = m.Created
	}
	ann := ""
	if len(m.Annotations) > 0 {
		b, err := json.Marshal(m.Annotations)
		if err != nil {
			return err
		}
		ann = string(b)
	}
	return s.tx(ctx, func(tx conn) error {
		rid, err := ensureRepo(ctx, tx, m.Repository, now.UnixNano())
		if err != nil {
			return err
		}
		if err := checkTagConditions(ctx, tx, rid, conds); err != nil {
			return err
		}
		for _, ref := range m.References {
			q := `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = ? AND rb.digest = ?`
			if ref.Kind == meta.RefManifest {
				q = `SELECT size FROM manifests WHERE repository_id = ? AND digest = ?`
			}
			var size int64
			if err := tx.queryRow(ctx, q+s.d.ForShare, rid, ref.Digest.String()).Scan(&size); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					if ref.Optional {
						continue // sparse: recorded below all the same
					}
					return &meta.MissingReferenceError{Digest: ref.Digest, Kind: ref.Kind}
				}
				return err
			}
			if size != ref.Size {
				return &meta.SizeMismatchError{Digest: ref.Digest, Kind: ref.Kind, Declared: ref.Size, Have: size}
			}
		}
		var mid int64
		err = tx.queryRow(ctx, `INSERT INTO manifests(repository_id, digest, media_type, artifact_type, size, payload, subject_digest, annotations, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(repository_id, digest) DO UPDATE SET digest = excluded.digest RETURNING id`,
			rid, m.Digest.String(), m.MediaType, m.ArtifactType, len(m.Payload), m.Payload, m.Subject.String(), ann, now.UnixNano()).Scan(&mid)
		if err != nil {
			return err
		}
		for _, ref := range m.References {
			if _, err := tx.exec(ctx, `INSERT INTO manifest_references(manifest_id, child_digest, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				mid, ref.Digest.String(), string(ref.Kind)); err != nil {
				return err
			}
		}
		if len(tags) == 0 {
			// Pushed by digest only: reviewed by garbage collection a
			// grace period from now (kept if tagged, a child of an
			// index or a referrer of a manifest by then).
			if err := queueManifests(ctx, tx, []int64{mid}, queued, eventUpload); err != nil {
				return err
			}
			return enqueueSignatureManifest(ctx, tx, m, tags, now.UnixNano())
		}
		// The manifests the tags point at now may be left untagged.
		moved, err := ints1(ctx, tx, `SELECT DISTINCT manifest_id FROM tags WHERE repository_id = ? AND manifest_id <> ? AND name IN (`+placeholders(len(tags), 1)+`)`,
			anys(tags, rid, mid)...)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if _, err := tx.exec(ctx, `INSERT INTO tags(repository_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT(repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at`,
				rid, t, mid, now.UnixNano()); err != nil {
				return err
			}
		}
		if err := queueUntagged(ctx, tx, moved, queued); err != nil {
			return err
		}
		return enqueueSignatureManifest(ctx, tx, m, tags, now.UnixNano())
	})
}

// checkTagConditions fails with meta.ErrPreconditionFailed unless every
// condition holds for where its tag points now. The transaction holds the
// write lock on the tag's row (SQLite: the database's write lock), so
// nothing moves the tag before it commits.
func checkTagConditions(ctx context.Context, tx conn, rid int64, conds []meta.TagCondition) error {
	for _, c := range conds {
		var cur string
		err := tx.queryRow(ctx, `SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
			WHERE t.repository_id = ? AND t.name = ?`+tx.d.ForUpdate, rid, c.Tag).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if !c.Holds(digest.Digest(cur)) {
			if cur == "" {
				return fmt.Errorf("%w: tag %s does not exist", meta.ErrPreconditionFailed, c.Tag)
			}
			return fmt.Errorf("%w: tag %s points at %s", meta.ErrPreconditionFailed, c.Tag, cur)
		}
	}
	return nil
}

// GetManifest implements meta.Manifests.
func (s *Store) GetManifest(ctx context.Context, repo, reference string) (*meta.Manifest, error) {
	stmt := s.getByTag
	if _, err := digest.Parse(reference); err == nil {
		stmt = s.getByDigest
	}
	// A cosign attachment looked up by its tag is covered by its image's
	// quarantine: the lookup is told which image that is.
	attachedTo, _, _ := oci.AttachmentDigest(reference)
	m := &meta.Manifest{Repository: repo}
	var dg, subject string
	var created int64
	var pp pullPolicy
	err := stmt.queryRow(ctx, attachedTo.String(), attachedTo.String(), repo, reference).Scan(
		&dg, &m.MediaType, &m.ArtifactType, &m.Payload, &subject, &created, &pp.project, &pp.qID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, &meta.RepositoryNotFoundError{Repository: repo, Miss: meta.ErrManifestNotFound}
	}
	if err != nil {
		return nil, err
	}
	if dg == "" {
		return nil, meta.ErrManifestNotFound
	}
	m.Digest, m.Subject, m.Created = digest.Digest(dg), digest.Digest(subject), time.Unix(0, created)
	if err := pp.apply(ctx, s, m); err != nil {
		return nil, err
	}
	return m, nil
}

// DeleteManifest implements meta.Manifests.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	_, err := s.DeleteImage(ctx, repo, d)
	return err
}

// DeleteTag implements meta.Manifests. A manifest left without tags is
// queued for review by garbage collection (deleted if untagged manifests
// are collected).
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	now := time.Now().UnixNano()
	return s.tx(ctx, func(tx conn) error {
		rid, err := repoID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryNotFound) {
			return &meta.RepositoryNotFoundError{Repository: repo, Miss: meta.ErrTagNotFound}
		}
		if err != nil {
			return err
		}
		mids, err := ints1(ctx, tx, `DELETE FROM tags WHERE repository_id = ? AND name = ? RETURNING manifest_id`, rid, tag)
		if err != nil {
			return err
		}
		if len(mids) == 0 {
			return meta.ErrTagNotFound
		}
		return queueUntagged(ctx, tx, mids, now)
	})
}

// queueUntagged queues the review of those of manifests ids that have no
// tag left.
func queueUntagged(ctx context.Context, tx conn, ids []int64, now int64) error {
	var untagged []int64
	for _, id := range ids {
		var one int
		err := tx.queryRow(ctx, `SELECT 1 FROM tags WHERE manifest_id = ? LIMIT 1`, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			untagged = append(untagged, id)
		} else if err != nil {
			return err
		}
	}
	return queueManifests(ctx, tx, untagged, now, eventUntag)
}

// Referrers implements meta.Manifests.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]meta.Descriptor, error) {
	return s.referrers(ctx, repo, d, artifactType, 0)
}

// referrers lists the referrers of d in repo, at most limit (0: all).
func (s *Store) referrers(ctx context.Context, repo string, d digest.Digest, artifactType string, limit int) ([]meta.Descriptor, error) {
	q := `SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations FROM repositories r
		JOIN manifests m ON m.repository_id = r.id WHERE r.name = ? AND m.subject_digest = ?`
	args := []any{repo, d.String()}
	if artifactType != "" {
		q += ` AND m.artifact_type = ?`
		args = append(args, artifactType)
	}
	q += ` ORDER BY m.created_at, m.id`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.Descriptor
	for rows.Next() {
		var desc meta.Descriptor
		var dg, ann string
		if err := rows.Scan(&desc.MediaType, &dg, &desc.Size, &desc.ArtifactType, &ann); err != nil {
			return nil, err
		}
		desc.Digest = digest.Digest(dg)
		if ann != "" {
			if err := json.Unmarshal([]byte(ann), &desc.Annotations); err != nil {
				return nil, fmt.Errorf("manifest %s has corrupt annotations: %w", dg, err)
			}
		}
		out = append(out, desc)
	}
	return out, rows.Err()
}

// ListTags implements meta.Listing.
func (s *Store) ListTags(ctx context.Context, repo, last string, n int) ([]string, bool, error) {
	id, err := repoID(ctx, s.r, repo)
	if err != nil {
		return nil, false, err
	}
	return s.list(ctx, `SELECT name FROM tags WHERE repository_id = ? AND name > ? ORDER BY name LIMIT ?`, n, id, last, n+1)
}

// ListRepositories implements meta.Listing.
func (s *Store) ListRepositories(ctx context.Context, last string, n int) ([]string, bool, error) {
	return s.list(ctx, `SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?`, n, last, n+1)
}

func (s *Store) list(ctx context.Context, q string, n int, args ...any) ([]string, bool, error) {
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, false, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(out) > n {
		return out[:n], true, nil
	}
	return out, false, nil
}

// IntegrityCheck runs SQLite's integrity check (after a restore); other
// databases check themselves.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if s.d.Name != "sqlite" {
		return nil
	}
	var res string
	if err := s.r.queryRow(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
		return err
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	return nil
}
