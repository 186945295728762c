package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	svc   *auth.Service
	adm   *auth.Admin
	store *sqlite.Store
	clk   *clock
}

func newFixture(t testing.TB, cfg auth.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(t.TempDir(), "hallmark.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := auth.NewTokenSigner(k, "https://reg.example/auth", "reg.example")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	cfg.Issuer, cfg.Realm, cfg.Service, cfg.Now = "https://reg.example/auth", "https://reg.example/auth/token", "reg.example", clk.Now
	svc, err := auth.New(store, signer, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{svc: svc, adm: &auth.Admin{Store: store, Now: clk.Now}, store: store, clk: clk}
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func scopes(s ...string) []auth.Access {
	a, err := auth.ParseScopes(s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestGrantPolicy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{})
	must[auth.User](t)(f.adm.AddUser(ctx, "root", "rootpassword", true))
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	must[auth.User](t)(f.adm.AddUser(ctx, "rita", "ritapassword", false))
	must[auth.User](t)(f.adm.AddUser(ctx, "mallory", "mallorypassword", false))
	must[auth.Project](t)(f.adm.AddProject(ctx, "group/app", auth.VisibilityPrivate, ""))
	must[auth.Project](t)(f.adm.AddProject(ctx, "group/app/special", auth.VisibilityPrivate, ""))
	must[auth.Project](t)(f.adm.AddProject(ctx, "pub", auth.VisibilityPublic, ""))
	must[auth.Project](t)(f.adm.AddProject(ctx, "other", auth.VisibilityPrivate, ""))
	if err := f.store.SetMember(ctx, "group/app", "alice", auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetMember(ctx, "group/app", "rita", auth.RoleReporter); err != nil {
		t.Fatal(err)
	}
	if err := f.store.SetMember(ctx, "other", "alice", auth.RoleMaintainer); err != nil {
		t.Fatal(err)
	}

	login := func(u, p string) auth.Principal {
		t.Helper()
		pr, err := f.svc.Authenticate(ctx, u, p, "10.0.0.1:1")
		if err != nil {
			t.Fatalf("login %s: %v", u, err)
		}
		return pr
	}
	root, alice, rita, mallory := login("root", "rootpassword"), login("alice", "alicepassword"), login("rita", "ritapassword"), login("mallory", "mallorypassword")
	pullPAT, _, err := f.adm.CreatePAT(ctx, "alice", "ro", []string{"pull"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	patPrincipal := login("alice", pullPAT)
	jobSecret, _, err := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "7", User: "rita"})
	if err != nil {
		t.Fatal(err)
	}
	job := login(auth.JobTokenUser, jobSecret)
	anon := auth.Principal{Kind: auth.KindAnonymous}

	tests := []struct {
		name string
		p    auth.Principal
		req  string
		want string // granted, in scope syntax; "" for nothing
	}{
		{"admin everything", root, "repository:any/thing:pull,push,delete", "repository:any/thing:delete,pull,push"},
		{"admin catalog", root, "registry:catalog:*", "registry:catalog:*"},
		{"user no catalog", alice, "registry:catalog:*", ""},
		{"developer push", alice, "repository:group/app:pull,push", "repository:group/app:pull,push"},
		{"developer sub-repository", alice, "repository:group/app/sub/x:pull,push", "repository:group/app/sub/x:pull,push"},
		{"developer no delete (escalation reduced)", alice, "repository:group/app:pull,push,delete", "repository:group/app:pull,push"},
		{"longest project governs", alice, "repository:group/app/special:pull,push", ""},
		{"maintainer delete", alice, "repository:other:delete", "repository:other:delete"},
		{"reporter pull only", rita, "repository:group/app:pull,push", "repository:group/app:pull"},
		{"non-member private", mallory, "repository:group/app:pull", ""},
		{"non-member public pull", mallory, "repository:pub/x:pull,push", "repository:pub/x:pull"},
		{"outside every project", alice, "repository:nowhere:pull,push", ""},
		{"anonymous public", anon, "repository:pub:pull,push", "repository:pub:pull"},
		{"anonymous private", anon, "repository:group/app:pull", ""},
		{"anonymous wildcard", anon, "repository:pub:*", "repository:pub:pull"},
		{"pull PAT cannot push", patPrincipal, "repository:group/app:pull,push", "repository:group/app:pull"},
		{"pull PAT cannot delete", patPrincipal, "repository:other:delete", ""},
		{"job own project", job, "repository:group/app:pull,push", "repository:group/app:pull,push"},
		{"job own sub-repository", job, "repository:group/app/img:pull,push", "repository:group/app/img:pull,push"},
		{"job no delete", job, "repository:group/app:delete", ""},
		{"job other project push refused", job, "repository:other:pull,push", ""},
		{"job nested other project", job, "repository:group/app/special:pull,push", ""},
		{"job pulls public", job, "repository:pub:pull,push", "repository:pub:pull"},
		{"invalid name", root, "repository:UPPER:pull", ""},
		{"unknown type", root, "plugin:x:pull", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := f.svc.Grant(ctx, tt.p, scopes(tt.req), "10.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			var want []auth.Access
			if tt.want != "" {
				want = scopes(tt.want)
			}
			if len(got) == 0 && len(want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Grant(%s) = %v, want %v", tt.req, got, want)
			}
		})
	}
	// Job triggered by rita (reporter of group/app) but job tokens for
	// another project: pull via the triggering user, never push.
	secret2, _, err := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "other", JobID: "8", User: "rita"})
	if err != nil {
		t.Fatal(err)
	}
	job2 := login(auth.JobTokenUser, secret2)
	got, _ := f.svc.Grant(ctx, job2, scopes("repository:group/app:pull,push"), "")
	if !reflect.DeepEqual(got, scopes("repository:group/app:pull")) {
		t.Fatalf("job of other triggered by reporter rita: %v, want pull only", got)
	}
	// Escalation attempts by authenticated principals are audited.
	evs, err := f.store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditDenied, Actor: "alice"})
	if err != nil || len(evs) == 0 {
		t.Fatalf("no auth.denied audit event for alice: %v %v", evs, err)
	}
}

