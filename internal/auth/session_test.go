package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// TestSessions: console sessions on a real SQLite store with a test clock:
// sign-in with a password or a PAT (not with a CI job token), idle and
// absolute expiry, touch throttling, password change, PAT revocation,
// user deletion, sign-out.
func TestSessions(t *testing.T) {
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	if _, err := f.adm.AddUser(ctx, "alice", "alice-password-1", false); err != nil {
		t.Fatal(err)
	}
	m := f.svc.Sessions(f.store, auth.SessionConfig{IdleTimeout: 30 * time.Minute, MaxAge: 12 * time.Hour})
	const addr = "192.0.2.1"

	if _, _, _, err := m.Login(ctx, "alice", "wrong", addr); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	id, sess, p, err := m.Login(ctx, "alice", "alice-password-1", addr)
	if err != nil || p.Kind != auth.KindUser || p.User != "alice" || sess.CSRF == "" || len(id) < 40 || sess.IDHash == id {
		t.Fatalf("Login = %q, %+v, %+v, %v", id, sess, p, err)
	}
	stored, err := f.store.GetSession(ctx, auth.HashToken(id))
	if err != nil || stored.CSRF != sess.CSRF {
		t.Fatalf("stored session %+v, %v", stored, err)
	}
	if _, err := f.store.GetSession(ctx, id); !errors.Is(err, auth.ErrNotFound) {
		t.Error("the session id itself is a key of the store (only its hash may be)")
	}

	// Activity keeps it alive; last seen is written at most once a minute.
	for range 5 {
		f.clk.Add(20 * time.Minute)
		if _, _, err := m.Resume(ctx, id); err != nil {
			t.Fatalf("resume after 20 idle minutes: %v", err)
		}
	}
	f.clk.Add(10 * time.Second)
	before, _ := f.store.GetSession(ctx, auth.HashToken(id))
	if _, _, err := m.Resume(ctx, id); err != nil {
		t.Fatal(err)
	}
	if after, _ := f.store.GetSession(ctx, auth.HashToken(id)); !after.LastSeen.Equal(before.LastSeen) {
		t.Error("a request 10 s after the last one wrote last-seen again")
	}
	// Idle expiry.
	f.clk.Add(31 * time.Minute)
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) || !strings.Contains(err.Error(), "idle") {
		t.Fatalf("after 31 idle minutes: %v", err)
	}
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("an expired session came back: %v", err)
	}

	// Absolute expiry, however active.
	id, _, _, _ = m.Login(ctx, "alice", "alice-password-1", addr)
	for range 49 {
		f.clk.Add(15 * time.Minute)
		if _, _, err := m.Resume(ctx, id); err != nil {
			if !errors.Is(err, auth.ErrNoSession) {
				t.Fatal(err)
			}
			break
		}
	}
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("a session outlived its 12 hours: %v", err)
	}

	// A password change ends password sessions.
	id, _, _, _ = m.Login(ctx, "alice", "alice-password-1", addr)
	f.clk.Add(time.Second)
	if err := f.adm.SetPassword(ctx, "alice", "alice-password-2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("session after a password change: %v", err)
	}

	// PAT sessions carry the PAT's scopes and end with it.
	secret, pat, err := f.adm.CreatePAT(ctx, "alice", "console", []string{"pull"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, sess, _, err = m.Login(ctx, "alice", secret, addr)
	if err != nil || sess.PATID != pat.ID {
		t.Fatalf("PAT login: %+v, %v", sess, err)
	}
	if p, _, err := m.Resume(ctx, id); err != nil || p.Kind != auth.KindPAT || p.CredID != pat.ID {
		t.Fatalf("PAT session principal %+v, %v", p, err)
	}
	if err := f.store.RevokePAT(ctx, pat.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("session of a revoked PAT: %v", err)
	}

	// CI job tokens do not sign in to the console.
	job, _, err := f.svc.IssueJobToken(ctx, auth.JobTokenRequest{Project: "grp/app", JobID: "1", CreateProject: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.Login(ctx, auth.JobTokenUser, job, addr); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("CI job token sign-in: %v", err)
	}

	// Sign-out, and a deleted user's sessions.
	id, _, _, _ = m.Login(ctx, "alice", "alice-password-2", addr)
	if err := m.Logout(ctx, id, addr); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("after sign-out: %v", err)
	}
	if err := m.Logout(ctx, id, addr); err != nil {
		t.Errorf("second sign-out: %v", err)
	}
	id, _, _, _ = m.Login(ctx, "alice", "alice-password-2", addr)
	if err := f.store.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Resume(ctx, id); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("session of a deleted user: %v", err)
	}
	for _, bad := range []string{"", strings.Repeat("x", 200), "made-up"} {
		if _, _, err := m.Resume(ctx, bad); !errors.Is(err, auth.ErrNoSession) {
			t.Errorf("Resume(%.10q): %v", bad, err)
		}
	}
	evs, err := f.store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditSessionLogin})
	if err != nil || len(evs) < 4 {
		t.Errorf("console sign-ins audited: %d, %v", len(evs), err)
	}
}
