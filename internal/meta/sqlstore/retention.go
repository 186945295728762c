package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// SetRetention stores project's retention policy (JSON; internal/gc
// validates it), replacing any earlier one.
func (s *Store) SetRetention(ctx context.Context, project, policy string) error {
	now := time.Now().UnixNano()
	res, err := s.w.exec(ctx, `INSERT INTO project_retention(project_id, policy, updated_at)
		SELECT id, ?, ? FROM projects WHERE path = ?
		ON CONFLICT(project_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`, policy, now, project)
	return affected(res, err, "project "+project)
}

// Retention returns project's retention policy (Policy "" when it has
// none), or auth.ErrNotFound (projects are auth's) when there is no such
// project.
func (s *Store) Retention(ctx context.Context, project string) (meta.ProjectRetention, error) {
	pr := meta.ProjectRetention{Project: project}
	var policy sql.NullString
	var updated, last sql.NullInt64
	err := s.r.queryRow(ctx, `SELECT pr.policy, pr.updated_at, pr.last_run_at FROM projects p
		LEFT JOIN project_retention pr ON pr.project_id = p.id WHERE p.path = ?`, project).Scan(&policy, &updated, &last)
	if err != nil {
		return pr, notFound(err, "project "+project)
	}
	pr.Policy = policy.String
	if updated.Valid {
		pr.Updated = fromNanos(updated.Int64)
	}
	if last.Valid && last.Int64 > 0 {
		pr.LastRun = fromNanos(last.Int64)
	}
	return pr, nil
}

// DeleteRetention removes project's retention policy (none is no error).
func (s *Store) DeleteRetention(ctx context.Context, project string) error {
	if _, err := s.Retention(ctx, project); err != nil {
		return err
	}
	_, err := s.w.exec(ctx, `DELETE FROM project_retention WHERE project_id = (SELECT id FROM projects WHERE path = ?)`, project)
	return err
}

// DueRetention returns the policies not run since before (every project's
// when before is zero). With claim it marks them run at now, in one
// statement (SKIP LOCKED on PostgreSQL): replicas sharing the database
// each get different projects, and each project once per period.
func (s *Store) DueRetention(ctx context.Context, now, before time.Time, claim bool) ([]meta.ProjectRetention, error) {
	cutoff := before.UnixNano()
	if before.IsZero() {
		cutoff = now.UnixNano()
	}
	q := `SELECT pr.project_id, pr.policy, pr.updated_at, pr.last_run_at FROM project_retention pr WHERE pr.last_run_at <= ?`
	args := []any{cutoff}
	db := s.r
	if claim {
		q = `UPDATE project_retention SET last_run_at = ? WHERE project_id IN (
			SELECT project_id FROM project_retention WHERE last_run_at <= ? ORDER BY project_id` + s.d.SkipLocked + `)
			RETURNING project_id, policy, updated_at, last_run_at`
		args, db = []any{now.UnixNano(), cutoff}, s.w
	}
	rows, err := db.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	type due struct {
		id int64
		pr meta.ProjectRetention
	}
	var ds []due
	for rows.Next() {
		var d due
		var updated, last int64
		if err := rows.Scan(&d.id, &d.pr.Policy, &updated, &last); err != nil {
			rows.Close()
			return nil, err
		}
		d.pr.Updated, d.pr.LastRun = fromNanos(updated), fromNanos(last)
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]meta.ProjectRetention, 0, len(ds))
	for _, d := range ds {
		err := s.r.queryRow(ctx, `SELECT path FROM projects WHERE id = ?`, d.id).Scan(&d.pr.Project)
		if errors.Is(err, sql.ErrNoRows) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, d.pr)
	}
	return out, nil
}

// ProjectTags returns the tags of the repositories project governs: its
// path and the paths under it, except those a longer project covers (the
// longest project covering a repository governs it, as for access).
func (s *Store) ProjectTags(ctx context.Context, project string) ([]meta.RetentionTag, error) {
	var longer []string
	rows, err := s.r.query(ctx, `SELECT path FROM projects WHERE path > ? AND path < ?`, project+"/", project+"0")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return nil, err
		}
		longer = append(longer, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// "/" + 1 is "0": the names under project/ sort between the two.
	rows, err = s.r.query(ctx, `SELECT r.name, t.name, m.digest, t.updated_at FROM repositories r
		JOIN tags t ON t.repository_id = r.id JOIN manifests m ON m.id = t.manifest_id
		WHERE r.name = ? OR (r.name > ? AND r.name < ?) ORDER BY r.name, t.name`, project, project+"/", project+"0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.RetentionTag
	for rows.Next() {
		var ti meta.RetentionTag
		var d string
		var updated int64
		if err := rows.Scan(&ti.Repository, &ti.Tag, &d, &updated); err != nil {
			return nil, err
		}
		ti.Digest, ti.Updated = digest.Digest(d), fromNanos(updated)
		if !coveredBy(ti.Repository, longer) {
			out = append(out, ti)
		}
	}
	return out, rows.Err()
}

// coveredBy reports whether one of projects covers repo.
func coveredBy(repo string, projects []string) bool {
	for _, p := range projects {
		if repo == p || strings.HasPrefix(repo, p+"/") {
			return true
		}
	}
	return false
}

// RemoveTags removes the tags ts, each only if it still points where ts
// says and was not moved since (a tag pushed again meanwhile stays), and
// queues the manifests left untagged for review. It returns the tags it
// removed.
func (s *Store) RemoveTags(ctx context.Context, ts []meta.RetentionTag) ([]meta.RetentionTag, error) {
	now := time.Now().UnixNano()
	var removed []meta.RetentionTag
	err := chunks(ts, func(part []meta.RetentionTag) error {
		var done []meta.RetentionTag
		err := s.tx(ctx, func(tx conn) error {
			done = nil
			var untagged []int64
			for _, t := range part {
				mids, err := ints1(ctx, tx, `DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ? AND updated_at = ?
					AND manifest_id = (SELECT m.id FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.digest = ?)
					RETURNING manifest_id`, t.Repository, t.Tag, t.Updated.UnixNano(), t.Repository, t.Digest.String())
				if err != nil {
					return err
				}
				if len(mids) > 0 {
					done = append(done, t)
					untagged = append(untagged, mids...)
				}
			}
			return queueUntagged(ctx, tx, untagged, now)
		})
		removed = append(removed, done...)
		if err != nil {
			return fmt.Errorf("removing tags: %w", err)
		}
		return nil
	})
	return removed, err
}
