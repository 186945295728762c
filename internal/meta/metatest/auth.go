package metatest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

var t0 = time.Unix(1700000000, 123)

func mustUser(t *testing.T, s auth.Store, name string, admin bool) auth.User {
	t.Helper()
	u, err := s.CreateUser(ctx, auth.User{Name: name, PasswordHash: "hash-" + name, Admin: admin, PasswordChangedAt: t0, Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mustProject(t *testing.T, s auth.Store, path string) auth.Project {
	t.Helper()
	p, err := s.CreateProject(ctx, auth.Project{Path: path, Visibility: auth.VisibilityPrivate, Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func testUsers(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	alice := mustUser(t, s, "alice", true)
	mustUser(t, s, "Bob", false)
	if alice.ID == 0 {
		t.Fatal("CreateUser returned no ID")
	}
	if _, err := s.CreateUser(ctx, auth.User{Name: "alice", PasswordHash: "x"}); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("second alice: %v", err)
	}
	u, err := s.GetUser(ctx, "alice")
	if err != nil || u.ID != alice.ID || !u.Admin || u.PasswordHash != "hash-alice" || !u.Created.Equal(t0) || !u.PasswordChangedAt.Equal(t0) {
		t.Fatalf("GetUser = %+v, %v", u, err)
	}
	if _, err := s.GetUser(ctx, "carol"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("GetUser(carol): %v", err)
	}
	if err := s.SetPassword(ctx, "alice", "new", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.GetUser(ctx, "alice"); u.PasswordHash != "new" || !u.PasswordChangedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("after SetPassword: %+v", u)
	}
	if err := s.SetPassword(ctx, "carol", "x", t0); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("SetPassword(carol): %v", err)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 2 || users[0].Name != "Bob" || users[1].Name != "alice" {
		t.Fatalf("ListUsers (byte order) = %+v, %v", users, err)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("DeleteUser twice: %v", err)
	}
}

func testProjectsAndMembers(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	mustUser(t, s, "alice", false)
	mustUser(t, s, "bob", false)
	grp := mustProject(t, s, "group")
	app := mustProject(t, s, "group/app")
	if _, err := s.CreateProject(ctx, auth.Project{Path: "group", Visibility: auth.VisibilityPublic}); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("second project group: %v", err)
	}
	for repo, want := range map[string]string{"group/app": "group/app", "group/app/sub/x": "group/app", "group/other": "group", "group": "group", "group/application": "group"} {
		p, err := s.FindProject(ctx, repo)
		if err != nil || p.Path != want {
			t.Errorf("FindProject(%s) = %q, %v; want %q", repo, p.Path, err, want)
		}
	}
	for _, repo := range []string{"groupie", "other/group", "", "gro"} {
		if p, err := s.FindProject(ctx, repo); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("FindProject(%q) = %+v, %v", repo, p, err)
		}
	}
	if p, err := s.GetProject(ctx, "group/app"); err != nil || p.ID != app.ID || p.Visibility != auth.VisibilityPrivate || !p.Created.Equal(t0) {
		t.Fatalf("GetProject = %+v, %v", p, err)
	}
	if err := s.SetProjectIssuer(ctx, "group/app", "https://gitlab.example"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.GetProject(ctx, "group/app"); p.OIDCIssuer != "https://gitlab.example" {
		t.Fatalf("issuer %q", p.OIDCIssuer)
	}
	if err := s.SetProjectIssuer(ctx, "nope", "x"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("SetProjectIssuer(nope): %v", err)
	}
	if ps, err := s.ListProjects(ctx); err != nil || len(ps) != 2 || ps[0].Path != "group" {
		t.Fatalf("ListProjects = %+v, %v", ps, err)
	}

	if err := s.SetMember(ctx, "group/app", "alice", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, "group/app", "alice", auth.RoleMaintainer); err != nil { // change the role
		t.Fatal(err)
	}
	if err := s.SetMember(ctx, "group/app", "bob", auth.RoleReporter); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][2]string{{"nope", "alice"}, {"group/app", "carol"}} {
		if err := s.SetMember(ctx, c[0], c[1], auth.RoleReporter); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("SetMember(%v): %v", c, err)
		}
	}
	if r, err := s.MemberRole(ctx, app.ID, "alice"); err != nil || r != auth.RoleMaintainer {
		t.Fatalf("MemberRole = %q, %v", r, err)
	}
	if _, err := s.MemberRole(ctx, grp.ID, "alice"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("MemberRole in another project: %v", err)
	}
	ms, err := s.ListMembers(ctx, "group/app")
	if err != nil || len(ms) != 2 {
		t.Fatalf("ListMembers = %+v, %v", ms, err)
	}
	if err := s.RemoveMember(ctx, "group/app", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, "group/app", "bob"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RemoveMember twice: %v", err)
	}
	// Deleting a user or a project takes the memberships with it.
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := s.ListMembers(ctx, "group/app"); len(ms) != 0 {
		t.Fatalf("members after the user's deletion: %+v", ms)
	}
	if err := s.DeleteProject(ctx, "group/app"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProject(ctx, "group/app"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("DeleteProject twice: %v", err)
	}
	if p, _ := s.FindProject(ctx, "group/app/x"); p.Path != "group" {
		t.Fatalf("FindProject after delete: %+v", p)
	}
}

func testTokens(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	mustUser(t, s, "alice", false)
	mustProject(t, s, "group/app")
	pat, err := s.CreatePAT(ctx, auth.PAT{User: "alice", Name: "laptop", Scopes: []string{"pull", "push"}, Hash: "h1", Expires: t0.Add(time.Hour), Created: t0})
	if err != nil || pat.ID == 0 {
		t.Fatalf("CreatePAT = %+v, %v", pat, err)
	}
	if _, err := s.CreatePAT(ctx, auth.PAT{User: "carol", Hash: "h2", Expires: t0, Created: t0}); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreatePAT for an unknown user: %v", err)
	}
	for _, get := range []func() (auth.PAT, error){
		func() (auth.PAT, error) { return s.PATByHash(ctx, "h1") },
		func() (auth.PAT, error) { return s.GetPAT(ctx, pat.ID) },
	} {
		p, err := get()
		if err != nil || p.User != "alice" || p.Name != "laptop" || !slices.Equal(p.Scopes, []string{"pull", "push"}) || p.Revoked ||
			!p.Expires.Equal(t0.Add(time.Hour)) || !p.Created.Equal(t0) || !p.LastUsed.IsZero() {
			t.Fatalf("PAT = %+v, %v", p, err)
		}
	}
	if _, err := s.PATByHash(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("PATByHash(nope): %v", err)
	}
	mustUser(t, s, "bob", false)
	if _, err := s.CreatePAT(ctx, auth.PAT{User: "bob", Scopes: []string{"pull"}, Hash: "h3", Expires: t0, Created: t0}); err != nil {
		t.Fatal(err)
	}
	if ps, err := s.ListPATs(ctx, "alice"); err != nil || len(ps) != 1 {
		t.Fatalf("ListPATs(alice) = %+v, %v", ps, err)
	}
	if ps, err := s.ListPATs(ctx, ""); err != nil || len(ps) != 2 {
		t.Fatalf("ListPATs() = %+v, %v", ps, err)
	}
	if err := s.RevokePAT(ctx, pat.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokePAT(ctx, pat.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RevokePAT twice: %v", err)
	}
	if p, _ := s.GetPAT(ctx, pat.ID); !p.Revoked {
		t.Fatal("revoked PAT reads as not revoked")
	}

	job, err := s.CreateJobToken(ctx, auth.JobToken{Project: "group/app", JobID: "42", Pipeline: "7", User: "alice", Hash: "j1", Expires: t0.Add(time.Hour), Created: t0})
	if err != nil || job.ID == 0 {
		t.Fatalf("CreateJobToken = %+v, %v", job, err)
	}
	if _, err := s.CreateJobToken(ctx, auth.JobToken{Project: "nope", JobID: "1", Hash: "j2", Expires: t0, Created: t0}); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("CreateJobToken for an unknown project: %v", err)
	}
	for _, get := range []func() (auth.JobToken, error){
		func() (auth.JobToken, error) { return s.JobTokenByHash(ctx, "j1") },
		func() (auth.JobToken, error) { return s.GetJobToken(ctx, job.ID) },
	} {
		j, err := get()
		if err != nil || j.Project != "group/app" || j.JobID != "42" || j.Pipeline != "7" || j.User != "alice" || j.Revoked || !j.Expires.Equal(t0.Add(time.Hour)) {
			t.Fatalf("job token = %+v, %v", j, err)
		}
	}
	if err := s.RevokeJobToken(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeJobToken(ctx, job.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("RevokeJobToken twice: %v", err)
	}
	// Job tokens go with their project, PATs with their user.
	if err := s.DeleteProject(ctx, "group/app"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetJobToken(ctx, job.ID); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("job token outlived its project: %v", err)
	}
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PATByHash(ctx, "h3"); !errors.Is(err, auth.ErrNotFound) {
		t.Fatalf("PAT outlived its user: %v", err)
	}
}

func testAudit(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	for i := 0; i < 6; i++ {
		e := auth.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), Action: []string{"push", "pull"}[i%2], Actor: fmt.Sprint("user", i%3),
			ActorKind: "user", Repository: []string{"a", "b"}[i/3], Reference: "v1", Digest: "sha256:x", RemoteAddr: "127.0.0.1", Detail: fmt.Sprint("event ", i)}
		if err := s.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s.QueryAudit(ctx, auth.AuditQuery{})
	if err != nil || len(all) != 6 || all[0].Detail != "event 5" || all[5].Detail != "event 0" {
		t.Fatalf("QueryAudit() = %d, %v (newest first)", len(all), err)
	}
	e := all[5]
	if e.ID == 0 || !e.Time.Equal(t0) || e.Action != "push" || e.Actor != "user0" || e.ActorKind != "user" || e.Repository != "a" ||
		e.Reference != "v1" || e.Digest != "sha256:x" || e.RemoteAddr != "127.0.0.1" {
		t.Fatalf("event %+v", e)
	}
	for _, c := range []struct {
		q    auth.AuditQuery
		want []string
	}{
		{auth.AuditQuery{Action: "pull"}, []string{"event 5", "event 3", "event 1"}},
		{auth.AuditQuery{Repository: "a", Action: "push"}, []string{"event 2", "event 0"}},
		{auth.AuditQuery{Actor: "user1"}, []string{"event 4", "event 1"}},
		{auth.AuditQuery{Since: t0.Add(4 * time.Minute)}, []string{"event 5", "event 4"}},
		{auth.AuditQuery{Limit: 2}, []string{"event 5", "event 4"}},
		{auth.AuditQuery{Before: all[1].ID, Limit: 2}, []string{"event 3", "event 2"}},
		{auth.AuditQuery{Action: "delete"}, nil},
	} {
		got, err := s.QueryAudit(ctx, c.q)
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, e := range got {
			details = append(details, e.Detail)
		}
		if !slices.Equal(details, c.want) {
			t.Errorf("QueryAudit(%+v) = %v, want %v", c.q, details, c.want)
		}
	}
}
