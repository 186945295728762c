package abuse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// consoleClient is a browser-like client of the web console: a cookie jar
// and a loopback source address of its own.
type consoleClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newConsoleClient(t *testing.T, e *env, ip string) *consoleClient {
	c := authClientFrom(t, ip)
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &consoleClient{t: t, base: e.URL, c: c}
}

func (cc *consoleClient) do(method, path string, body io.Reader, hdr ...string) (int, string, http.Header) {
	cc.t.Helper()
	req, err := http.NewRequest(method, cc.base+path, body)
	if err != nil {
		cc.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := cc.c.Do(req)
	if err != nil {
		cc.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), resp.Header
}

var consoleCSRF = regexp.MustCompile(`(?s)action="/ui/login">.*?name="csrf" value="([^"]+)"`)

// login posts the sign-in form and returns the status.
func (cc *consoleClient) login(user, password string) int {
	cc.t.Helper()
	_, page, _ := cc.do(http.MethodGet, "/ui/login", nil)
	m := consoleCSRF.FindStringSubmatch(page)
	if m == nil {
		cc.t.Fatalf("no sign-in form:\n%s", page)
	}
	form := url.Values{"user": {user}, "password": {password}, "csrf": {m[1]}}
	status, _, _ := cc.do(http.MethodPost, "/ui/login", strings.NewReader(form.Encode()), "Origin", cc.base)
	return status
}

func (cc *consoleClient) signedInAs(user string) bool {
	_, page, _ := cc.do(http.MethodGet, "/ui/", nil)
	return strings.Contains(page, `id="signed-in-user">`+user+`<`)
}

// TestConsoleLoginFloodDoesNotLockOutUser: a guesser flooding the sign-in
// form with wrong passwords for alice is throttled (429), and alice, from
// her own address, still signs in.
func TestConsoleLoginFloodDoesNotLockOutUser(t *testing.T) {
	e := start(t, nil)
	if _, err := e.admin(t).AddUser(context.Background(), "alice", "alice-password-123", false); err != nil {
		t.Fatal(err)
	}
	guesser := newConsoleClient(t, e, "127.0.0.66")
	throttled := 0
	for i := range 60 {
		status := guesser.login("alice", "guess-"+string(rune('a'+i%26)))
		if status == http.StatusTooManyRequests {
			throttled = i
			break
		}
		if status != http.StatusUnauthorized {
			t.Fatalf("guess %d: HTTP %d", i, status)
		}
	}
	if throttled == 0 {
		t.Fatal("60 wrong passwords were never throttled")
	}
	// Still throttled with the right password from the guesser's address.
	if s := guesser.login("alice", "alice-password-123"); s != http.StatusTooManyRequests {
		t.Errorf("the guesser's address got HTTP %d with the right password", s)
	}
	alice := newConsoleClient(t, e, "127.0.0.7")
	if s := alice.login("alice", "alice-password-123"); s != http.StatusSeeOther || !alice.signedInAs("alice") {
		t.Fatalf("alice, from her own address, after the flood: HTTP %d", s)
	}
}

// TestConsoleOversizedAndOddForms: a huge form is refused with 413 without
// being read; malformed forms get 400 or 403, never a session.
func TestConsoleOversizedAndOddForms(t *testing.T) {
	e := start(t, nil)
	cc := newConsoleClient(t, e, "127.0.0.1")
	// A client announcing a 4 MiB form gets 413 after the first 8 KiB,
	// without the server waiting for (or reading) the rest.
	conn, err := net.Dial("tcp", e.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /ui/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\nuser=admin&password=%s",
		e.Host, 4<<20, strings.Repeat("x", 64<<10))
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("4 MiB sign-in form: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("4 MiB sign-in form: HTTP %d, want 413", resp.StatusCode)
	}
	for name, body := range map[string]string{"bad escape": "user=%zz&password=%", "no fields": "", "semicolons": "user=a;password=b"} {
		s, _, hdr := cc.do(http.MethodPost, "/ui/login", strings.NewReader(body))
		if s != http.StatusBadRequest && s != http.StatusForbidden {
			t.Errorf("%s: HTTP %d", name, s)
		}
		if strings.Contains(strings.Join(hdr.Values("Set-Cookie"), ";"), "hallmark_session=") {
			t.Errorf("%s: a session cookie was set", name)
		}
	}
	// Long and hostile query strings are answered, not echoed raw.
	s, page, _ := cc.do(http.MethodGet, "/ui/repositories?q="+url.QueryEscape(strings.Repeat("<b>", 2000)), nil)
	if s != http.StatusBadRequest || strings.Contains(page, "<b><b>") {
		t.Errorf("6000-byte filter: HTTP %d", s)
	}
	if s, _, _ := cc.do(http.MethodGet, "/ui/image/"+strings.Repeat("a/", 2000)+"x@sha256:"+strings.Repeat("0", 64), nil); s != http.StatusNotFound {
		t.Errorf("4000-byte repository path: HTTP %d", s)
	}
}

// TestConsoleSessionTampering: made-up, altered and oversized session
// cookies leave the visitor anonymous (and are cleared); a made-up id is
// never adopted at sign-in.
func TestConsoleSessionTampering(t *testing.T) {
	e := start(t, nil)
	cc := newConsoleClient(t, e, "127.0.0.1")
	if s := cc.login("admin", e.AdminPassword); s != http.StatusSeeOther || !cc.signedInAs("admin") {
		t.Fatalf("admin sign-in: HTTP %d", s)
	}
	u, _ := url.Parse(e.URL + "/ui/")
	var real string
	for _, c := range cc.c.Jar.Cookies(u) {
		if c.Name == "hallmark_session" {
			real = c.Value
		}
	}
	flip := []byte(real)
	flip[len(flip)/2] ^= 1
	for name, value := range map[string]string{"altered": string(flip), "made up": "AAAA", "oversized": strings.Repeat("A", 4000),
		"prefix of the real id": real[:len(real)-1], "real id plus a byte": real + "A"} {
		other := newConsoleClient(t, e, "127.0.0.2")
		other.c.Jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: value, Path: "/ui/"}})
		if other.signedInAs("admin") {
			t.Errorf("%s session cookie: signed in", name)
		}
		if s, _, _ := other.do(http.MethodGet, "/ui/audit", nil); s != http.StatusForbidden {
			t.Errorf("%s session cookie: audit log HTTP %d", name, s)
		}
	}
	// Fixation: the id planted before sign-in is not the one after.
	fx := newConsoleClient(t, e, "127.0.0.3")
	fx.c.Jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: "planted-by-attacker-0123456789", Path: "/ui/"}})
	if s := fx.login("admin", e.AdminPassword); s != http.StatusSeeOther {
		t.Fatalf("sign-in with a planted cookie: HTTP %d", s)
	}
	for _, c := range fx.c.Jar.Cookies(u) {
		if c.Name == "hallmark_session" && c.Value == "planted-by-attacker-0123456789" {
			t.Error("the planted session id was adopted")
		}
	}
	planted := newConsoleClient(t, e, "127.0.0.4")
	planted.c.Jar.SetCookies(u, []*http.Cookie{{Name: "hallmark_session", Value: "planted-by-attacker-0123456789", Path: "/ui/"}})
	if planted.signedInAs("admin") {
		t.Error("the attacker's planted id is signed in")
	}
}

