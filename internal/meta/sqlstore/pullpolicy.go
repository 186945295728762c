package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// The pull policy is read by the manifest lookup itself (GetManifest), so
// that a pull pays no further round trip for it:
//
//   - pullPolicyColumns: the project covering the repository, only if its
//     require-signature setting is not off, as "<setting> <path>". The
//     candidates are the projects whose setting is not off (an index
//     probe that finds nothing while no project asks for signatures); one
//     of them governs the repository when it covers it and no longer
//     project (an index range below its path) does.
//   - then the id of the active quarantine of the manifest, of the image
//     it is attached to (its subject, or the image named by the cosign
//     attachment tag it is looked up by: the two parameters), or of a
//     direct child of either. Behind a probe for any active quarantine in
//     the repository, so a repository without one pays only that probe.
//     The record itself is read only when there is one (a refused pull).
const pullPolicyColumns = `COALESCE((SELECT e.require_signature || ' ' || e.path FROM projects e
		WHERE e.require_signature IN ('warn', 'enforce')
		AND substr(r.name, 1, length(e.path) + 1) IN (e.path, e.path || '/')
		AND NOT EXISTS (SELECT 1 FROM projects o WHERE o.path > e.path || '/' AND o.path < e.path || '0'
			AND substr(r.name, 1, length(o.path) + 1) IN (o.path, o.path || '/'))), ''),
	CASE WHEN EXISTS (SELECT 1 FROM quarantine qa WHERE qa.repository = r.name AND qa.lifted_at IS NULL)
	THEN COALESCE(
		(SELECT qs.id FROM quarantine qs WHERE qs.repository = r.name AND qs.lifted_at IS NULL
			AND qs.digest IN (m.digest, m.subject_digest, ?) LIMIT 1),
		(SELECT qc.id FROM manifests pm JOIN manifest_references mr ON mr.manifest_id = pm.id
			JOIN quarantine qc ON qc.repository = r.name AND qc.digest = mr.child_digest AND qc.lifted_at IS NULL
			WHERE pm.repository_id = r.id AND pm.digest IN (m.digest, m.subject_digest, ?) AND mr.kind = 'manifest'
			LIMIT 1))
	END`

// pullPolicy is what pullPolicyColumns read.
type pullPolicy struct {
	project string
	qID     sql.NullInt64
}

// apply sets m's pull policy, reading the quarantine record if there is
// one.
func (p *pullPolicy) apply(ctx context.Context, s *Store, m *meta.Manifest) error {
	if setting, path, ok := strings.Cut(p.project, " "); ok {
		m.RequireSignature, m.Project = meta.RequireSignature(setting), path
	}
	if !p.qID.Valid {
		return nil
	}
	q, err := scanQuarantine(s.r.queryRow(ctx, `SELECT `+quarantineCols+` FROM quarantine WHERE id = ?`, p.qID.Int64))
	if errors.Is(err, sql.ErrNoRows) { // lifted (and gone) in between: no longer quarantined
		return nil
	}
	if err != nil {
		return err
	}
	m.Quarantine = &q
	return nil
}

// SignatureVerdict implements meta.SignatureVerdicts: the statuses of the
// signatures of d and of the indexes in repo that list d decide.
func (s *Store) SignatureVerdict(ctx context.Context, repo string, d digest.Digest) (meta.SignatureVerdict, error) {
	rows, err := s.r.query(ctx, `SELECT DISTINCT s.status FROM signatures s
		WHERE s.deleted_at IS NULL AND s.repository_id = (SELECT id FROM repositories WHERE name = ?)
		AND s.subject_digest IN (SELECT CAST(? AS TEXT) UNION ALL
			SELECT pm.digest FROM manifest_references mr JOIN manifests pm ON pm.id = mr.manifest_id
			WHERE mr.child_digest = ? AND mr.kind = 'manifest' AND pm.repository_id = (SELECT id FROM repositories WHERE name = ?))`,
		repo, d.String(), d.String(), repo)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	verdict := meta.VerdictNone
	for rows.Next() {
		var status string
		if err := rows.Scan(&status); err != nil {
			return "", err
		}
		switch status {
		case meta.StatusVerified:
			verdict = meta.VerdictVerified
		case meta.StatusPending:
			if verdict == meta.VerdictNone {
				verdict = meta.VerdictPending
			}
		}
	}
	return verdict, rows.Err()
}

// Audit actions of quarantine changes (one event per item).
const (
	auditQuarantine = auth.AuditQuarantine
	auditLift       = auth.AuditQuarantineLift
)

