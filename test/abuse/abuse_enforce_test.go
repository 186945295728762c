package abuse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// enforceFixture: projects team/app (maintainer, developer, reporter) and
// rival/app (a developer and a maintainer of their own), an image in each.
type enforceFixture struct {
	e                *env
	teamImg, ownImg  string
	pw               map[string]string
	client           *http.Client
	maint, dev, rep  string
	rivalDev, rivalM string
}

func newEnforceFixture(t *testing.T) *enforceFixture {
	t.Helper()
	e := start(t, nil)
	ctx := context.Background()
	adm := e.admin(t)
	f := &enforceFixture{e: e, pw: map[string]string{}, client: authClientFrom(t, "127.0.0.1"),
		maint: "maint", dev: "dev", rep: "rep", rivalDev: "rival-dev", rivalM: "rival-maint"}
	for _, p := range []string{"team/app", "rival/app"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	for user, m := range map[string]struct {
		project string
		role    auth.Role
	}{f.maint: {"team/app", auth.RoleMaintainer}, f.dev: {"team/app", auth.RoleDeveloper}, f.rep: {"team/app", auth.RoleReporter},
		f.rivalDev: {"rival/app", auth.RoleDeveloper}, f.rivalM: {"rival/app", auth.RoleMaintainer}} {
		f.pw[user] = user + "-password-1"
		if _, err := adm.AddUser(ctx, user, f.pw[user], false); err != nil {
			t.Fatal(err)
		}
		if err := adm.Store.SetMember(ctx, m.project, user, m.role); err != nil {
			t.Fatal(err)
		}
	}
	f.teamImg = f.push(t, "team/app:v1")
	f.ownImg = f.push(t, "rival/app:v1")
	return f
}

func (f *enforceFixture) push(t *testing.T, ref string) string {
	t.Helper()
	r, err := name.ParseReference(f.e.Host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: f.e.AdminPassword})); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	return d.String()
}

// post sends a JSON body (raw bytes) to the API with authz ("" none).
func (f *enforceFixture) post(t *testing.T, path, authz string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.e.URL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, string(b)
}

func (f *enforceFixture) basic(user string) string {
	if user == "admin" {
		return "Basic " + authBasic("admin", f.e.AdminPassword)
	}
	return "Basic " + authBasic(user, f.pw[user])
}

func quarantineBody(reason string, pairs ...string) []byte {
	var items []map[string]string
	for i := 0; i+1 < len(pairs); i += 2 {
		items = append(items, map[string]string{"repository": pairs[i], "digest": pairs[i+1]})
	}
	b, _ := json.Marshal(map[string]any{"items": items, "reason": reason})
	return b
}