// TestConsolePrivatePagesNotGuessable: another project's private
// repository and images answer exactly as if they did not exist, whether
// the visitor is anonymous or signed in without access, and even when
// the digest is right.
func TestConsolePrivatePagesNotGuessable(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	adm := e.admin(t)
	if _, err := adm.AddProject(ctx, "secret/app", "private", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AddProject(ctx, "open/app", "public", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.AddUser(ctx, "mallory", "mallory-password-1", false); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	kc := authn.FromConfig(authn.AuthConfig{Username: "admin", Password: e.AdminPassword})
	for _, repo := range []string{"secret/app", "open/app"} {
		ref, _ := name.ParseReference(e.Host+"/"+repo+":v1", name.Insecure)
		if err := remote.Write(ref, img, remote.WithAuth(kc)); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := img.Digest()
	anon := newConsoleClient(t, e, "127.0.0.5")
	mallory := newConsoleClient(t, e, "127.0.0.6")
	if s := mallory.login("mallory", "mallory-password-1"); s != http.StatusSeeOther {
		t.Fatalf("mallory sign-in: %d", s)
	}
	norm := regexp.MustCompile(`secret/[a-z]+|sha256:[0-9a-f]+`)
	for who, cc := range map[string]*consoleClient{"anonymous": anon, "mallory": mallory} {
		if s, _, _ := cc.do(http.MethodGet, "/ui/image/open/app@"+d.String(), nil); s != http.StatusOK {
			t.Errorf("%s: the public image: HTTP %d", who, s)
		}
		pairs := [][2]string{
			{"/ui/repo/secret/app", "/ui/repo/secret/nope"},
			{"/ui/image/secret/app@" + d.String(), "/ui/image/secret/nope@sha256:" + strings.Repeat("1", 64)},
			{"/ui/repo/secret/app?status=verified", "/ui/repo/secret/nope?status=verified"},
		}
		for _, p := range pairs {
			s1, b1, _ := cc.do(http.MethodGet, p[0], nil)
			s2, b2, _ := cc.do(http.MethodGet, p[1], nil)
			if s1 != http.StatusNotFound || s2 != http.StatusNotFound {
				t.Errorf("%s: %s HTTP %d, %s HTTP %d; want 404 for both", who, p[0], s1, p[1], s2)
			}
			if norm.ReplaceAllString(b1, "X") != norm.ReplaceAllString(b2, "X") {
				t.Errorf("%s: %s answers differently from a missing repository", who, p[0])
			}
		}
		for _, p := range []string{"/ui/", "/ui/repositories", "/ui/repositories?q=secret", "/ui/log?q=0"} {
			if _, b, _ := cc.do(http.MethodGet, p, nil); strings.Contains(b, "secret/app") {
				t.Errorf("%s: %s names the private repository", who, p)
			}
		}
	}
}
