package web_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// rawDB opens the server's SQLite database behind its back (to age a
// session: sessions are checked against the database, not memory).
func rawDB(t *testing.T, e *consoleEnv) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(e.DataDir, "hallmark.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func signedIn(t *testing.T, v *visitor, user string) {
	t.Helper()
	r := v.get("/ui/")
	if !strings.Contains(r.Body, `id="signed-in-user">`+user+`<`) {
		t.Fatalf("not signed in as %s:\n%s", user, r.Body)
	}
}

func signedOut(t *testing.T, v *visitor) {
	t.Helper()
	r := v.get("/ui/")
	if strings.Contains(r.Body, `id="signed-in-user"`) || !strings.Contains(r.Body, `href="/ui/login"`) {
		t.Fatalf("still signed in:\n%s", r.Body)
	}
}

// TestConsoleSignIn: the session cookie's attributes; wrong passwords and
// CI job tokens are refused; a PAT signs in; sign-out ends the session
// for good.
func TestConsoleSignIn(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	r := v.login("alice")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/ui/" {
		t.Fatalf("sign-in: HTTP %d, Location %q", r.Status, r.Header.Get("Location"))
	}
	var set string
	for _, c := range r.Header.Values("Set-Cookie") {
		if strings.HasPrefix(c, "hallmark_session=") {
			set = c
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie %q lacks %s", set, attr)
		}
	}
	if strings.Contains(set, "Secure") {
		t.Errorf("session cookie %q is Secure on a plain-HTTP server", set)
	}
	signedIn(t, v, "alice")
	old := v.sessionCookie().Value

	// Sign out: POST with the session's CSRF token; the old id is dead.
	page := v.get("/ui/")
	out := v.do(http.MethodPost, "/ui/logout", url.Values{"csrf": {csrf(t, page.Body)}}, "Origin", e.URL, "Sec-Fetch-Site", "same-origin")
	if out.Status != http.StatusSeeOther {
		t.Fatalf("sign-out: HTTP %d\n%s", out.Status, out.Body)
	}
	signedOut(t, v)
	replay := e.visitor(t)
	u, _ := url.Parse(e.URL + "/ui/")
	replay.jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: old, Path: "/ui/"}})
	signedOut(t, replay)

	// Wrong password: 401 with the form again; nothing set.
	bad := e.visitor(t)
	p := bad.get("/ui/login")
	r = bad.do(http.MethodPost, "/ui/login", url.Values{"user": {"alice"}, "password": {"wrong"}, "csrf": {loginCSRF(t, p.Body)}})
	wantStatus(t, "wrong password", r, http.StatusUnauthorized, "Invalid user name")
	if bad.sessionCookie() != nil {
		t.Error("a failed sign-in set a session cookie")
	}

	// A PAT signs in; a CI job token does not.
	pat := createPAT(t, e, "alice")
	pv := e.visitor(t)
	p = pv.get("/ui/login")
	r = pv.do(http.MethodPost, "/ui/login", url.Values{"user": {"alice"}, "password": {pat}, "csrf": {loginCSRF(t, p.Body)}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("PAT sign-in: HTTP %d\n%s", r.Status, r.Body)
	}
	signedIn(t, pv, "alice")
	jv := e.visitor(t)
	p = jv.get("/ui/login")
	r = jv.do(http.MethodPost, "/ui/login", url.Values{"user": {"gitlab-ci-token"}, "password": {"hmjob_" + strings.Repeat("x", 43)}, "csrf": {loginCSRF(t, p.Body)}})
	wantStatus(t, "CI job token sign-in", r, http.StatusUnauthorized)

	// After sign-in the visitor lands where it was going, never elsewhere.
	for next, want := range map[string]string{"/ui/repo/demo/app": "/ui/repo/demo/app", "https://evil.example/": "/ui/", "//evil.example/ui/": "/ui/", "/ui/\\evil": "/ui/"} {
		nv := e.visitor(t)
		p := nv.get("/ui/login")
		r := nv.do(http.MethodPost, "/ui/login", url.Values{"user": {"alice"}, "password": {e.Passwords["alice"]}, "csrf": {loginCSRF(t, p.Body)}, "next": {next}})
		if r.Header.Get("Location") != want {
			t.Errorf("next=%q: redirected to %q, want %q", next, r.Header.Get("Location"), want)
		}
	}
}

