package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

const trustPolicyColumns = `p.path, p.oidc_issuer, COALESCE(tp.version, 0), COALESCE(tp.document, ''), COALESCE(tp.updated_at, 0), COALESCE(tp.updated_by, '')`

func scanPolicy(row rowScanner) (meta.TrustPolicy, error) {
	var p meta.TrustPolicy
	var doc string
	var updated int64
	if err := row.Scan(&p.Project, &p.ProjectIssuer, &p.Version, &doc, &updated, &p.UpdatedBy); err != nil {
		return meta.TrustPolicy{}, err
	}
	if p.Version > 0 {
		p.Document, p.Updated = []byte(doc), fromNanos(updated)
	}
	return p, nil
}

// TrustPolicy implements meta.TrustPolicies.
func (s *Store) TrustPolicy(ctx context.Context, project string) (meta.TrustPolicy, error) {
	p, err := scanPolicy(s.r.queryRow(ctx, `SELECT `+trustPolicyColumns+` FROM projects p
		LEFT JOIN trust_policies tp ON tp.project_id = p.id WHERE p.path = ?`, project))
	if errors.Is(err, sql.ErrNoRows) {
		return meta.TrustPolicy{}, fmt.Errorf("project %q: %w", project, meta.ErrProjectNotFound)
	}
	return p, err
}

// TrustPolicyFor implements meta.TrustPolicies: the governing project is
// the longest of repo and its parent paths that is a project (as
// FindProject).
func (s *Store) TrustPolicyFor(ctx context.Context, repo string) (meta.TrustPolicy, error) {
	cands := projectCandidates(repo)
	if len(cands) == 0 {
		return meta.TrustPolicy{}, nil
	}
	p, err := scanPolicy(s.r.queryRow(ctx, `SELECT `+trustPolicyColumns+` FROM projects p
		LEFT JOIN trust_policies tp ON tp.project_id = p.id
		WHERE p.path IN (`+placeholders(len(cands), 1)+`) ORDER BY length(p.path) DESC LIMIT 1`, cands...))
	if errors.Is(err, sql.ErrNoRows) {
		return meta.TrustPolicy{}, nil
	}
	return p, err
}

// SetTrustPolicy implements meta.TrustPolicies.
func (s *Store) SetTrustPolicy(ctx context.Context, project string, doc []byte, by string) (meta.TrustPolicy, int, error) {
	var out meta.TrustPolicy
	var jobs int
	now := time.Now()
	err := s.tx(ctx, func(tx conn) error {
		var pid int64
		var issuer string
		err := tx.queryRow(ctx, `SELECT id, oidc_issuer FROM projects WHERE path = ?`+s.d.ForUpdate, project).Scan(&pid, &issuer)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("project %q: %w", project, meta.ErrProjectNotFound)
		}
		if err != nil {
			return err
		}
		var version int64
		if err := tx.queryRow(ctx, `INSERT INTO trust_policies(project_id, version, document, updated_at, updated_by) VALUES (?, 1, ?, ?, ?)
			ON CONFLICT(project_id) DO UPDATE SET version = trust_policies.version + 1, document = excluded.document,
			updated_at = excluded.updated_at, updated_by = excluded.updated_by RETURNING version`,
			pid, string(doc), now.UnixNano(), by).Scan(&version); err != nil {
			return err
		}
		if _, jobs, err = reindex(ctx, tx, project); err != nil {
			return err
		}
		out = meta.TrustPolicy{Project: project, ProjectIssuer: issuer, Version: version, Document: doc, Updated: fromNanos(now.UnixNano()), UpdatedBy: by}
		return nil
	})
	return out, jobs, err
}
