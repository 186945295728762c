package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Console sessions: a user signs in to the web console with a password or
// a personal access token and gets a random session id in a cookie. The
// database keeps only the id's SHA-256 (a reader of the database cannot
// take a session over), the user, the PAT a session was opened with, a
// CSRF secret and three times; any replica can resume a session, and
// logging out deletes it everywhere. A session ends after IdleTimeout
// without a request, after MaxAge in any case, when its user is deleted or
// changes password (password sessions), or when its PAT is revoked or
// expires.

// Audit actions of the console.
const (
	AuditSessionLogin  = "session.login"
	AuditSessionLogout = "session.logout"
)

// ErrNoSession: the session id is unknown, expired or no longer valid; the
// visitor is anonymous and must sign in again.
var ErrNoSession = errors.New("no such session, or it has expired; sign in again")

// Session is a console session as stored.
type Session struct {
	IDHash string // hex SHA-256 of the session id
	User   string
	// PATID is the personal access token the session was opened with; 0
	// for a password sign-in.
	PATID    int64
	CSRF     string // the per-session CSRF token put in every form
	Created  time.Time
	LastSeen time.Time
	Expires  time.Time // absolute expiry
}

// SessionStore keeps console sessions.
type SessionStore interface {
	// CreateSession stores s; the user must exist (ErrNotFound).
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns the session with that id hash, or ErrNotFound.
	GetSession(ctx context.Context, idHash string) (Session, error)
	// TouchSession records a request of the session at at.
	TouchSession(ctx context.Context, idHash string, at time.Time) error
	// DeleteSession removes a session (ErrNotFound when there is none).
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteExpiredSessions removes the sessions past their absolute
	// expiry at now or last seen before idleSince; it returns how many.
	DeleteExpiredSessions(ctx context.Context, now, idleSince time.Time) (int64, error)
}

// SessionConfig bounds console sessions; zero values take the defaults.
type SessionConfig struct {
	IdleTimeout time.Duration // default 30 minutes
	MaxAge      time.Duration // default 12 hours
	// TouchEvery is how stale the stored last-seen time may get before a
	// request writes it again (default a minute, at most IdleTimeout/4):
	// not every page view is a database write.
	TouchEvery time.Duration
}

// Sessions opens, resumes and ends console sessions.
type Sessions struct {
	s     *Service
	store SessionStore
	cfg   SessionConfig
}

// Sessions returns the console's session manager over store.
func (s *Service) Sessions(store SessionStore, cfg SessionConfig) *Sessions {
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 12 * time.Hour
	}
	if cfg.TouchEvery <= 0 {
		cfg.TouchEvery = time.Minute
	}
	cfg.TouchEvery = min(cfg.TouchEvery, cfg.IdleTimeout/4)
	return &Sessions{s: s, store: store, cfg: cfg}
}

// Config returns the session bounds in force.
func (m *Sessions) Config() SessionConfig { return m.cfg }

// Login checks a user's password or personal access token (throttled and
// audited like every login; CI job tokens and ID tokens are refused: the
// console is for people) and opens a session. It returns the new session
// id, which only the client keeps.
func (m *Sessions) Login(ctx context.Context, user, secret, remote string) (string, Session, Principal, error) {
	if !isPassword(secret) && !strings.HasPrefix(secret, PATPrefix) {
		if err := m.s.throttled(ctx, user, remote, false); err != nil {
			return "", Session{}, Principal{}, err
		}
		return "", Session{}, Principal{}, m.s.loginFailed(ctx, user, remote, false, "console sign-in with a CI job token or ID token (use a password or personal access token)")
	}
	p, err := m.s.Authenticate(ctx, user, secret, remote)
	if err != nil {
		return "", Session{}, Principal{}, err
	}
	now := m.s.cfg.Now()
	if _, err := m.store.DeleteExpiredSessions(ctx, now, now.Add(-m.cfg.IdleTimeout)); err != nil {
		m.s.log.WarnContext(ctx, "removing expired console sessions", "err", err)
	}
	id := randomSecret("")
	sess := Session{IDHash: HashToken(id), User: p.User, CSRF: randomSecret(""), Created: now, LastSeen: now,
		Expires: now.Add(m.cfg.MaxAge)}
	if p.Kind == KindPAT {
		sess.PATID = p.CredID
	}
	if err := m.store.CreateSession(ctx, sess); err != nil {
		return "", Session{}, Principal{}, fmt.Errorf("storing the console session: %w", err)
	}
	how := "password"
	if sess.PATID != 0 {
		how = fmt.Sprintf("personal access token %d", sess.PATID)
	}
	m.s.Audit(ctx, AuditEvent{Action: AuditSessionLogin, Actor: p.Name, ActorKind: p.Kind, RemoteAddr: remote,
		Detail: "console sign-in with " + how})
	return id, sess, p, nil
}

