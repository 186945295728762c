package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

var _ auth.Store = (*Store)(nil)

func nanos(t time.Time) int64 { return t.UnixNano() }

func fromNanos(n int64) time.Time { return time.Unix(0, n) }

func nullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromNanos(n.Int64)
}

func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
	}
	return err
}

// CreateUser implements auth.Users.
func (s *Store) CreateUser(ctx context.Context, u auth.User) (auth.User, error) {
	err := s.w.queryRow(ctx, `INSERT INTO users(name, password_hash, admin, password_changed_at, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING RETURNING id`,
		u.Name, u.PasswordHash, boolInt(u.Admin), nanos(u.PasswordChangedAt), nanos(u.Created)).Scan(&u.ID)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.User{}, fmt.Errorf("user %q: %w", u.Name, auth.ErrExists)
	}
	return u, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const userCols = `id, name, password_hash, admin, password_changed_at, created_at`

func scanUser(row rowScanner) (auth.User, error) {
	var u auth.User
	var admin int
	var changed, created int64
	if err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &admin, &changed, &created); err != nil {
		return auth.User{}, err
	}
	u.Admin, u.PasswordChangedAt, u.Created = admin != 0, fromNanos(changed), fromNanos(created)
	return u, nil
}

// GetUser implements auth.Users.
func (s *Store) GetUser(ctx context.Context, name string) (auth.User, error) {
	u, err := scanUser(s.r.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	return u, notFound(err, "user "+name)
}

// ListUsers implements auth.Users.
func (s *Store) ListUsers(ctx context.Context) ([]auth.User, error) {
	rows, err := s.r.query(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	return collect(rows, err, scanUser)
}

// collect scans every row of a query (rows, err: what query returned)
// with scan; it closes rows.
func collect[T any](rows *sql.Rows, err error, scan func(rowScanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, auth.ErrNotFound)
	}
	return nil
}

// DeleteUser implements auth.Users; memberships and PATs go with the user.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	res, err := s.w.exec(ctx, `DELETE FROM users WHERE name = ?`, name)
	return affected(res, err, "user "+name)
}

// SetPassword implements auth.Users.
func (s *Store) SetPassword(ctx context.Context, name, hash string, at time.Time) error {
	res, err := s.w.exec(ctx, `UPDATE users SET password_hash = ?, password_changed_at = ? WHERE name = ?`, hash, nanos(at), name)
	return affected(res, err, "user "+name)
}

// A new project, a deleted one or another pinned issuer changes the trust
// policy of the project's repositories (its default identity is its own
// pipelines from its issuer): their signatures are re-evaluated (reindex).

// CreateProject implements auth.Projects. The repositories under the new
// project's path that no longer project covers become its own (a search
// filters by repository project).
func (s *Store) CreateProject(ctx context.Context, p auth.Project) (auth.Project, error) {
	if p.RequireSignature == "" {
		p.RequireSignature = meta.RequireSignatureOff
	}
	err := s.tx(ctx, func(tx conn) error {
		if err := lockRepositories(ctx, tx); err != nil {
			return err
		}
		err := tx.queryRow(ctx, `INSERT INTO projects(path, visibility, oidc_issuer, require_signature, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT(path) DO NOTHING RETURNING id`, p.Path, p.Visibility, p.OIDCIssuer, string(p.RequireSignature), nanos(p.Created)).Scan(&p.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("project %q: %w", p.Path, auth.ErrExists)
		}
		if err != nil {
			return err
		}
		// '0' follows '/': [path/, path0) are the names under path/.
		if _, err = tx.exec(ctx, `UPDATE repositories SET project_id = ?
			WHERE (name = ? OR (name >= ? AND name < ?))
			AND (project_id IS NULL OR project_id IN (SELECT id FROM projects WHERE length(path) < ?))`,
			p.ID, p.Path, p.Path+"/", p.Path+"0", len(p.Path)); err != nil {
			return err
		}
		_, _, err = reindex(ctx, tx, p.Path)
		return err
	})
	if err != nil {
		return auth.Project{}, err
	}
	return p, nil
}

// lockRepositories keeps repositories from being created until the
// transaction ends, where the dialect needs it for a repository to get
// the project a concurrent CreateProject or DeleteProject gives it
// (PostgreSQL; SQLite's writer lock already serializes them).
func lockRepositories(ctx context.Context, tx conn) error {
	if tx.d.LockRepositories == "" {
		return nil
	}
	_, err := tx.exec(ctx, tx.d.LockRepositories)
	return err
}