func TestAuthenticateFailures(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{})
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	must[auth.User](t)(f.adm.AddUser(ctx, "bob", "bobpassword1", false))
	must[auth.Project](t)(f.adm.AddProject(ctx, "group/app", auth.VisibilityPrivate, ""))
	pat, _, err := f.adm.CreatePAT(ctx, "alice", "", []string{"push"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	revoked, revRec, _ := f.adm.CreatePAT(ctx, "alice", "", []string{"push"}, time.Hour)
	if err := f.store.RevokePAT(ctx, revRec.ID); err != nil {
		t.Fatal(err)
	}
	job, _, _ := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "1", TTL: time.Minute})

	tests := []struct {
		name, user, pw string
	}{
		{"wrong password", "alice", "nope-nope"},
		{"unknown user", "nobody", "whatever1"},
		{"empty password", "alice", ""},
		{"PAT of another user", "bob", pat},
		{"revoked PAT", "alice", revoked},
		{"unknown PAT", "alice", auth.PATPrefix + "AAAA"},
		{"job token with a user name", "alice", job},
		{"unknown job token", auth.JobTokenUser, auth.JobTokenPrefix + "AAAA"},
		{"OIDC token without a verifier", auth.JobTokenUser, "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := f.svc.Authenticate(ctx, tt.user, tt.pw, "192.0.2.1:1"); !errors.Is(err, auth.ErrBadCredentials) {
				t.Fatalf("Authenticate = %v, want ErrBadCredentials", err)
			}
		})
	}
	if _, err := f.svc.Authenticate(ctx, "alice", pat, "192.0.2.2:1"); err != nil {
		t.Fatalf("valid PAT: %v", err)
	}
	if _, err := f.svc.Authenticate(ctx, auth.JobTokenUser, job, "192.0.2.2:1"); err != nil {
		t.Fatalf("valid job token: %v", err)
	}
	f.clk.Add(2 * time.Minute)
	if _, err := f.svc.Authenticate(ctx, auth.JobTokenUser, job, "192.0.2.2:1"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("expired job token: %v, want ErrBadCredentials", err)
	}
	f.clk.Add(time.Hour)
	if _, err := f.svc.Authenticate(ctx, "alice", pat, "192.0.2.2:1"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("expired PAT: %v, want ErrBadCredentials", err)
	}
	evs, err := f.store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditLoginFailed, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(tests)+2 {
		t.Fatalf("%d auth.failure events, want %d", len(evs), len(tests)+2)
	}
	for _, e := range evs {
		if e.Detail == "" || e.RemoteAddr == "" {
			t.Errorf("audit event without reason or address: %+v", e)
		}
		if e.Actor == pat || e.Actor == job {
			t.Errorf("secret in audit actor: %+v", e)
		}
	}
}

