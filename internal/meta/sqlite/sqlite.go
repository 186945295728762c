package sqlite

import (
	"context"
	// go-digest validates sha512 digests only when the hash is linked in;
	// GetManifest relies on that to tell a digest from a tag.
	_ "crypto/sha512"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Config configures the SQLite store.
type Config struct {
	// Path of the database file; its directory is created if missing.
	Path string
	// ReadConns is the size of the read connection pool (default 8).
	ReadConns int
}

// Store is a meta.Store backed by SQLite.
type Store struct {
	w *sql.DB // single writer connection
	r *sql.DB // reader pool

	getByTag, getByDigest, blobSize *sql.Stmt
}

var _ meta.Store = (*Store)(nil)

// Open opens (creating and migrating if needed) the database at cfg.Path.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: database path is empty")
	}
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = 8
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create database directory: %w", err)
	}
	if err := privateFiles(cfg.Path); err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	dsn := "file:" + cfg.Path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	rq := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "query_only(1)"} {
		rq.Add("_pragma", p)
	}
	r, err := sql.Open("sqlite", "file:"+cfg.Path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open readers %s: %w", cfg.Path, err)
	}
	r.SetMaxOpenConns(cfg.ReadConns)
	r.SetMaxIdleConns(cfg.ReadConns)
	s.r = r
	prep := func(dst **sql.Stmt, q string) {
		if err == nil {
			*dst, err = r.PrepareContext(ctx, q)
		}
	}
	// The lookups start from the repository and left-join what is looked
	// up: no row means no repository, a row of NULLs no such item.
	const manifestColumns = `COALESCE(m.digest, ''), COALESCE(m.media_type, ''), COALESCE(m.artifact_type, ''),
		m.payload, COALESCE(m.subject_digest, ''), COALESCE(m.created_at, 0)`
	prep(&s.getByTag, `SELECT `+manifestColumns+` FROM repositories r
		LEFT JOIN tags t ON t.repository_id = r.id AND t.name = ?2 LEFT JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ?1`)
	prep(&s.getByDigest, `SELECT `+manifestColumns+` FROM repositories r
		LEFT JOIN manifests m ON m.repository_id = r.id AND m.digest = ?2
		WHERE r.name = ?1`)
	prep(&s.blobSize, `SELECT b.size FROM repositories r
		LEFT JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest = ?2 LEFT JOIN blobs b ON b.digest = rb.digest
		WHERE r.name = ?1`)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: prepare statements: %w", err)
	}
	return s, nil
}

// privateFiles makes the database's files readable by their owner only:
// they hold password and token hashes and the audit log. SQLite creates
// the -wal and -shm files with the mode of the database file, so creating
// that one 0600 covers all three; files an earlier version left readable
// by others are tightened.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(p, perm&0o600); err != nil {
				return fmt.Errorf("sqlite: %s is readable by other users (mode %04o) and cannot be made private: %w", p, perm, err)
			}
		}
	}
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	var have int
	if err := s.w.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlite: database schema version %d is newer than this binary knows (%d); upgrade hallmark", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, v, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: apply migration %d: %w", v, err)
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ensureRepo(ctx context.Context, tx *sql.Tx, name string, now int64) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO repositories(name, created_at) VALUES (?, ?)
		ON CONFLICT(name) DO UPDATE SET name = excluded.name RETURNING id`, name, now).Scan(&id)
	return id, err
}

func repoID(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, `SELECT id FROM repositories WHERE name = ?`, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, meta.ErrRepositoryNotFound
	}
	return id, err
}

// deleteIn runs q (a DELETE whose first argument is the repository id) in
// repo's transaction: miss when it deletes nothing, a
// *meta.RepositoryNotFoundError wrapping miss when repo does not exist.
func (s *Store) deleteIn(ctx context.Context, repo string, miss error, q string, args ...any) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		id, err := repoID(ctx, tx, repo)
		if errors.Is(err, meta.ErrRepositoryNotFound) {
			return &meta.RepositoryNotFoundError{Repository: repo, Miss: miss}
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, q, append([]any{id}, args...)...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return miss
		}
		return nil
	})
}

// LinkBlob implements meta.Blobs.
func (s *Store) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) error {
	now := time.Now().UnixNano()
	return s.tx(ctx, func(tx *sql.Tx) error {
		id, err := ensureRepo(ctx, tx, repo, now)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO blobs(digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT(digest) DO NOTHING`, d.String(), size, now); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO repository_blobs(repository_id, digest, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, id, d.String(), now)
		return err
	})
}

