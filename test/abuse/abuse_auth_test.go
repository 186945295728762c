package abuse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
)

// authFixture is a private project with a developer (password and PAT)
// and a CI job token.
type authFixture struct {
	Project, User, Password, PAT, JobToken string
}

func newAuthFixture(t *testing.T, e *env) authFixture {
	t.Helper()
	ctx := context.Background()
	adm := e.admin(t)
	f := authFixture{Project: "team/app", User: "alice", Password: "alice-password-1"}
	if _, err := adm.AddProject(ctx, f.Project, auth.VisibilityPrivate, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AddUser(ctx, f.User, f.Password, false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, f.Project, f.User, auth.RoleDeveloper); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.PAT, _, err = adm.CreatePAT(ctx, f.User, "ci", []string{"push"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if f.JobToken, _, err = adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: f.Project, JobID: "7"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkLogins asserts that every credential of f logs in (200) from c
// through base (the server or a proxy in front of it).
func (f authFixture) checkLogins(t *testing.T, c *http.Client, base, service, who string, hdr ...string) {
	t.Helper()
	for _, l := range []struct{ what, user, secret string }{
		{"CI job token", auth.JobTokenUser, f.JobToken},
		{"password", f.User, f.Password},
		{"personal access token", f.User, f.PAT},
	} {
		if status, _ := authTokenLogin(t, c, base, service, l.user, l.secret, f.Project, hdr...); status != http.StatusOK {
			t.Errorf("%s: valid %s login answered %d, want 200", who, l.what, status)
		}
	}
}

// TestJunkBearerFloodLocksNoOneOut (issue 9, defect 4): junk Bearer
// headers on /v2/ (garbage, a malformed JWT, a real access token with its
// signature tampered) are answered 401 but are not failed logins: a flood
// of them from the address every client shares (the TLS proxy's) must not
// make valid job-token, password and PAT logins from it answer 429.
func TestJunkBearerFloodLocksNoOneOut(t *testing.T) {
	e := start(t, nil)
	f := newAuthFixture(t, e)
	c := authClientFrom(t, "127.0.0.1")
	status, real := authTokenLogin(t, c, e.URL, e.Host, f.User, f.Password, f.Project)
	if status != http.StatusOK {
		t.Fatalf("login before the flood: %d", status)
	}
	dot := strings.LastIndexByte(real, '.')
	sig := []byte(real[dot+1:])
	sig[3] ^= 'A' ^ 'B'
	if sig[3] == real[dot+1+3] {
		sig[3] = 'C'
	}
	junk := []string{
		"Bearer x",
		"Bearer not-a-token-at-all",
		"Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA",
		"Bearer " + real[:dot+1] + string(sig),
	}
	for i := range 64 {
		status, _ := authReq(t, c, http.MethodGet, e.URL+"/v2/"+f.Project+"/manifests/latest", junk[i%len(junk)])
		if status != http.StatusUnauthorized {
			t.Fatalf("junk bearer %d answered %d, want 401", i, status)
		}
	}
	f.checkLogins(t, c, e.URL, e.Host, "after 64 junk bearer tokens from the same address")
}

// TestWrongPasswordsDoNotLockUserOut (issue 9, defect 4): ten wrong
// passwords for a user from one address used to block that user's correct
// password and personal access tokens from every address. The guesser's
// address is throttled; the user, from another address, is not.
func TestWrongPasswordsDoNotLockUserOut(t *testing.T) {
	e := start(t, nil)
	f := newAuthFixture(t, e)
	attacker := authClientFrom(t, "127.0.0.2")
	throttled := false
	for i := range 12 {
		status, _ := authTokenLogin(t, attacker, e.URL, e.Host, f.User, fmt.Sprintf("wrong-%d", i), f.Project)
		switch status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			throttled = true
		default:
			t.Fatalf("wrong password %d: %d", i, status)
		}
	}
	if !throttled {
		t.Fatal("12 wrong passwords for one user from one address were never throttled")
	}
	f.checkLogins(t, authClientFrom(t, "127.0.0.3"), e.URL, e.Host, "the user from another address")
	// Tokens cannot be guessed: the user's PAT works even from the
	// guesser's address.
	if status, _ := authTokenLogin(t, attacker, e.URL, e.Host, f.User, f.PAT, f.Project); status != http.StatusOK {
		t.Errorf("PAT from the guesser's address: %d, want 200", status)
	}
}

// TestPasswordGuesserStillThrottled: the fixes for defect 4 keep the
// bounds on guessing. One address guessing one user's password is refused
// (429) after the per-user-and-address budget, even with
// the right password (a 200 would otherwise tell the guesser it found it);
// one address guessing over many user names is refused after the
// per-address budget.
func TestPasswordGuesserStillThrottled(t *testing.T) {
	e := start(t, nil)
	f := newAuthFixture(t, e)
	guesser := authClientFrom(t, "127.0.0.4")
	n := guessUntilThrottled(t, guesser, e.URL, e.Host, f.Project, 20, func(i int) (string, string, []string) {
		return f.User, fmt.Sprintf("guess-%d", i), nil
	})
	if n < 5 {
		t.Fatalf("a password guesser was refused after %d guesses, want after the budget of 10", n)
	}
	if status, _ := authTokenLogin(t, guesser, e.URL, e.Host, f.User, f.Password, f.Project); status != http.StatusTooManyRequests {
		t.Errorf("the right password from the throttled guesser: %d, want 429", status)
	}
	status, _ := authReq(t, guesser, http.MethodGet, e.URL+"/auth/token?service="+e.Host, "Basic "+authBasic(f.User, "again"))
	if status != http.StatusTooManyRequests {
		t.Errorf("another guess: %d, want 429", status)
	}
	if n := spray(t, authClientFrom(t, "127.0.0.5"), e.URL, e.Host, f.Project, 60, nil); n < 20 {
		t.Fatalf("an address guessing over many user names was refused after %d guesses, want after the budget of 30", n)
	}
}

// trustLoopbackProxy configures the server to trust the proxy on
// 127.0.0.1 (authProxy) and nothing else.
func trustLoopbackProxy(c *config.Server) { c.TrustedProxies = []string{"127.0.0.1/32"} }

// guessUntilThrottled makes failed logins from c through base, the i-th
// as login(i) says (user, password, extra headers), until the server
// answers 429, and returns how many it answered 401 before (failing the
// test if it never throttles within max).
func guessUntilThrottled(t *testing.T, c *http.Client, base, service, project string, max int, login func(i int) (string, string, []string)) int {
	t.Helper()
	for i := range max {
		user, password, hdr := login(i)
		status, _ := authTokenLogin(t, c, base, service, user, password, project, hdr...)
		switch status {
		case http.StatusTooManyRequests:
			return i
		case http.StatusUnauthorized:
		default:
			t.Fatalf("wrong password %d: %d", i, status)
		}
	}
	t.Fatalf("%d wrong passwords from one client were never throttled", max)
	return max
}

// spray guesses "password" for ever new user names (guessUntilThrottled),
// with the headers hdr(i) (none when hdr is nil).
func spray(t *testing.T, c *http.Client, base, service, project string, max int, hdr func(i int) []string) int {
	t.Helper()
	return guessUntilThrottled(t, c, base, service, project, max, func(i int) (string, string, []string) {
		var h []string
		if hdr != nil {
			h = hdr(i)
		}
		return fmt.Sprintf("sprayed%d", i), "password", h
	})
}

// TestProxiedClientsHaveTheirOwnBudget (issue 9, defect 4): behind the TLS
// proxy the README recommends every client has the proxy's address; with
// --trusted-proxy the server counts each by the address the proxy forwards,
// so a client spraying wrong passwords is throttled and the others are not.
func TestProxiedClientsHaveTheirOwnBudget(t *testing.T) {
	e := start(t, trustLoopbackProxy)
	f := newAuthFixture(t, e)
	proxy := authProxy(t, e.URL)
	spray(t, authClientFrom(t, "127.0.0.2"), proxy, e.Host, f.Project, 60, nil)
	f.checkLogins(t, authClientFrom(t, "127.0.0.3"), proxy, e.Host, "another client behind the proxy")
	// The audit log names the client, not the proxy.
	status, body := authReq(t, authClientFrom(t, "127.0.0.1"), http.MethodGet, e.URL+"/api/v1/audit?action=auth.failure&limit=5",
		"Basic "+authBasic("admin", e.AdminPassword))
	var audit struct {
		Events []struct {
			RemoteAddr string `json:"remoteAddr"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &audit); err != nil || status != http.StatusOK || len(audit.Events) == 0 {
		t.Fatalf("audit: %d %s", status, body)
	}
	for _, ev := range audit.Events {
		if ev.RemoteAddr != "127.0.0.2" {
			t.Errorf("failed login audited from %q, want the client 127.0.0.2", ev.RemoteAddr)
		}
	}
}

// TestForwardedForCannotEvadeOrFrame: X-Forwarded-For and X-Real-IP are
// honoured only from a trusted proxy, and only the hop that proxy wrote. A
// client that connects directly cannot escape throttling by naming a new
// address in every request, nor get another address throttled by naming
// it; behind the proxy, what the client puts in the header is ignored too.
func TestForwardedForCannotEvadeOrFrame(t *testing.T) {
	e := start(t, trustLoopbackProxy)
	f := newAuthFixture(t, e)
	proxy := authProxy(t, e.URL)
	rotating := func(i int) []string {
		a := fmt.Sprintf("10.9.%d.%d", i/250, i%250+1)
		return []string{"X-Forwarded-For", a, "X-Real-IP", a}
	}
	// Directly, rotating the headers: throttled as itself all the same.
	if n := spray(t, authClientFrom(t, "127.0.0.6"), e.URL, e.Host, f.Project, 60, rotating); n < 20 {
		t.Errorf("throttled after %d guesses; want the whole budget of 30 first", n)
	}
	// Directly, naming a victim: the victim is not throttled.
	framing := func(int) []string { return []string{"X-Forwarded-For", "127.0.0.8", "X-Real-IP", "127.0.0.8"} }
	spray(t, authClientFrom(t, "127.0.0.7"), e.URL, e.Host, f.Project, 60, framing)
	f.checkLogins(t, authClientFrom(t, "127.0.0.8"), e.URL, e.Host, "the framed address, directly")
	// Through the proxy, with the same tricks: the proxy's hop decides.
	spray(t, authClientFrom(t, "127.0.0.9"), proxy, e.Host, f.Project, 60, rotating)
	viaProxyFraming := func(int) []string { return []string{"X-Forwarded-For", "127.0.0.11"} }
	spray(t, authClientFrom(t, "127.0.0.10"), proxy, e.Host, f.Project, 60, viaProxyFraming)
	f.checkLogins(t, authClientFrom(t, "127.0.0.11"), proxy, e.Host, "the framed address, through the proxy")
	// The proxy itself (127.0.0.1) was never charged: a direct client
	// without forwarding headers from there still logs in.
	f.checkLogins(t, authClientFrom(t, "127.0.0.1"), e.URL, e.Host, "the proxy's own address")
}

func authBasic(user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.SetBasicAuth(user, password)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// authRevoke posts body to the job-token revocation endpoint.
func authRevoke(t *testing.T, c *http.Client, e *env, authz, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.URL+"/api/v1/ci/job-tokens/revoke", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// TestRevokedJobTokenStopsAtOnce (issue 9, defect 8): a CI job token
// revoked at the end of its job can no longer log in, and the access token
// it obtained (remembered by the server's verified-token cache) and its
// refresh token are refused at once.
func TestRevokedJobTokenStopsAtOnce(t *testing.T) {
	e := start(t, nil)
	f := newAuthFixture(t, e)
	c := authClientFrom(t, "127.0.0.1")
	q := url.Values{"service": {e.Host}, "scope": {"repository:" + f.Project + ":pull,push"}, "offline_token": {"true"}}
	status, body := authReq(t, c, http.MethodGet, e.URL+"/auth/token?"+q.Encode(), "Basic "+authBasic(auth.JobTokenUser, f.JobToken))
	if status != http.StatusOK {
		t.Fatalf("job token login: %d %s", status, body)
	}
	var tok struct {
		Token        string `json:"token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.RefreshToken == "" {
		t.Fatalf("token response: %s", body)
	}
	tags := e.URL + "/v2/" + f.Project + "/tags/list"
	for range 3 { // verified once, then served from the cache
		if status, _ := authReq(t, c, http.MethodGet, tags, "Bearer "+tok.Token); status == http.StatusUnauthorized {
			t.Fatalf("the job's access token before revocation: %d", status)
		}
	}
	// The job's last step: it revokes its own token.
	status, reply := authRevoke(t, c, e, "", `{"token":"`+f.JobToken+`"}`)
	if status != http.StatusOK || !strings.Contains(reply, `"revoked":true`) {
		t.Fatalf("revoke: %d %s", status, reply)
	}
	if status, _ := authTokenLogin(t, c, e.URL, e.Host, auth.JobTokenUser, f.JobToken, f.Project); status != http.StatusUnauthorized {
		t.Errorf("login with the revoked job token: %d, want 401", status)
	}
	if status, _ := authReq(t, c, http.MethodGet, tags, "Bearer "+tok.Token); status != http.StatusUnauthorized {
		t.Errorf("its cached access token after revocation: %d, want 401", status)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "service": {e.Host}}
	resp, err := c.PostForm(e.URL+"/auth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("its refresh token after revocation: %d, want 401", resp.StatusCode)
	}
	if status, reply := authRevoke(t, c, e, "", `{"token":"`+f.JobToken+`"}`); status != http.StatusOK {
		t.Errorf("revoking again: %d %s, want 200 (idempotent)", status, reply)
	}
}

// TestJobTokenRevocationAbuse attacks the revocation endpoint: callers
// without rights on the token's project, a sibling job, junk and floods of
// unknown tokens, oversized bodies.
func TestJobTokenRevocationAbuse(t *testing.T) {
	e := start(t, nil)
	f := newAuthFixture(t, e)
	ctx := context.Background()
	adm := e.admin(t)
	if _, err := adm.AddProject(ctx, "other/app", auth.VisibilityPrivate, ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []struct {
		name, project string
		role          auth.Role
	}{{"mallory", "other/app", auth.RoleMaintainer}, {"rita", f.Project, auth.RoleReporter}, {"maria", f.Project, auth.RoleMaintainer}} {
		if _, err := adm.AddUser(ctx, u.name, u.name+"-password", false); err != nil {
			t.Fatal(err)
		}
		if err := adm.Store.SetMember(ctx, u.project, u.name, u.role); err != nil {
			t.Fatal(err)
		}
	}
	victim, rec, err := adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: f.Project, JobID: "99"})
	if err != nil {
		t.Fatal(err)
	}
	_, otherRec, err := adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "other/app", JobID: "5"})
	if err != nil {
		t.Fatal(err)
	}
	c := authClientFrom(t, "127.0.0.12")
	byID := fmt.Sprintf(`{"id":%d}`, rec.ID)
	for _, tc := range []struct {
		who, authz string
		want       int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"a maintainer of another project", "Basic " + authBasic("mallory", "mallory-password"), http.StatusNotFound},
		{"a reporter of the project", "Basic " + authBasic("rita", "rita-password"), http.StatusForbidden},
		{"a developer of the project", "Basic " + authBasic(f.User, f.Password), http.StatusForbidden},
		{"a sibling job of the project", "Basic " + authBasic(auth.JobTokenUser, f.JobToken), http.StatusForbidden},
		{"a junk bearer", "Bearer not-the-admin-token", http.StatusUnauthorized},
	} {
		if status, reply := authRevoke(t, c, e, tc.authz, byID); status != tc.want {
			t.Errorf("%s revoking job token %d: %d %s, want %d", tc.who, rec.ID, status, reply, tc.want)
		}
	}
	if status, _ := authTokenLogin(t, c, e.URL, e.Host, auth.JobTokenUser, victim, f.Project); status != http.StatusOK {
		t.Fatalf("the victim job token after the refused revocations: %d", status)
	}
	if status, reply := authRevoke(t, c, e, "Basic "+authBasic("maria", "maria-password"), fmt.Sprintf(`{"id":%d}`, otherRec.ID)); status != http.StatusNotFound {
		t.Errorf("a maintainer revoking another project's job token: %d %s, want 404", status, reply)
	}
	for _, body := range []string{`{}`, `{"id":1,"token":"hmjob_x"}`, `{"token":"not-a-job-token"}`, `{"id":-1}`, `[]`, `{"id":"1"}`, `{"token":"hmjob_x","extra":1}`,
		`{"token":"hmjob_` + strings.Repeat("A", 70<<10) + `"}`} {
		if status, _ := authRevoke(t, c, e, "", body); status != http.StatusBadRequest {
			t.Errorf("body %.40q: %d, want 400", body, status)
		}
	}
	// A flood of unknown tokens is throttled per address like failed
	// logins; other clients are not affected.
	throttled := false
	for i := range 60 {
		status, _ := authRevoke(t, c, e, "", fmt.Sprintf(`{"token":"hmjob_unknown%d"}`, i))
		if status == http.StatusTooManyRequests {
			throttled = true
			break
		}
		if status != http.StatusNotFound {
			t.Fatalf("unknown token %d: %d, want 404", i, status)
		}
	}
	if !throttled {
		t.Error("60 unknown tokens from one address were never throttled")
	}
	other := authClientFrom(t, "127.0.0.13")
	if status, reply := authRevoke(t, other, e, "Basic "+authBasic("maria", "maria-password"), byID); status != http.StatusOK {
		t.Errorf("the project's maintainer from another address: %d %s, want 200", status, reply)
	}
	if status, _ := authTokenLogin(t, other, e.URL, e.Host, auth.JobTokenUser, victim, f.Project); status != http.StatusUnauthorized {
		t.Errorf("login with the token the maintainer revoked: %d, want 401", status)
	}
}