// Resume returns the principal and session of a session id: ErrNoSession
// when it is unknown, past its idle or absolute expiry (it is then
// deleted), or its credential is no longer valid.
func (m *Sessions) Resume(ctx context.Context, id string) (Principal, Session, error) {
	if id == "" || len(id) > 128 {
		return Principal{}, Session{}, ErrNoSession
	}
	h := HashToken(id)
	sess, err := m.store.GetSession(ctx, h)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, Session{}, ErrNoSession
	}
	if err != nil {
		return Principal{}, Session{}, err
	}
	now := m.s.cfg.Now()
	end := func(why string) (Principal, Session, error) {
		if err := m.store.DeleteSession(ctx, h); err != nil && !errors.Is(err, ErrNotFound) {
			return Principal{}, Session{}, err
		}
		return Principal{}, Session{}, fmt.Errorf("%w (%s)", ErrNoSession, why)
	}
	switch {
	case !now.Before(sess.Expires):
		return end("signed in more than " + m.cfg.MaxAge.String() + " ago")
	case now.Sub(sess.LastSeen) > m.cfg.IdleTimeout:
		return end("idle for more than " + m.cfg.IdleTimeout.String())
	}
	u, err := m.s.store.GetUser(ctx, sess.User)
	if errors.Is(err, ErrNotFound) {
		return end("the user no longer exists")
	}
	if err != nil {
		return Principal{}, Session{}, err
	}
	p := Principal{Kind: KindUser, Name: u.Name, User: u.Name, Admin: u.Admin}
	if sess.PATID == 0 {
		if sess.Created.Before(u.PasswordChangedAt) {
			return end("the password changed since")
		}
	} else {
		t, err := m.s.store.GetPAT(ctx, sess.PATID)
		if errors.Is(err, ErrNotFound) {
			return end("its personal access token no longer exists")
		}
		if err != nil {
			return Principal{}, Session{}, err
		}
		if why := credentialProblem(t.Revoked, t.Expires, now); why != "" || t.User != u.Name {
			return end("its personal access token " + why)
		}
		p.Kind, p.CredID, p.Scopes = KindPAT, t.ID, t.Scopes
	}
	if now.Sub(sess.LastSeen) >= m.cfg.TouchEvery {
		if err := m.store.TouchSession(ctx, h, now); err != nil {
			return Principal{}, Session{}, err
		}
		sess.LastSeen = now
	}
	return p, sess, nil
}

// Logout ends the session with that id (a session that is already gone is
// not an error).
func (m *Sessions) Logout(ctx context.Context, id, remote string) error {
	sess, err := m.store.GetSession(ctx, HashToken(id))
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := m.store.DeleteSession(ctx, sess.IDHash); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	m.s.Audit(ctx, AuditEvent{Action: AuditSessionLogout, Actor: sess.User, ActorKind: KindUser, RemoteAddr: remote,
		Detail: "console sign-out"})
	return nil
}

// ValidCSRF reports whether token is the session's CSRF token (in
// constant time).
func ValidCSRF(sess Session, token string) bool {
	return sess.CSRF != "" && subtle.ConstantTimeCompare([]byte(sess.CSRF), []byte(token)) == 1
}

// NewCSRFToken returns a random token for forms shown before a session
// exists (the sign-in form), checked against a cookie.
func NewCSRFToken() string { return randomSecret("") }

// PullCheck returns p's pull check: the console shows a visitor exactly
// what the provenance API would (anonymous: the public projects).
func (z APIAuthorizer) PullCheck(p Principal) PullCheck {
	c := z.principalCaller(p, "")
	return func(ctx context.Context, repo string) (bool, error) { return c.May(ctx, repo, ActionPull) }
}

// SessionCaller is the API caller of a console session's principal p from
// remote: what it may do (quarantine, for one) and see (search) is what
// the JSON API would let it.
func (z APIAuthorizer) SessionCaller(p Principal, remote string) Caller {
	return z.principalCaller(p, remote)
}
