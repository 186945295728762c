package auth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// TestPasswordBudgets: a guesser locks out only its own address; the
// user's budget over all addresses bounds guessing from many addresses
// without locking the user out where they logged in before; token
// failures drain no user's budget.
func TestPasswordBudgets(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{
		UserLimit:      auth.RateLimit{Burst: 3, Every: time.Minute},
		UserTotalLimit: auth.RateLimit{Burst: 6, Every: time.Minute},
		AddrLimit:      auth.RateLimit{Burst: 100, Every: time.Second},
	})
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	pat, _, err := f.adm.CreatePAT(ctx, "alice", "", []string{"pull"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	login := func(pw, addr string) error {
		_, err := f.svc.Authenticate(ctx, "alice", pw, addr)
		return err
	}
	if err := login("alicepassword", "192.0.2.1"); err != nil { // alice works from here
		t.Fatal(err)
	}
	for i := range 3 {
		if err := login("guess", "198.51.100.1"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if err := login("alicepassword", "198.51.100.1"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("the guesser's address after its budget: %v, want throttled", err)
	}
	if err := login(pat, "198.51.100.1"); err != nil {
		t.Fatalf("a PAT from the guesser's address: %v (tokens cannot be guessed; no user budget applies)", err)
	}
	if err := login("alicepassword", "203.0.113.1"); err != nil {
		t.Fatalf("alice from another address: %v", err)
	}
	// Three more guessers spend the rest of alice's total budget (6).
	for _, a := range []string{"198.51.100.2", "198.51.100.3", "198.51.100.4"} {
		if err := login("guess", a); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("guess from %s: %v", a, err)
		}
	}
	if err := login("guess", "198.51.100.5"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("a new address after the user's total budget: %v, want throttled", err)
	}
	if err := login("alicepassword", "192.0.2.1"); err != nil {
		t.Fatalf("alice where she logged in before: %v (the total budget must not lock her out there)", err)
	}
	f.clk.Add(time.Minute)
	if err := login("alicepassword", "198.51.100.6"); err != nil {
		t.Fatalf("a new address after the refill: %v", err)
	}
	// Unknown tokens under alice's name: the address pays, alice does not.
	for i := range 20 {
		if err := login(fmt.Sprintf("%sbogus%d", auth.PATPrefix, i), "198.51.100.7"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("bogus PAT %d: %v", i, err)
		}
	}
	if err := login("alicepassword", "198.51.100.7"); err != nil {
		t.Fatalf("alice's password after bogus PATs from her address: %v", err)
	}
}

// TestJunkBearerIsNotAFailedLogin: rejected bearer tokens on /v2/ are
// answered 401 and charge no budget; their audit records are sampled per
// address.
func TestJunkBearerIsNotAFailedLogin(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{AddrLimit: auth.RateLimit{Burst: 2, Every: time.Hour}})
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	served := 0
	guard := f.svc.Guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }),
		func(string) (auth.Endpoint, error) {
			return auth.Endpoint{Kind: auth.EndpointManifests, Repository: "group/app"}, nil
		})
	for i := range 50 {
		r := httptest.NewRequest(http.MethodGet, "/v2/group/app/manifests/latest", nil)
		r.RemoteAddr = "198.51.100.1:1"
		r.Header.Set("Authorization", fmt.Sprintf("Bearer eyJhbGciOiJFUzI1NiJ9.e30.junk%d", i))
		w := httptest.NewRecorder()
		guard.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Header().Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("junk token %d: %d %q", i, w.Code, w.Header().Get("WWW-Authenticate"))
		}
	}
	if served != 0 {
		t.Fatal("a junk token reached the registry")
	}
	if _, err := f.svc.Authenticate(ctx, "alice", "alicepassword", "198.51.100.1"); err != nil {
		t.Fatalf("login from the address that sent 50 junk tokens: %v", err)
	}
	evs, err := f.store.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditInvalidToken, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || len(evs) > 5 {
		t.Fatalf("%d audit records for 50 junk tokens from one address, want 1-5", len(evs))
	}
}

// TestAccessTokenCacheRefusesWhatVerifyRefuses: a remembered access token
// is refused once expired, and once the PAT or job token it was issued for
// is revoked: at once when revoked through the service, within
// CredentialRecheck when revoked in the store behind the service's back
// (the CLI, another replica).
func TestAccessTokenCacheRefusesWhatVerifyRefuses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{CredentialRecheck: 10 * time.Second})
	must[auth.User](t)(f.adm.AddUser(ctx, "alice", "alicepassword", false))
	must[auth.Project](t)(f.adm.AddProject(ctx, "group/app", auth.VisibilityPrivate, ""))
	token := func(user, secret string) string {
		t.Helper()
		p, err := f.svc.Authenticate(ctx, user, secret, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := f.svc.IssueToken(ctx, p, scopes("repository:group/app:pull"), false, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		return resp.Token
	}
	verify := func(tok string) error {
		t.Helper()
		_, err := f.svc.VerifyAccess(ctx, tok)
		return err
	}

	// Revoked through the service: refused at once, although remembered.
	job1, rec1, _ := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "1"})
	t1 := token(auth.JobTokenUser, job1)
	if err := verify(t1); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.RevokeJobToken(ctx, rec1.ID, auth.Principal{Kind: auth.KindAdminToken}, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if err := verify(t1); !errors.Is(err, auth.ErrTokenRevoked) {
		t.Fatalf("access token of a job token revoked through the service: %v, want ErrTokenRevoked", err)
	}

	// Revoked in the store directly: refused after CredentialRecheck.
	job2, rec2, _ := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "2"})
	t2 := token(auth.JobTokenUser, job2)
	pat, patRec, _ := f.adm.CreatePAT(ctx, "alice", "", []string{"pull"}, time.Hour)
	t3 := token("alice", pat)
	for _, tok := range []string{t2, t3} {
		if err := verify(tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.RevokeJobToken(ctx, rec2.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.store.RevokePAT(ctx, patRec.ID); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(10 * time.Second)
	for _, tok := range []string{t2, t3} {
		if err := verify(tok); !errors.Is(err, auth.ErrTokenRevoked) {
			t.Fatalf("access token after its credential was revoked in the store and CredentialRecheck passed: %v", err)
		}
		if err := verify(tok); !errors.Is(err, auth.ErrTokenRevoked) {
			t.Fatalf("refusal not remembered: %v", err)
		}
	}

	// Expiry: a remembered token is refused after exp plus the leeway.
	t4 := token("alice", "alicepassword")
	if err := verify(t4); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(5*time.Minute + 9*time.Second)
	if err := verify(t4); err != nil {
		t.Fatalf("within the leeway: %v", err)
	}
	f.clk.Add(2 * time.Second)
	if err := verify(t4); !errors.Is(err, auth.ErrTokenExpired) {
		t.Fatalf("remembered token after its expiry: %v, want ErrTokenExpired", err)
	}

	// Tampered: refused every time (never remembered).
	t5 := token("alice", "alicepassword")
	bad := t5[:len(t5)-4] + "AAAA"
	if bad == t5 {
		bad = t5[:len(t5)-4] + "BBBB"
	}
	for range 2 {
		if err := verify(bad); !errors.Is(err, auth.ErrTokenInvalid) {
			t.Fatalf("tampered token: %v", err)
		}
	}
}
