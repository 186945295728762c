package abuse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

var sessionCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the session's CSRF token (from the sign-out form).
func (cc *consoleClient) csrf() string {
	cc.t.Helper()
	_, page, _ := cc.do(http.MethodGet, "/ui/", nil)
	m := sessionCSRF.FindStringSubmatch(page)
	if m == nil {
		cc.t.Fatalf("no CSRF token (not signed in?):\n%.500s", page)
	}
	return m[1]
}

// quarantine posts the console's quarantine form.
func (cc *consoleClient) quarantine(form url.Values) (int, string, http.Header) {
	cc.t.Helper()
	return cc.do(http.MethodPost, "/ui/quarantine", strings.NewReader(form.Encode()), "Origin", cc.base, "Sec-Fetch-Site", "same-origin")
}

// TestConsoleSearchFloodIsBounded: a flood of concurrent console searches
// and exports, expensive (short commit prefixes, big pages, long ranges)
// and malformed (bad values, forged cursors, huge queries), anonymous and
// signed in, is answered with pages, 400s or a 503 to retry (with
// Retry-After), never a 500; anonymous visitors never see the private
// project; the maintainer's search works afterwards.
func TestConsoleSearchFloodIsBounded(t *testing.T) {
	f := newSearchFixture(t)
	e := f.e
	expensive, bad := f.floodQueries(t)
	var paths []string
	for _, q := range expensive {
		paths = append(paths, "/ui/search?"+q, "/ui/search/export?format=csv&"+q, "/ui/search/export?format=ndjson&"+q)
	}
	for _, q := range bad {
		paths = append(paths, "/ui/search?"+q, "/ui/search/export?format=csv&"+q)
	}
	bob := newConsoleClient(t, e, "127.0.0.21")
	if s := bob.login(f.Maintainer, f.Pass); s != http.StatusSeeOther {
		t.Fatalf("bob's sign-in: %d", s)
	}
	anon := newConsoleClient(t, e, "127.0.0.22")
	count := map[int]int{}
	for _, a := range floodGET(e.URL, paths, 3, floodClient{c: anon.c}, floodClient{c: bob.c}) {
		count[a.status]++
		checkSearchFloodAnswer(t, a.path, a.status, a.retry)
		if a.client == 0 && (strings.Contains(a.body, "b/app") || strings.Contains(a.body, f.BImage)) {
			t.Errorf("%.80s: an anonymous visitor sees the private project", a.path)
		}
		if strings.Contains(a.body, "<b><b>") {
			t.Errorf("%.80s: markup of the query echoed raw", a.path)
		}
	}
	t.Logf("answers by status: %v", count)
	if s, page, _ := bob.do(http.MethodGet, "/ui/search?commit="+f.Commit, nil); s != http.StatusOK || !strings.Contains(page, f.BImage) {
		t.Errorf("after the flood, the maintainer's search: HTTP %d, finds b/app's image: %v", s, strings.Contains(page, f.BImage))
	}
}

// TestConsoleSearchOversizedQuery: query strings beyond the search's
// bound are a 400 page, those beyond the server's header bound a 431;
// neither is read into a search nor echoed.
func TestConsoleSearchOversizedQuery(t *testing.T) {
	e := start(t, nil)
	cc := newConsoleClient(t, e, "127.0.0.23")
	for _, q := range []string{
		"identity=" + strings.Repeat("x", 20<<10),
		"commit=abcdef1&annotation=" + url.QueryEscape("k="+strings.Repeat("<v>", 3000)),
		strings.Repeat("annotation=a%3Db&", 200),
	} {
		s, page, _ := cc.do(http.MethodGet, "/ui/search?"+q, nil)
		if s != http.StatusBadRequest || strings.Contains(page, "<v><v>") {
			t.Errorf("%.60s (%d bytes): HTTP %d", q, len(q), s)
		}
	}
	// 2 MiB of query: beyond net/http's header bound, before any handler.
	conn, err := net.Dial("tcp", e.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go fmt.Fprintf(conn, "GET /ui/search?identity=%s HTTP/1.1\r\nHost: %s\r\n\r\n", strings.Repeat("x", 2<<20), e.Host)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("2 MiB query: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge && resp.StatusCode != http.StatusRequestURITooLong {
		t.Errorf("2 MiB query: HTTP %d", resp.StatusCode)
	}
	if s, _, _ := cc.do(http.MethodGet, "/ui/search?commit=abcdef1", nil); s != http.StatusOK {
		t.Errorf("a normal search afterwards: HTTP %d", s)
	}
}

// TestConsoleQuarantineFloodIsLimited: a maintainer flooding the
// console's quarantine form is held to the policy API's change limit
// (429 with Retry-After, never a 500), the same budget as his API calls;
// an oversized form is refused with 413.
func TestConsoleQuarantineFloodIsLimited(t *testing.T) {
	f := newSearchFixture(t)
	e := f.e
	bob := newConsoleClient(t, e, "127.0.0.24")
	if s := bob.login(f.Maintainer, f.Pass); s != http.StatusSeeOther {
		t.Fatalf("bob's sign-in: %d", s)
	}
	token := bob.csrf()
	item := "b/app@" + f.BImage
	count := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			do := "quarantine"
			if i%2 == 1 {
				do = "lift"
			}
			s, _, hdr := bob.quarantine(url.Values{"csrf": {token}, "do": {do}, "reason": {"flood"}, "item": {item}})
			mu.Lock()
			defer mu.Unlock()
			count[s]++
			switch s {
			case http.StatusOK:
			case http.StatusTooManyRequests:
				if hdr.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
			default:
				t.Errorf("quarantine flood: HTTP %d", s)
			}
		})
	}
	wg.Wait()
	t.Logf("answers by status: %v", count)
	if count[http.StatusTooManyRequests] == 0 || count[http.StatusOK] > 25 {
		t.Errorf("60 changes at once were not limited: %v", count)
	}
	// The API shares the budget.
	body := `{"items":[{"repository":"b/app","digest":"` + f.BImage + `"}],"reason":"api"}`
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/api/v1/quarantine", strings.NewReader(body))
	req.SetBasicAuth(f.Maintainer, f.Pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := authClientFrom(t, "127.0.0.25").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("bob's API quarantine after the console flood: HTTP %d %s", resp.StatusCode, b)
	}
	// A form of 1 MiB is refused before it is read.
	s, _, _ := bob.quarantine(url.Values{"csrf": {token}, "do": {"quarantine"}, "reason": {strings.Repeat("r", 1<<20)}, "item": {item}})
	if s != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB quarantine form: HTTP %d", s)
	}
}