// activeQuarantines counts the active quarantines of repo, on the database.
func (f *enforceFixture) activeQuarantines(t *testing.T, repo string) int {
	t.Helper()
	st, ok := f.e.admin(t).Store.(meta.Quarantines)
	if !ok {
		t.Fatal("the store has no quarantines")
	}
	recs, err := st.ListQuarantine(context.Background(), meta.QuarantineQuery{Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestQuarantineOutsidersCannot: a developer or maintainer of another
// project, a reporter and a developer of the project, anonymous clients,
// a registry token of another project (even with delete), and a token of
// this project without delete can neither quarantine nor lift, nor
// change require-signature; nothing is recorded.
func TestQuarantineOutsidersCannot(t *testing.T) {
	f := newEnforceFixture(t)
	rivalTok := f.e.regToken(t, f.rivalM, f.pw[f.rivalM], "repository:rival/app:pull,push,delete", "repository:team/app:pull,push,delete")
	devTok := f.e.regToken(t, f.dev, f.pw[f.dev], "repository:team/app:pull,push,delete")
	body := quarantineBody("hostile", "team/app", f.teamImg)
	setting, _ := json.Marshal(map[string]string{"project": "team/app", "requireSignature": "off"})
	if status, _, b := f.post(t, "/api/v1/projects/require-signature", f.basic(f.maint), []byte(`{"project":"team/app","requireSignature":"enforce"}`)); status != http.StatusOK {
		t.Fatalf("maintainer sets enforce: %d %s", status, b)
	}
	for _, tc := range []struct {
		who, authz string
		want       int
	}{
		{"anonymous", "", http.StatusUnauthorized},
		{"rival developer", f.basic(f.rivalDev), http.StatusForbidden},
		{"rival maintainer", f.basic(f.rivalM), http.StatusForbidden},
		{"rival maintainer's registry token", "Bearer " + rivalTok, http.StatusForbidden},
		{"reporter", f.basic(f.rep), http.StatusForbidden},
		{"developer", f.basic(f.dev), http.StatusForbidden},
		{"developer's registry token (no delete granted)", "Bearer " + devTok, http.StatusForbidden},
		{"garbage bearer", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.AAAA", http.StatusUnauthorized},
	} {
		for _, path := range []string{"/api/v1/quarantine", "/api/v1/quarantine/lift"} {
			if status, _, b := f.post(t, path, tc.authz, body); status != tc.want {
				t.Errorf("%s: POST %s: %d %s, want %d", tc.who, path, status, b, tc.want)
			}
		}
		want := tc.want
		if tc.who == "rival developer" || tc.who == "rival maintainer" || tc.who == "rival maintainer's registry token" {
			want = http.StatusNotFound // they may not see the project
		}
		if status, _, b := f.post(t, "/api/v1/projects/require-signature", tc.authz, setting); status != want {
			t.Errorf("%s: set require-signature: %d %s, want %d", tc.who, status, b, want)
		}
	}
	if n := f.activeQuarantines(t, "team/app"); n != 0 {
		t.Errorf("%d quarantines recorded by outsiders", n)
	}
	// The rival maintainer may act on their own project, and the setting
	// of team/app is still enforce.
	if status, _, b := f.post(t, "/api/v1/quarantine", "Bearer "+rivalTok, quarantineBody("own", "rival/app", f.ownImg)); status != http.StatusOK {
		t.Errorf("rival maintainer in their own project: %d %s", status, b)
	}
	tok := f.e.regToken(t, f.rep, f.pw[f.rep], "repository:team/app:pull")
	if r := f.e.regDo(t, http.MethodGet, "/v2/team/app/manifests/v1", tok, nil); r.code != http.StatusForbidden || regErrorCode(r.body) != "DENIED" {
		t.Errorf("enforce was changed by an outsider: reporter's pull %d %s", r.code, r.body)
	}
}

// TestQuarantineFloodBounded: a maintainer sending quarantine requests as
// fast as it can is cut off with 429 and Retry-After after a small burst
// (each request may carry 1000 items: the bound is on requests); an
// anonymous flood costs nothing but 401s; bodies beyond the limit are
// refused without being read in full.
func TestQuarantineFloodBounded(t *testing.T) {
	f := newEnforceFixture(t)
	accepted, throttled := 0, 0
	for i := range 60 {
		status, h, b := f.post(t, "/api/v1/quarantine", f.basic(f.maint), quarantineBody(fmt.Sprint("flood ", i), "team/app", f.teamImg))
		switch status {
		case http.StatusOK:
			accepted++
		case http.StatusTooManyRequests:
			throttled++
			if h.Get("Retry-After") == "" {
				t.Fatalf("429 without Retry-After: %s", b)
			}
		default:
			t.Fatalf("request %d: %d %s", i, status, b)
		}
	}
	if accepted > 25 || throttled == 0 {
		t.Errorf("flood of 60 quarantine requests: %d accepted, %d throttled; want at most 25 accepted", accepted, throttled)
	}
	// Other maintainers are not throttled by it.
	if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.rivalM), quarantineBody("mine", "rival/app", f.ownImg)); status != http.StatusOK {
		t.Errorf("another maintainer during the flood: %d %s", status, b)
	}

	for i := range 100 {
		if status, _, _ := f.post(t, "/api/v1/quarantine", "", quarantineBody("anon", "team/app", f.teamImg)); status != http.StatusUnauthorized {
			t.Fatalf("anonymous request %d: %d", i, status)
		}
	}
	evs, err := f.e.admin(t).Store.QueryAudit(context.Background(), auth.AuditQuery{Repository: "team/app", Action: auth.AuditQuarantine})
	if err != nil || len(evs) != 1 {
		t.Errorf("audit events of the flood: %d, %v; want 1 (the item was quarantined once)", len(evs), err)
	}

	big := quarantineBody("x", strings.Split(strings.Repeat("team/app "+f.teamImg+" ", 1001), " ")...)
	if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.rivalM), big); status != http.StatusBadRequest || !strings.Contains(b, "at most 1000") {
		t.Errorf("1001 items: %d %s", status, b)
	}
	huge := append([]byte(`{"reason":"`), bytes.Repeat([]byte("a"), 2<<20)...)
	if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.rivalM), append(huge, `"}`...)); status != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d %s", status, b)
	}
	for _, junk := range []string{`{`, `[]`, `{"items":[],"reason":"x"}{"again":1}`, `{"items":[{"repository":"team/app","digest":"x"}],"reason":"x","admin":true}`} {
		if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.rivalM), []byte(junk)); status != http.StatusBadRequest {
			t.Errorf("malformed body %q: %d %s", junk, status, b)
		}
	}
}

