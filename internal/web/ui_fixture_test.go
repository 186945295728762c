package web_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/server"
)

// consoleEnv is a real Hallmark server (auth on, SQLite, filesystem blobs)
// with keylessly signed images of a CI job, shared by the console tests of
// this package: it is built once (the signing takes a few seconds).
type consoleEnv struct {
	Srv      *server.Server
	URL      string
	DataDir  string
	AdminPW  string
	Handler  http.Handler
	Identity string
	Issuer   string
	Commit   string // the CI job's commit (what the certificate attests)
	Tag      string
	// Pipeline, Job and User are the CI job's (the CA's claims).
	Pipeline, Job, User string

	PublicRepo, PrivateRepo string
	Signed                  name.Digest // keyless, eleven CI annotations, SLSA attestation
	Contradicted            name.Digest // signed with a commit annotation the certificate contradicts
	Unsigned                name.Digest
	Private                 name.Digest // in a private project
	XSS                     name.Digest // signed with markup in a tag and an annotation
	Many                    name.Digest // signed manySigned times: more than a page
	XSSTag                  string
	// Users: alice is a plain user (no project), bob a reporter of the
	// private project, carol a maintainer of the public one, dave of the
	// private one.
	Passwords map[string]string
}

// manySigned is how often the image Many is signed: one page and one more.
const manySigned = 16

// FakeCommit is the commit the contradicted image's annotation claims.
const FakeCommit = "0000000000000000000000000000000000000bad"

const xssMarkup = `<script>alert(1)</script><img src=x onerror=alert(2)>"'&`

var (
	envOnce sync.Once
	envVal  *consoleEnv
	envErr  error
	envStop func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	if envStop != nil {
		envStop()
	}
	stopBrowser()
	os.Exit(code)
}

// sharedEnv returns the package's console environment, building it on
// first use.
func sharedEnv(t testing.TB) *consoleEnv {
	t.Helper()
	envOnce.Do(func() { envVal, envStop, envErr = buildEnv() })
	if envErr != nil {
		t.Fatalf("console test environment: %v", envErr)
	}
	return envVal
}

func buildEnv() (*consoleEnv, func(), error) {
	dir, err := os.MkdirTemp("", "hallmark-console-")
	if err != nil {
		return nil, nil, err
	}
	cfg := config.Defaults()
	cfg.Addr, cfg.DataDir, cfg.Auth = "127.0.0.1:0", dir, "on"
	cfg.LogLevel, cfg.ShutdownTimeout = "warn", 5*time.Second
	var logw io.Writer = io.Discard
	if os.Getenv("HALLMARK_TEST_LOG") != "" {
		logw = os.Stderr
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, nil) }()
	stop := func() {
		cancel()
		<-done
		srv.Close()
		os.RemoveAll(dir)
	}
	e, err := populate(ctx, srv, dir)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return e, stop, nil
}