// recordAudit records e through c, a pool or a transaction (auth.Service.Audit's
// limit applies: the detail is cut at 1024 bytes).
func recordAudit(ctx context.Context, tx conn, e auth.AuditEvent) error {
	if len(e.Detail) > 1024 {
		e.Detail = e.Detail[:1024]
	}
	_, err := tx.exec(ctx, `INSERT INTO audit_events(at, action, actor, actor_kind, repository, reference, digest, remote_addr, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, nanos(e.Time), e.Action, e.Actor, e.ActorKind, e.Repository, e.Reference, e.Digest, e.RemoteAddr, e.Detail)
	return err
}

func changeEvent(c meta.QuarantineChange, action string, it meta.QuarantineItem, detail string) auth.AuditEvent {
	return auth.AuditEvent{Time: c.At, Action: action, Actor: c.Actor, ActorKind: c.ActorKind, Repository: it.Repository,
		Reference: it.Digest.String(), Digest: it.Digest.String(), RemoteAddr: c.RemoteAddr, Detail: detail}
}

const quarantineCols = `id, repository, digest, reason, actor, created_at, lifted_at, lifted_by, lift_reason`

func scanQuarantine(row rowScanner) (meta.Quarantine, error) {
	var q meta.Quarantine
	var dg string
	var created int64
	var lifted sql.NullInt64
	if err := row.Scan(&q.ID, &q.Repository, &dg, &q.Reason, &q.Actor, &created, &lifted, &q.LiftedBy, &q.LiftReason); err != nil {
		return meta.Quarantine{}, err
	}
	q.Digest, q.Created, q.Lifted = digest.Digest(dg), fromNanos(created), nullNanos(lifted)
	return q, nil
}

// Quarantine implements meta.Quarantines.
func (s *Store) Quarantine(ctx context.Context, c meta.QuarantineChange) ([]meta.QuarantineOutcome, error) {
	var out []meta.QuarantineOutcome
	err := s.tx(ctx, func(tx conn) error {
		out = make([]meta.QuarantineOutcome, 0, len(c.Items))
		for _, it := range c.Items {
			var id int64
			err := tx.queryRow(ctx, `INSERT INTO quarantine(repository, digest, reason, actor, created_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (repository, digest) WHERE lifted_at IS NULL DO NOTHING RETURNING id`,
				it.Repository, it.Digest.String(), c.Reason, c.Actor, nanos(c.At)).Scan(&id)
			changed := err == nil
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			q, err := scanQuarantine(tx.queryRow(ctx, `SELECT `+quarantineCols+` FROM quarantine
				WHERE repository = ? AND digest = ? AND lifted_at IS NULL`, it.Repository, it.Digest.String()))
			if err != nil {
				return fmt.Errorf("reading the quarantine of %s@%s: %w", it.Repository, it.Digest, err)
			}
			if changed {
				if err := recordAudit(ctx, tx, changeEvent(c, auditQuarantine, it, "reason: "+c.Reason)); err != nil {
					return err
				}
			}
			out = append(out, meta.QuarantineOutcome{Item: it, Quarantine: &q, Changed: changed})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LiftQuarantine implements meta.Quarantines.
func (s *Store) LiftQuarantine(ctx context.Context, c meta.QuarantineChange) ([]meta.QuarantineOutcome, error) {
	var out []meta.QuarantineOutcome
	err := s.tx(ctx, func(tx conn) error {
		out = make([]meta.QuarantineOutcome, 0, len(c.Items))
		for _, it := range c.Items {
			q, err := scanQuarantine(tx.queryRow(ctx, `UPDATE quarantine SET lifted_at = ?, lifted_by = ?, lift_reason = ?
				WHERE repository = ? AND digest = ? AND lifted_at IS NULL RETURNING `+quarantineCols,
				nanos(c.At), c.Actor, c.Reason, it.Repository, it.Digest.String()))
			if errors.Is(err, sql.ErrNoRows) {
				out = append(out, meta.QuarantineOutcome{Item: it})
				continue
			}
			if err != nil {
				return err
			}
			detail := "quarantined by " + q.Actor + " at " + q.Created.UTC().Format(time.RFC3339) + " (reason: " + q.Reason + ")"
			if c.Reason != "" {
				detail = "lift reason: " + c.Reason + "; " + detail
			}
			if err := recordAudit(ctx, tx, changeEvent(c, auditLift, it, detail)); err != nil {
				return err
			}
			out = append(out, meta.QuarantineOutcome{Item: it, Quarantine: &q, Changed: true})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListQuarantine implements meta.Quarantines.
func (s *Store) ListQuarantine(ctx context.Context, q meta.QuarantineQuery) ([]meta.Quarantine, error) {
	var where []string
	var args []any
	if q.Repository != "" {
		where, args = append(where, "repository = ?"), append(args, q.Repository)
	}
	if q.Digest != "" {
		where, args = append(where, "digest = ?"), append(args, q.Digest.String())
	}
	if !q.History {
		where = append(where, "lifted_at IS NULL")
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	if q.Limit <= 0 {
		q.Limit = 100
	}
	sqlq := `SELECT ` + quarantineCols + ` FROM quarantine`
	if len(where) > 0 {
		sqlq += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := s.r.query(ctx, sqlq+` ORDER BY id DESC LIMIT ?`, append(args, q.Limit)...)
	out, err := collect(rows, err, scanQuarantine)
	if out == nil && err == nil {
		out = []meta.Quarantine{}
	}
	return out, err
}

// SetProjectRequireSignature sets project path's require-signature
// setting and records e (its Detail says what changed) in the audit log,
// in one transaction. auth.ErrNotFound when there is no such project.
func (s *Store) SetProjectRequireSignature(ctx context.Context, path string, rs meta.RequireSignature, e auth.AuditEvent) error {
	return s.tx(ctx, func(tx conn) error {
		res, err := tx.exec(ctx, `UPDATE projects SET require_signature = ? WHERE path = ?`, string(rs), path)
		if err := affected(res, err, "project "+path); err != nil {
			return err
		}
		return recordAudit(ctx, tx, e)
	})
}

// Quarantined reports whether manifest d of repo is quarantined now
// (garbage collection and retention keep it as evidence: gc.Quarantine).
func (s *Store) Quarantined(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	var one int
	err := s.r.queryRow(ctx, `SELECT 1 FROM quarantine WHERE repository = ? AND digest = ? AND lifted_at IS NULL`, repo, d.String()).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