func createPAT(t *testing.T, e *consoleEnv, user string) string {
	t.Helper()
	secret, _, err := e.adminTool(t).CreatePAT(context.Background(), user, "console", []string{"pull"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestConsoleCSRF: a form without the session's token, with a forged one,
// or from another site is refused, and changes nothing.
func TestConsoleCSRF(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	v.login("alice")
	page := v.get("/ui/")
	tok := csrf(t, page.Body)
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  []string
	}{
		{"no token", url.Values{}, nil},
		{"forged token", url.Values{"csrf": {strings.Repeat("A", 43)}}, nil},
		{"token of another session", url.Values{"csrf": {otherToken(t, e)}}, nil},
		{"cross-site POST", url.Values{"csrf": {tok}}, []string{"Sec-Fetch-Site", "cross-site"}},
		{"foreign origin", url.Values{"csrf": {tok}}, []string{"Origin", "https://evil.example"}},
		{"same-site but not same-origin", url.Values{"csrf": {tok}}, []string{"Sec-Fetch-Site", "same-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.do(http.MethodPost, "/ui/logout", tc.form, tc.hdr...)
			wantStatus(t, "logout", r, http.StatusForbidden, "CSRF")
			signedIn(t, v, "alice")
		})
	}
	// Sign-in form: the token must match the pre-session cookie.
	lv := e.visitor(t)
	lp := lv.get("/ui/login")
	for name, form := range map[string]url.Values{
		"no token":     {"user": {"alice"}, "password": {e.Passwords["alice"]}},
		"forged token": {"user": {"alice"}, "password": {e.Passwords["alice"]}, "csrf": {"forged"}},
	} {
		r := lv.do(http.MethodPost, "/ui/login", form)
		wantStatus(t, "sign-in, "+name, r, http.StatusForbidden)
	}
	r := lv.do(http.MethodPost, "/ui/login", url.Values{"user": {"alice"}, "password": {e.Passwords["alice"]}, "csrf": {loginCSRF(t, lp.Body)}},
		"Sec-Fetch-Site", "cross-site")
	wantStatus(t, "cross-site sign-in", r, http.StatusForbidden)
	if lv.sessionCookie() != nil {
		t.Error("a refused sign-in set a session cookie")
	}
	// Without the login cookie (another browser), the form's token is useless.
	other := e.visitor(t)
	r = other.do(http.MethodPost, "/ui/login", url.Values{"user": {"alice"}, "password": {e.Passwords["alice"]}, "csrf": {loginCSRF(t, lp.Body)}})
	wantStatus(t, "sign-in with another browser's token", r, http.StatusForbidden)
}

func otherToken(t *testing.T, e *consoleEnv) string {
	o := e.visitor(t)
	o.login("bob")
	return csrf(t, o.get("/ui/").Body)
}

// TestConsoleSessionExpiry: idle and absolute expiry, a password change
// and a revoked PAT end sessions; the visitor is told and is anonymous.
func TestConsoleSessionExpiry(t *testing.T) {
	e := sharedEnv(t)
	db := rawDB(t, e)
	age := func(v *visitor, col string, by time.Duration) {
		t.Helper()
		sum := sha256.Sum256([]byte(v.sessionCookie().Value))
		res, err := db.Exec(`UPDATE sessions SET `+col+` = `+col+` - ? WHERE id_hash = ?`, by.Nanoseconds(), hex.EncodeToString(sum[:]))
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("no session row to age")
		}
	}
	idle := e.visitor(t)
	idle.login("alice")
	signedIn(t, idle, "alice")
	age(idle, "last_seen_at", 31*time.Minute)
	r := idle.get("/ui/")
	wantStatus(t, "idle session", r, http.StatusOK, "Your session has ended")
	signedOut(t, idle)

	absolute := e.visitor(t)
	absolute.login("alice")
	age(absolute, "expires_at", 13*time.Hour)
	signedOut(t, absolute)

	// Still fresh after 20 idle minutes (and the visit counts as activity).
	fresh := e.visitor(t)
	fresh.login("alice")
	age(fresh, "last_seen_at", 20*time.Minute)
	signedIn(t, fresh, "alice")
	age(fresh, "last_seen_at", 20*time.Minute)
	signedIn(t, fresh, "alice")

	// A revoked PAT ends the sessions it opened.
	pat := createPAT(t, e, "bob")
	pv := e.visitor(t)
	p := pv.get("/ui/login")
	pv.do(http.MethodPost, "/ui/login", url.Values{"user": {"bob"}, "password": {pat}, "csrf": {loginCSRF(t, p.Body)}})
	signedIn(t, pv, "bob")
	if _, err := db.Exec(`UPDATE personal_access_tokens SET revoked_at = ? WHERE token_hash = ?`, time.Now().UnixNano(), sha(pat)); err != nil {
		t.Fatal(err)
	}
	signedOut(t, pv)
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestConsoleSessionFixation: a session id the client makes up is never
// adopted, and signing in replaces whatever session cookie was there.
func TestConsoleSessionFixation(t *testing.T) {
	e := sharedEnv(t)
	v := e.visitor(t)
	u, _ := url.Parse(e.URL + "/ui/")
	planted := "attacker-chosen-session-id"
	v.jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: planted, Path: "/ui/"}})
	r := v.get("/ui/")
	if !strings.Contains(strings.Join(r.Header.Values("Set-Cookie"), ";"), "hallmark_session=;") {
		t.Errorf("an unknown session cookie was not cleared: %v", r.Header.Values("Set-Cookie"))
	}
	v.jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: planted, Path: "/ui/"}})
	v.login("alice")
	if c := v.sessionCookie(); c == nil || c.Value == planted || len(c.Value) < 40 {
		t.Fatalf("session cookie after sign-in: %+v", c)
	}
	signedIn(t, v, "alice")
	first := v.sessionCookie().Value
	v.login("alice")
	if v.sessionCookie().Value == first {
		t.Error("a second sign-in kept the session id")
	}
	stale := e.visitor(t)
	stale.jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: first, Path: "/ui/"}})
	signedOut(t, stale)
}