func TestBruteForceThrottled(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{UserLimit: auth.RateLimit{Burst: 5, Every: time.Minute}, AddrLimit: auth.RateLimit{Burst: 8, Every: time.Minute}})
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	for i := 0; i < 5; i++ {
		if _, err := f.svc.Authenticate(ctx, "alice", "guess", "198.51.100.1:1"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	_, err := f.svc.Authenticate(ctx, "alice", "alicepassword", "198.51.100.1:1")
	var te *auth.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("after 5 failures even the right password must be throttled, got %v", err)
	}
	// Per address: a different user from the same address, after the
	// address budget is spent.
	for i := 0; i < 3; i++ {
		f.svc.Authenticate(ctx, "user"+string(rune('a'+i)), "guess", "198.51.100.1:1")
	}
	if _, err := f.svc.Authenticate(ctx, "other", "guess", "198.51.100.1:1"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("address budget: %v, want throttled", err)
	}
	// Another address still works for another user...
	if _, err := f.svc.Authenticate(ctx, "other", "guess", "203.0.113.9:1"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("other address: %v", err)
	}
	// ...and time heals.
	f.clk.Add(time.Minute)
	if _, err := f.svc.Authenticate(ctx, "alice", "alicepassword", "203.0.113.9:1"); err != nil {
		t.Fatalf("after the refill: %v", err)
	}
	evs, _ := f.store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditThrottled})
	if len(evs) == 0 {
		t.Fatal("throttling not audited")
	}
}

func TestRefresh(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{})
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	must[auth.Project](t)(f.adm.AddProject(ctx, "group/app", auth.VisibilityPrivate, ""))
	p, err := f.svc.Authenticate(ctx, "alice", "alicepassword", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := f.svc.IssueToken(ctx, p, nil, true, "127.0.0.1:1")
	if err != nil || resp.RefreshToken == "" {
		t.Fatalf("no refresh token: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, resp.RefreshToken, "127.0.0.1:1"); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := f.svc.Refresh(ctx, resp.AccessToken, "127.0.0.1:1"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("access token accepted as refresh token: %v", err)
	}
	f.clk.Add(2 * time.Second)
	if err := f.adm.SetPassword(ctx, "alice", "newpassword1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, resp.RefreshToken, "127.0.0.1:1"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("refresh token survived a password change: %v", err)
	}
	// Job token: the refresh token dies with the job token.
	secret, jt, _ := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "1", TTL: time.Hour})
	jp, err := f.svc.Authenticate(ctx, auth.JobTokenUser, secret, "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	jr, _ := f.svc.IssueToken(ctx, jp, scopes("repository:group/app:push"), true, "")
	if !jr.Expires.Equal(f.clk.Now().Add(5*time.Minute)) && jr.Expires.After(jt.Expires) {
		t.Fatal("access token outlives the job token")
	}
	if _, err := f.svc.Refresh(ctx, jr.RefreshToken, ""); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokeJobToken(ctx, jt.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Refresh(ctx, jr.RefreshToken, ""); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("refresh with a revoked job token: %v", err)
	}
	// Anonymous principals get no refresh token.
	ar, _ := f.svc.IssueToken(ctx, auth.Principal{Kind: auth.KindAnonymous}, nil, true, "")
	if ar.RefreshToken != "" {
		t.Fatal("refresh token for anonymous")
	}
}

func TestEnsureAdmin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{})
	pw, asked := auth.GeneratePassword(), 0
	password := func(context.Context) (string, error) { asked++; return pw, nil }
	created, err := f.adm.EnsureAdmin(ctx, password)
	if err != nil || !created || asked != 1 {
		t.Fatalf("EnsureAdmin = %v, %v (password asked %d times)", created, err, asked)
	}
	if p, err := f.svc.Authenticate(ctx, "admin", pw, "127.0.0.1:1"); err != nil || !p.Admin {
		t.Fatalf("admin login with the given password: %+v %v", p, err)
	}
	if created, err := f.adm.EnsureAdmin(ctx, password); err != nil || created || asked != 1 {
		t.Fatalf("second EnsureAdmin = %v, %v (password asked %d times); want no-op", created, err, asked)
	}
}

func TestAuditQuery(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{})
	base := time.Unix(1_700_000_000, 0)
	for i, e := range []auth.AuditEvent{
		{Action: auth.AuditPush, Actor: "alice", Repository: "a"},
		{Action: auth.AuditSign, Actor: "alice", Repository: "a"},
		{Action: auth.AuditPush, Actor: "bob", Repository: "b"},
		{Action: auth.AuditDelete, Actor: "alice", Repository: "b"},
	} {
		e.Time = base.Add(time.Duration(i) * time.Hour)
		if err := f.store.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	count := func(q auth.AuditQuery) int {
		evs, err := f.store.QueryAudit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	for _, c := range []struct {
		q    auth.AuditQuery
		want int
	}{
		{auth.AuditQuery{}, 4},
		{auth.AuditQuery{Action: auth.AuditPush}, 2},
		{auth.AuditQuery{Actor: "alice"}, 3},
		{auth.AuditQuery{Repository: "b", Actor: "alice"}, 1},
		{auth.AuditQuery{Since: base.Add(90 * time.Minute)}, 2},
		{auth.AuditQuery{Limit: 1}, 1},
		{auth.AuditQuery{Before: 3}, 2},
	} {
		if got := count(c.q); got != c.want {
			t.Errorf("QueryAudit(%+v) = %d events, want %d", c.q, got, c.want)
		}
	}
}