// TestConsoleQuarantineOtherProject: a maintainer of project a/app,
// signed in with a valid CSRF token, cannot quarantine b/app's image
// through the console, neither by naming it nor through a search's whole
// result set; nothing is quarantined.
func TestConsoleQuarantineOtherProject(t *testing.T) {
	f := newSearchFixture(t)
	e := f.e
	ctx := context.Background()
	adm := e.admin(t)
	if _, err := adm.AddUser(ctx, "mallory", "mallory-password-1", false); err != nil {
		t.Fatal(err)
	}
	if err := adm.Store.SetMember(ctx, "a/app", "mallory", auth.RoleMaintainer); err != nil {
		t.Fatal(err)
	}
	m := newConsoleClient(t, e, "127.0.0.26")
	if s := m.login("mallory", "mallory-password-1"); s != http.StatusSeeOther {
		t.Fatalf("mallory's sign-in: %d", s)
	}
	token := m.csrf()
	for name, form := range map[string]url.Values{
		"named":          {"csrf": {token}, "do": {"quarantine"}, "reason": {"mine now"}, "item": {"b/app@" + f.BImage}},
		"named, lift":    {"csrf": {token}, "do": {"lift"}, "item": {"b/app@" + f.BImage}},
		"whole result":   {"csrf": {token}, "do": {"quarantine"}, "reason": {"mine now"}, "scope": {"all"}, "query": {"commit=" + f.Commit}},
		"project b/app":  {"csrf": {token}, "do": {"quarantine"}, "reason": {"mine now"}, "scope": {"all"}, "query": {"project=b/app"}},
		"many of b/app":  {"csrf": {token}, "do": {"quarantine"}, "reason": {"x"}, "item": slicesRepeat("b/app@"+f.BImage, 500)},
		"bad then b/app": {"csrf": {token}, "do": {"quarantine"}, "reason": {"x"}, "item": {"a/app@" + f.BImage, "b/app@" + f.BImage}},
	} {
		s, page, _ := m.quarantine(form)
		if name == "bad then b/app" {
			// Mallory may quarantine in a/app: that one is done, b/app's refused.
			if s != http.StatusOK || !strings.Contains(page, `data-outcome="refused"`) {
				t.Errorf("%s: HTTP %d\n%.800s", name, s, page)
			}
			continue
		}
		if s != http.StatusForbidden && s != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 403 (or 400: the search finds nothing mallory may see)\n%.800s", name, s, page)
		}
	}
	// b/app's image is not quarantined (its maintainer's list is empty).
	c := authClientFrom(t, "127.0.0.27")
	s, b := authReq(t, c, http.MethodGet, e.URL+"/api/v1/quarantine?repository=b/app", "Basic "+authBasic(f.Maintainer, f.Pass))
	if s != http.StatusOK || strings.Contains(string(b), f.BImage) {
		t.Errorf("b/app's quarantines after mallory's attempts: HTTP %d %s", s, b)
	}
}

func slicesRepeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