const projectCols = `id, path, visibility, oidc_issuer, require_signature, created_at`

func scanProject(row rowScanner) (auth.Project, error) {
	var p auth.Project
	var created int64
	var rs string
	if err := row.Scan(&p.ID, &p.Path, &p.Visibility, &p.OIDCIssuer, &rs, &created); err != nil {
		return auth.Project{}, err
	}
	p.RequireSignature, p.Created = meta.RequireSignature(rs), fromNanos(created)
	return p, nil
}

// FindProject implements auth.Projects: the candidates are repo and each
// of its '/'-prefixes; the longest existing one wins.
func (s *Store) FindProject(ctx context.Context, repo string) (auth.Project, error) {
	cands := projectCandidates(repo)
	if len(cands) == 0 {
		return auth.Project{}, fmt.Errorf("project for %q: %w", repo, auth.ErrNotFound)
	}
	q := `SELECT ` + projectCols + ` FROM projects WHERE path IN (` + placeholders(len(cands), 1) + `) ORDER BY length(path) DESC LIMIT 1`
	p, err := scanProject(s.r.queryRow(ctx, q, cands...))
	return p, notFound(err, "project for "+repo)
}

// projectCandidates are the paths of the projects that may cover repo:
// repo and each of its parent paths, longest first.
func projectCandidates(repo string) []any {
	var cands []any
	for p := repo; p != ""; {
		cands = append(cands, p)
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return cands
}

// GetProject implements auth.Projects.
func (s *Store) GetProject(ctx context.Context, path string) (auth.Project, error) {
	p, err := scanProject(s.r.queryRow(ctx, `SELECT `+projectCols+` FROM projects WHERE path = ?`, path))
	return p, notFound(err, "project "+path)
}

// ListProjects implements auth.Projects.
func (s *Store) ListProjects(ctx context.Context) ([]auth.Project, error) {
	rows, err := s.r.query(ctx, `SELECT `+projectCols+` FROM projects ORDER BY path`)
	return collect(rows, err, scanProject)
}

// DeleteProject implements auth.Projects; memberships and job tokens go
// with it, images stay, and its repositories pass to the project with the
// next longest path covering them, or to none (admins only).
func (s *Store) DeleteProject(ctx context.Context, path string) error {
	return s.tx(ctx, func(tx conn) error {
		if err := lockRepositories(ctx, tx); err != nil {
			return err
		}
		var id int64
		if err := tx.queryRow(ctx, `SELECT id FROM projects WHERE path = ?`, path).Scan(&id); err != nil {
			return notFound(err, "project "+path)
		}
		if _, err := tx.exec(ctx, `DELETE FROM projects WHERE id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `UPDATE repositories SET project_id = (SELECT p.id FROM projects p
			WHERE p.path = repositories.name OR substr(repositories.name, 1, length(p.path) + 1) = p.path || '/'
			ORDER BY length(p.path) DESC LIMIT 1) WHERE project_id = ?`, id); err != nil {
			return err
		}
		_, _, err := reindex(ctx, tx, path)
		return err
	})
}

// projectChange runs q, which changes project path, and re-evaluates the
// signatures of the project's repositories in the same transaction.
func (s *Store) projectChange(ctx context.Context, path, q string, args ...any) error {
	return s.tx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, q, args...)
		if err := affected(res, err, "project "+path); err != nil {
			return err
		}
		_, _, err = reindex(ctx, tx, path)
		return err
	})
}

// SetProjectIssuer implements auth.Projects.
func (s *Store) SetProjectIssuer(ctx context.Context, path, issuer string) error {
	return s.projectChange(ctx, path, `UPDATE projects SET oidc_issuer = ? WHERE path = ?`, issuer, path)
}

// SetMember implements auth.Projects (insert or change the role).
func (s *Store) SetMember(ctx context.Context, project, user string, role auth.Role) error {
	return s.tx(ctx, func(tx conn) error {
		var pid, uid int64
		if err := tx.queryRow(ctx, `SELECT id FROM projects WHERE path = ?`, project).Scan(&pid); err != nil {
			return notFound(err, "project "+project)
		}
		if err := tx.queryRow(ctx, `SELECT id FROM users WHERE name = ?`, user).Scan(&uid); err != nil {
			return notFound(err, "user "+user)
		}
		_, err := tx.exec(ctx, `INSERT INTO project_members(project_id, user_id, role) VALUES (?, ?, ?)
			ON CONFLICT(project_id, user_id) DO UPDATE SET role = excluded.role`, pid, uid, string(role))
		return err
	})
}

// RemoveMember implements auth.Projects.
func (s *Store) RemoveMember(ctx context.Context, project, user string) error {
	res, err := s.w.exec(ctx, `DELETE FROM project_members
		WHERE project_id = (SELECT id FROM projects WHERE path = ?) AND user_id = (SELECT id FROM users WHERE name = ?)`, project, user)
	return affected(res, err, "member "+user+" of "+project)
}

// MemberRole implements auth.Projects.
func (s *Store) MemberRole(ctx context.Context, projectID int64, user string) (auth.Role, error) {
	var role string
	err := s.r.queryRow(ctx, `SELECT m.role FROM project_members m JOIN users u ON u.id = m.user_id
		WHERE m.project_id = ? AND u.name = ?`, projectID, user).Scan(&role)
	return auth.Role(role), notFound(err, "member "+user)
}

// UserProjects implements auth.Projects.
func (s *Store) UserProjects(ctx context.Context, user string) ([]string, error) {
	rows, err := s.r.query(ctx, `SELECT p.path FROM project_members m JOIN projects p ON p.id = m.project_id
		JOIN users u ON u.id = m.user_id WHERE u.name = ? ORDER BY p.path`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ListMembers implements auth.Projects.
func (s *Store) ListMembers(ctx context.Context, project string) ([]auth.Member, error) {
	rows, err := s.r.query(ctx, `SELECT p.path, u.name, m.role FROM project_members m
		JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id
		WHERE p.path = ? ORDER BY u.name`, project)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auth.Member
	for rows.Next() {
		var m auth.Member
		var role string
		if err := rows.Scan(&m.Project, &m.User, &role); err != nil {
			return nil, err
		}
		m.Role = auth.Role(role)
		out = append(out, m)
	}
	return out, rows.Err()
}

// CreatePAT implements auth.Tokens.
func (s *Store) CreatePAT(ctx context.Context, t auth.PAT) (auth.PAT, error) {
	err := s.w.queryRow(ctx, `INSERT INTO personal_access_tokens(user_id, name, scopes, token_hash, expires_at, created_at)
		SELECT id, ?, ?, ?, ?, ? FROM users WHERE name = ? RETURNING id`,
		t.Name, strings.Join(t.Scopes, ","), t.Hash, nanos(t.Expires), nanos(t.Created), t.User).Scan(&t.ID)
	return t, notFound(err, "user "+t.User)
}

const patCols = `t.id, u.name, t.name, t.scopes, t.token_hash, t.expires_at, t.revoked_at, t.created_at, t.last_used_at`

func scanPAT(row rowScanner) (auth.PAT, error) {
	var t auth.PAT
	var scopes string
	var exp, created int64
	var revoked, used sql.NullInt64
	if err := row.Scan(&t.ID, &t.User, &t.Name, &scopes, &t.Hash, &exp, &revoked, &created, &used); err != nil {
		return auth.PAT{}, err
	}
	if scopes != "" {
		t.Scopes = strings.Split(scopes, ",")
	}
	t.Expires, t.Revoked, t.Created, t.LastUsed = fromNanos(exp), revoked.Valid, fromNanos(created), nullNanos(used)
	return t, nil
}

// PATByHash implements auth.Tokens.
func (s *Store) PATByHash(ctx context.Context, hash string) (auth.PAT, error) {
	t, err := scanPAT(s.r.queryRow(ctx, `SELECT `+patCols+` FROM personal_access_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?`, hash))
	return t, notFound(err, "personal access token")
}

// GetPAT implements auth.Tokens.
func (s *Store) GetPAT(ctx context.Context, id int64) (auth.PAT, error) {
	t, err := scanPAT(s.r.queryRow(ctx, `SELECT `+patCols+` FROM personal_access_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?`, id))
	return t, notFound(err, fmt.Sprintf("personal access token %d", id))
}

// ListPATs implements auth.Tokens (all users when user is empty).
func (s *Store) ListPATs(ctx context.Context, user string) ([]auth.PAT, error) {
	rows, err := s.r.query(ctx, `SELECT `+patCols+` FROM personal_access_tokens t JOIN users u ON u.id = t.user_id
		WHERE ? = '' OR u.name = ? ORDER BY t.id`, user, user)
	return collect(rows, err, scanPAT)
}

// RevokePAT implements auth.Tokens.
func (s *Store) RevokePAT(ctx context.Context, id int64) error {
	res, err := s.w.exec(ctx, `UPDATE personal_access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, time.Now().UnixNano(), id)
	return affected(res, err, fmt.Sprintf("unrevoked personal access token %d", id))
}

// CreateJobToken implements auth.Tokens.
func (s *Store) CreateJobToken(ctx context.Context, t auth.JobToken) (auth.JobToken, error) {
	err := s.w.queryRow(ctx, `INSERT INTO ci_job_tokens(project_id, job_id, pipeline_id, user_name, token_hash, expires_at, created_at)
		SELECT id, ?, ?, ?, ?, ?, ? FROM projects WHERE path = ? RETURNING id`,
		t.JobID, t.Pipeline, t.User, t.Hash, nanos(t.Expires), nanos(t.Created), t.Project).Scan(&t.ID)
	return t, notFound(err, "project "+t.Project)
}

const jobCols = `t.id, p.path, t.job_id, t.pipeline_id, t.user_name, t.token_hash, t.expires_at, t.revoked_at, t.created_at`

func scanJob(row rowScanner) (auth.JobToken, error) {
	var t auth.JobToken
	var exp, created int64
	var revoked sql.NullInt64
	if err := row.Scan(&t.ID, &t.Project, &t.JobID, &t.Pipeline, &t.User, &t.Hash, &exp, &revoked, &created); err != nil {
		return auth.JobToken{}, err
	}
	t.Expires, t.Revoked, t.Created = fromNanos(exp), revoked.Valid, fromNanos(created)
	return t, nil
}

// JobTokenByHash implements auth.Tokens.
func (s *Store) JobTokenByHash(ctx context.Context, hash string) (auth.JobToken, error) {
	t, err := scanJob(s.r.queryRow(ctx, `SELECT `+jobCols+` FROM ci_job_tokens t JOIN projects p ON p.id = t.project_id WHERE t.token_hash = ?`, hash))
	return t, notFound(err, "CI job token")
}

// GetJobToken implements auth.Tokens.
func (s *Store) GetJobToken(ctx context.Context, id int64) (auth.JobToken, error) {
	t, err := scanJob(s.r.queryRow(ctx, `SELECT `+jobCols+` FROM ci_job_tokens t JOIN projects p ON p.id = t.project_id WHERE t.id = ?`, id))
	return t, notFound(err, fmt.Sprintf("CI job token %d", id))
}

// RevokeJobToken implements auth.Tokens.
func (s *Store) RevokeJobToken(ctx context.Context, id int64) error {
	res, err := s.w.exec(ctx, `UPDATE ci_job_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, time.Now().UnixNano(), id)
	return affected(res, err, fmt.Sprintf("unrevoked CI job token %d", id))
}

// RecordAudit implements auth.AuditLog.
func (s *Store) RecordAudit(ctx context.Context, e auth.AuditEvent) error {
	return recordAudit(ctx, s.w, e)
}

// QueryAudit implements auth.AuditLog: newest first.
func (s *Store) QueryAudit(ctx context.Context, q auth.AuditQuery) ([]auth.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if q.Action != "" {
		add("action = ?", q.Action)
	}
	if q.Repository != "" {
		add("repository = ?", q.Repository)
	}
	if q.Actor != "" {
		add("actor = ?", q.Actor)
	}
	if !q.Since.IsZero() {
		add("at >= ?", nanos(q.Since))
	}
	if q.Before > 0 {
		add("id < ?", q.Before)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	sqlq := `SELECT id, at, action, actor, actor_kind, repository, reference, digest, remote_addr, detail FROM audit_events`
	if len(where) > 0 {
		sqlq += ` WHERE ` + strings.Join(where, " AND ")
	}
	sqlq += ` ORDER BY id DESC LIMIT ?`
	args = append(args, q.Limit)
	rows, err := s.r.query(ctx, sqlq, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []auth.AuditEvent
	for rows.Next() {
		var e auth.AuditEvent
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Action, &e.Actor, &e.ActorKind, &e.Repository, &e.Reference, &e.Digest, &e.RemoteAddr, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = fromNanos(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