// TestQuarantineReasonCannotInject: a reason with line breaks, escape
// sequences or bidirectional overrides is refused (it would forge lines
// of logs or disguise itself); markup is text, escaped wherever it is
// shown as JSON, and never reaches a response header.
func TestQuarantineReasonCannotInject(t *testing.T) {
	f := newEnforceFixture(t)
	for _, reason := range []string{
		"ok\n{\"action\":\"quarantine.lift\",\"actor\":\"admin\"}",
		"ok\r\nWarning: 299 - \"all clear\"",
		"\x1b[2J\x1b[Hcleared",
		"see \u202Etxt.exe",
		strings.Repeat("long ", 200),
	} {
		if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.maint), quarantineBody(reason, "team/app", f.teamImg)); status != http.StatusBadRequest {
			t.Errorf("reason %q: %d %s, want 400", reason, status, b)
		}
	}
	if n := f.activeQuarantines(t, "team/app"); n != 0 {
		t.Fatalf("%d quarantines from refused reasons", n)
	}

	const markup = `<img src=x onerror=alert(1)> & "quotes"`
	if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.maint), quarantineBody(markup, "team/app", f.teamImg)); status != http.StatusOK {
		t.Fatalf("markup reason: %d %s", status, b)
	}
	tok := f.e.regToken(t, f.rep, f.pw[f.rep], "repository:team/app:pull")
	r := f.e.regDo(t, http.MethodGet, "/v2/team/app/manifests/v1", tok, nil)
	if r.code != http.StatusForbidden || strings.Contains(string(r.body), "<img") || !strings.Contains(string(r.body), `\u003cimg src=x`) {
		t.Errorf("refused pull: %d %s (want the reason JSON-escaped)", r.code, r.body)
	}
	for k, vs := range r.header {
		for _, v := range vs {
			if strings.Contains(v, "onerror") || strings.Contains(v, "img src") {
				t.Errorf("the reason reached header %s: %q", k, v)
			}
		}
	}
	status, body := authReq(t, f.client, http.MethodGet, f.e.URL+"/api/v1/audit?action=quarantine", f.basic("admin"))
	if status != http.StatusOK || bytes.Contains(body, []byte("<img")) || !bytes.Contains(body, []byte(`\u003cimg src=x`)) {
		t.Errorf("audit API: %d %s", status, body)
	}
	status, body = authReq(t, f.client, http.MethodGet, f.e.URL+"/api/v1/quarantine?repository=team/app", f.basic(f.rep))
	if status != http.StatusOK || bytes.Contains(body, []byte("<img")) {
		t.Errorf("quarantine list: %d %s", status, body)
	}
	if strings.Contains(f.e.Logs.String(), "<img") {
		t.Errorf("the server log holds the raw reason")
	}
}

// TestRefusedPullStormAuditedOnce: a storm of refused pulls (quarantine
// and require-signature) writes one audit event per image and outcome,
// while every refusal is counted.
func TestRefusedPullStormAuditedOnce(t *testing.T) {
	f := newEnforceFixture(t)
	if status, _, b := f.post(t, "/api/v1/projects/require-signature", f.basic(f.maint), []byte(`{"project":"team/app","requireSignature":"enforce"}`)); status != http.StatusOK {
		t.Fatalf("%d %s", status, b)
	}
	other := f.push(t, "team/app:v2")
	if status, _, b := f.post(t, "/api/v1/quarantine", f.basic(f.maint), quarantineBody("bad", "team/app", other)); status != http.StatusOK {
		t.Fatalf("%d %s", status, b)
	}
	tok := f.e.regToken(t, f.rep, f.pw[f.rep], "repository:team/app:pull")
	began := time.Now()
	for range 200 {
		for _, ref := range []string{"v1", "v2"} {
			if r := f.e.regDo(t, http.MethodGet, "/v2/team/app/manifests/"+ref, tok, nil); r.code != http.StatusForbidden {
				t.Fatalf("GET %s: %d %s", ref, r.code, r.body)
			}
		}
	}
	t.Logf("400 refused pulls in %v", time.Since(began).Round(time.Millisecond))
	evs, err := f.e.admin(t).Store.QueryAudit(context.Background(), auth.AuditQuery{Action: auth.AuditPullDenied})
	if err != nil || len(evs) != 2 {
		t.Errorf("audit events of 400 refused pulls of 2 images: %d, %v; want 2", len(evs), err)
	}
	status, metrics := authReq(t, f.client, http.MethodGet, f.e.URL+"/metrics", "")
	for _, want := range []string{`hallmark_registry_pull_policy_total{outcome="quarantined"} 200`, `hallmark_registry_pull_policy_total{outcome="unsigned_denied"} 200`} {
		if status != http.StatusOK || !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