// BlobSize implements meta.Blobs.
func (s *Store) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	var size sql.NullInt64
	err := s.blobSize.QueryRowContext(ctx, repo, d.String()).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, &meta.RepositoryNotFoundError{Repository: repo, Miss: meta.ErrBlobNotFound}
	}
	if err == nil && !size.Valid {
		return 0, meta.ErrBlobNotFound
	}
	return size.Int64, err
}

// UnlinkBlob implements meta.Blobs.
func (s *Store) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	return s.deleteIn(ctx, repo, meta.ErrBlobNotFound, `DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?`, d.String())
}

// PutManifest implements meta.Manifests.
func (s *Store) PutManifest(ctx context.Context, m *meta.Manifest, tags []string, conds ...meta.TagCondition) error {
	now := time.Now()
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
	return s.tx(ctx, func(tx *sql.Tx) error {
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
			if err := tx.QueryRowContext(ctx, q, rid, ref.Digest.String()).Scan(&size); err != nil {
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
		err = tx.QueryRowContext(ctx, `INSERT INTO manifests(repository_id, digest, media_type, artifact_type, size, payload, subject_digest, annotations, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(repository_id, digest) DO UPDATE SET digest = excluded.digest RETURNING id`,
			rid, m.Digest.String(), m.MediaType, m.ArtifactType, len(m.Payload), m.Payload, m.Subject.String(), ann, now.UnixNano()).Scan(&mid)
		if err != nil {
			return err
		}
		for _, ref := range m.References {
			if _, err := tx.ExecContext(ctx, `INSERT INTO manifest_references(manifest_id, child_digest, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
				mid, ref.Digest.String(), string(ref.Kind)); err != nil {
				return err
			}
		}
		for _, t := range tags {
			if _, err := tx.ExecContext(ctx, `INSERT INTO tags(repository_id, name, manifest_id, updated_at) VALUES (?, ?, ?, ?)
				ON CONFLICT(repository_id, name) DO UPDATE SET manifest_id = excluded.manifest_id, updated_at = excluded.updated_at`,
				rid, t, mid, now.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkTagConditions fails with meta.ErrPreconditionFailed unless every
// condition holds for where its tag points now. The transaction holds the
// database's write lock, so nothing moves the tag before it commits.
func checkTagConditions(ctx context.Context, tx *sql.Tx, rid int64, conds []meta.TagCondition) error {
	for _, c := range conds {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT m.digest FROM tags t JOIN manifests m ON m.id = t.manifest_id
			WHERE t.repository_id = ? AND t.name = ?`, rid, c.Tag).Scan(&cur)
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
	m := &meta.Manifest{Repository: repo}
	var dg, subject string
	var created int64
	err := stmt.QueryRowContext(ctx, repo, reference).Scan(&dg, &m.MediaType, &m.ArtifactType, &m.Payload, &subject, &created)
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
	return m, nil
}

// DeleteManifest implements meta.Manifests.
func (s *Store) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	return s.deleteIn(ctx, repo, meta.ErrManifestNotFound, `DELETE FROM manifests WHERE repository_id = ? AND digest = ?`, d.String())
}

// DeleteTag implements meta.Manifests.
func (s *Store) DeleteTag(ctx context.Context, repo, tag string) error {
	return s.deleteIn(ctx, repo, meta.ErrTagNotFound, `DELETE FROM tags WHERE repository_id = ? AND name = ?`, tag)
}

// Referrers implements meta.Manifests.
func (s *Store) Referrers(ctx context.Context, repo string, d digest.Digest, artifactType string) ([]meta.Descriptor, error) {
	q := `SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations FROM repositories r
		JOIN manifests m ON m.repository_id = r.id WHERE r.name = ? AND m.subject_digest = ?`
	args := []any{repo, d.String()}
	if artifactType != "" {
		q += ` AND m.artifact_type = ?`
		args = append(args, artifactType)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY m.created_at, m.id`, args...)
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
				return nil, fmt.Errorf("sqlite: manifest %s has corrupt annotations: %w", dg, err)
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
	rows, err := s.r.QueryContext(ctx, q, args...)
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
