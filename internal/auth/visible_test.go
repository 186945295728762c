package auth_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// TestVisibleAgreesWithAllowed: for every kind of caller, the search
// filter Visible grants pull on exactly the repositories Allowed does
// (a repository belongs to the project with the longest covering path).
func TestVisibleAgreesWithAllowed(t *testing.T) {
	f := newFixture(t, auth.Config{})
	ctx := context.Background()
	for _, p := range []struct{ path, vis string }{{"pub", "public"}, {"pub/sec", "private"}, {"priv", "private"}, {"priv2", "private"}} {
		if _, err := f.adm.AddProject(ctx, p.path, p.vis, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if _, err := f.adm.AddUser(ctx, u, "password-"+u+"-123", false); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.SetMember(ctx, "priv", "alice", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetMember(ctx, "pub/sec", "bob", auth.RoleReporter); err != nil {
		t.Fatal(err)
	}
	repos := []string{"pub/a", "pub/sec/a", "pub/secret", "priv/a", "priv2/a", "loose/a"}
	principals := map[string]auth.Principal{
		"anonymous":            {Kind: auth.KindAnonymous},
		"alice":                {Kind: auth.KindUser, Name: "alice", User: "alice"},
		"bob":                  {Kind: auth.KindUser, Name: "bob", User: "bob"},
		"alice pull PAT":       {Kind: auth.KindPAT, Name: "alice", User: "alice", Scopes: []string{"pull"}},
		"alice push PAT":       {Kind: auth.KindPAT, Name: "alice", User: "alice", Scopes: []string{"push"}},
		"alice delete PAT":     {Kind: auth.KindPAT, Name: "alice", User: "alice", Scopes: []string{"delete"}},
		"admin":                {Kind: auth.KindUser, Name: "root", User: "root", Admin: true},
		"admin pull PAT":       {Kind: auth.KindPAT, Name: "root", User: "root", Admin: true, Scopes: []string{"pull"}},
		"admin delete PAT":     {Kind: auth.KindPAT, Name: "root", User: "root", Admin: true, Scopes: []string{"delete"}},
		"job of priv2":         {Kind: auth.KindJob, Project: "priv2", JobID: "1"},
		"job of priv2 (alice)": {Kind: auth.KindJob, Project: "priv2", JobID: "1", User: "alice"},
		"oidc job of pub/sec":  {Kind: auth.KindOIDC, Project: "pub/sec", JobID: "2"},
		"admin token":          {Kind: auth.KindAdminToken, Admin: true},
	}
	for name, p := range principals {
		v, err := f.svc.Visible(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, repo := range repos {
			acts, err := f.svc.Allowed(ctx, p, auth.TypeRepository, repo)
			if err != nil {
				t.Fatal(err)
			}
			want := slices.Contains(acts, auth.ActionPull) || slices.Contains(acts, auth.ActionAll)
			if p.Kind == auth.KindAdminToken {
				want = true // the admin token is all-powerful on the API (Allowed knows no such principal)
			}
			if got := sees(t, f, v, repo); got != want {
				t.Errorf("%s: Visible %+v says %v for %s, Allowed says %v", name, v, got, repo, want)
			}
		}
	}
}

// sees evaluates v for repo as the store's query does.
func sees(t *testing.T, f *fixture, v auth.Visible, repo string) bool {
	t.Helper()
	if v.All || slices.Contains(v.Repositories, repo) {
		return true
	}
	p, err := f.store.FindProject(context.Background(), repo)
	if errors.Is(err, auth.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v.Public && p.Visibility == auth.VisibilityPublic || slices.Contains(v.Projects, p.Path)
}