func populate(ctx context.Context, srv *server.Server, dir string) (*consoleEnv, error) {
	pw, err := os.ReadFile(filepath.Join(dir, server.AdminPasswordFile))
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		return nil, err
	}
	e := &consoleEnv{Srv: srv, URL: srv.URL(), DataDir: dir, AdminPW: strings.TrimSpace(string(pw)), Handler: srv.Handler(),
		PublicRepo: "demo/app", PrivateRepo: "secret/app",
		Passwords: map[string]string{"alice": "alice-password-123", "bob": "bob-password-123",
			"carol": "carol-password-123", "dave": "dave-password-123"}}
	e.Passwords["admin"] = e.AdminPW
	adm, closeAdm, err := server.OpenAuthAdmin(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer closeAdm()
	if _, err := adm.AddProject(ctx, "demo/app", auth.VisibilityPublic, ""); err != nil {
		return nil, err
	}
	if _, err := adm.AddProject(ctx, "secret/app", auth.VisibilityPrivate, ""); err != nil {
		return nil, err
	}
	for u, p := range e.Passwords {
		if u == "admin" {
			continue
		}
		if _, err := adm.AddUser(ctx, u, p, false); err != nil {
			return nil, err
		}
	}
	for _, m := range []struct {
		project, user string
		role          auth.Role
	}{{"secret/app", "bob", auth.RoleReporter}, {"demo/app", "carol", auth.RoleMaintainer}, {"secret/app", "dave", auth.RoleMaintainer}} {
		if err := adm.Store.SetMember(ctx, m.project, m.user, m.role); err != nil {
			return nil, err
		}
	}
	jobs := &demo.HTTPJobs{URL: e.URL, AdminToken: strings.TrimSpace(string(tok))}
	env, err := jobs.Job(ctx, demo.JobRequest{Project: "demo/app", Ref: "main", User: "demo", UserName: "Demo User"})
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: demo.NewTransport(), Timeout: time.Minute}
	trust, err := demo.FetchTrust(ctx, client, env["HALLMARK_URL"], env["HALLMARK_TRUST_FINGERPRINT"])
	if err != nil {
		return nil, err
	}
	sess, err := demo.NewSession(env, demo.SessionConfig{Trust: trust})
	if err != nil {
		return nil, err
	}
	e.Identity, e.Issuer, e.Commit, e.Tag = sess.Identity(), sess.Issuer(), env["CI_COMMIT_SHA"], sess.Tag("")
	e.Pipeline, e.Job, e.User = env["CI_PIPELINE_ID"], env["CI_JOB_ID"], env["GITLAB_USER_LOGIN"]
	pushSign := func(s *demo.Session, env map[string]string, note, tag string, sign bool) (name.Digest, error) {
		img, err := demo.BuildImage(env, note)
		if err != nil {
			return name.Digest{}, err
		}
		ref, err := s.Push(ctx, img, tag)
		if err != nil {
			return name.Digest{}, err
		}
		if sign {
			if _, err := s.Sign(ctx, ref, tag); err != nil {
				return name.Digest{}, err
			}
		}
		return ref, nil
	}
	if e.Signed, err = pushSign(sess, env, "", e.Tag, true); err != nil {
		return nil, err
	}
	if _, err := sess.Attest(ctx, e.Signed); err != nil {
		return nil, err
	}
	if e.Unsigned, err = pushSign(sess, env, "unsigned", "unsigned", false); err != nil {
		return nil, err
	}
	// The same job's ID token, with a commit annotation the certificate
	// (which carries the job's real commit) contradicts.
	lie := maps.Clone(env)
	lie["CI_COMMIT_SHA"] = FakeCommit
	liar, err := demo.NewSession(lie, demo.SessionConfig{Trust: trust})
	if err != nil {
		return nil, err
	}
	if e.Contradicted, err = pushSign(liar, lie, "contradicted", "contradicted", true); err != nil {
		return nil, err
	}
	// Markup in a signed annotation (the user name) and in a tag name
	// (tags cannot hold markup: the tag is the closest a pusher gets).
	xss := maps.Clone(env)
	xss["GITLAB_USER_NAME"] = xssMarkup
	xs, err := demo.NewSession(xss, demo.SessionConfig{Trust: trust})
	if err != nil {
		return nil, err
	}
	e.XSSTag = "x-script-alert-1"
	if e.XSS, err = pushSign(xs, xss, "xss", e.XSSTag, true); err != nil {
		return nil, err
	}
	if e.Many, err = pushSign(sess, env, "many", "many", false); err != nil {
		return nil, err
	}
	for range manySigned {
		if _, err := sess.Sign(ctx, e.Many, "many"); err != nil {
			return nil, err
		}
	}
	penv, err := jobs.Job(ctx, demo.JobRequest{Project: "secret/app", Ref: "main"})
	if err != nil {
		return nil, err
	}
	ps, err := demo.NewSession(penv, demo.SessionConfig{Trust: trust})
	if err != nil {
		return nil, err
	}
	if e.Private, err = pushSign(ps, penv, "", ps.Tag(""), true); err != nil {
		return nil, err
	}
	return e, nil
}

// visitor is a browser-like client of the console: a cookie jar, and
// requests served by the server's handler through httptest (no network).
type visitor struct {
	t    testing.TB
	e    *consoleEnv
	jar  *cookiejar.Jar
	addr string // client address
}

func (e *consoleEnv) visitor(t testing.TB) *visitor {
	jar, _ := cookiejar.New(nil)
	return &visitor{t: t, e: e, jar: jar, addr: "127.0.0.1:40000"}
}

type response struct {
	Status int
	Header http.Header
	Body   string
}

// do sends a request to the console; hdr are header name/value pairs.
func (v *visitor) do(method, path string, form url.Values, hdr ...string) response {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, v.e.URL+path, body)
	r.RemoteAddr = v.addr
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	for _, c := range v.jar.Cookies(r.URL) {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	v.e.Handler.ServeHTTP(w, r)
	res := w.Result()
	v.jar.SetCookies(r.URL, res.Cookies())
	b, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: string(b)}
}

func (v *visitor) get(path string) response { v.t.Helper(); return v.do(http.MethodGet, path, nil) }

var (
	csrfRE      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	loginCSRFRE = regexp.MustCompile(`(?s)action="/ui/login">.*?name="csrf" value="([^"]+)"`)
)

// loginCSRF returns the CSRF token of the sign-in form in body.
func loginCSRF(t testing.TB, body string) string {
	t.Helper()
	m := loginCSRFRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sign-in form in the page:\n%s", body)
	}
	return m[1]
}

// csrf returns the CSRF token of the first form in body.
func csrf(t testing.TB, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// login signs v in as user through the sign-in form.
func (v *visitor) login(user string) response {
	v.t.Helper()
	page := v.get("/ui/login")
	return v.do(http.MethodPost, "/ui/login", url.Values{"user": {user}, "password": {v.e.Passwords[user]}, "csrf": {loginCSRF(v.t, page.Body)},
		"next": {"/ui/"}}, "Origin", v.e.URL, "Sec-Fetch-Site", "same-origin")
}

func (v *visitor) sessionCookie() *http.Cookie {
	u, _ := url.Parse(v.e.URL + "/ui/")
	for _, c := range v.jar.Cookies(u) {
		if c.Name == "hallmark_session" {
			return c
		}
	}
	return nil
}

// adminTool opens the server's database as the management CLI does.
func (e *consoleEnv) adminTool(t testing.TB) *auth.Admin {
	t.Helper()
	adm, closeFn, err := server.OpenAuthAdmin(context.Background(), e.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeFn() })
	return adm
}
