package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

var _ auth.SessionStore = (*Store)(nil)

// CreateSession implements auth.SessionStore.
func (s *Store) CreateSession(ctx context.Context, ss auth.Session) error {
	var pat any
	if ss.PATID != 0 {
		pat = ss.PATID
	}
	res, err := s.w.exec(ctx, `INSERT INTO sessions(id_hash, user_id, pat_id, csrf_secret, created_at, last_seen_at, expires_at)
		SELECT ?, id, ?, ?, ?, ?, ? FROM users WHERE name = ?`,
		ss.IDHash, pat, ss.CSRF, nanos(ss.Created), nanos(ss.LastSeen), nanos(ss.Expires), ss.User)
	return affected(res, err, "user "+ss.User)
}

// GetSession implements auth.SessionStore.
func (s *Store) GetSession(ctx context.Context, idHash string) (auth.Session, error) {
	var ss auth.Session
	var pat sql.NullInt64
	var created, seen, expires int64
	err := s.r.queryRow(ctx, `SELECT x.id_hash, u.name, x.pat_id, x.csrf_secret, x.created_at, x.last_seen_at, x.expires_at
		FROM sessions x JOIN users u ON u.id = x.user_id WHERE x.id_hash = ?`, idHash).
		Scan(&ss.IDHash, &ss.User, &pat, &ss.CSRF, &created, &seen, &expires)
	if err != nil {
		return auth.Session{}, notFound(err, "session")
	}
	ss.PATID = pat.Int64
	ss.Created, ss.LastSeen, ss.Expires = fromNanos(created), fromNanos(seen), fromNanos(expires)
	return ss, nil
}

// TouchSession implements auth.SessionStore.
func (s *Store) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	// No row changed is fine: a concurrent request touched it already.
	_, err := s.w.exec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND last_seen_at < ?`, nanos(at), idHash, nanos(at))
	return err
}

// DeleteSession implements auth.SessionStore.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	res, err := s.w.exec(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash)
	return affected(res, err, "session")
}

// DeleteExpiredSessions implements auth.SessionStore.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int64, error) {
	res, err := s.w.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at < ?`, nanos(now), nanos(idleSince))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
