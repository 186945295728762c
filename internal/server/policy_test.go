package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// policyFixture: project team/app with a maintainer, a developer and a
// reporter, project other/app with its own developer, and an image in
// each.
type policyFixture struct {
	e                  *authEnv
	teamImg, otherImg  string // digests
	users              map[string]string
	maint, dev, rep, o string
}

func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	e := startAuthServer(t, nil)
	ctx := context.Background()
	adm := e.admin(t)
	f := &policyFixture{e: e, users: map[string]string{}, maint: "maint", dev: "dev", rep: "rep", o: "outsider"}
	for _, p := range []string{"team/app", "other/app"} {
		if _, err := adm.AddProject(ctx, p, auth.VisibilityPrivate, ""); err != nil {
			t.Fatal(err)
		}
	}
	for user, m := range map[string]struct {
		project string
		role    auth.Role
	}{f.maint: {"team/app", auth.RoleMaintainer}, f.dev: {"team/app", auth.RoleDeveloper}, f.rep: {"team/app", auth.RoleReporter}, f.o: {"other/app", auth.RoleDeveloper}} {
		pw := user + "-password-1"
		if _, err := adm.AddUser(ctx, user, pw, false); err != nil {
			t.Fatal(err)
		}
		if err := adm.Store.SetMember(ctx, m.project, user, m.role); err != nil {
			t.Fatal(err)
		}
		f.users[user] = pw
	}
	var err error
	if f.teamImg, err = pushRandom(t, e.Host+"/team/app:v1", "admin", e.AdminPassword); err != nil {
		t.Fatal(err)
	}
	if f.otherImg, err = pushRandom(t, e.Host+"/other/app:v1", "admin", e.AdminPassword); err != nil {
		t.Fatal(err)
	}
	return f
}

// api calls the JSON API as user ("" anonymous, "admin" the admin user).
func (f *policyFixture) api(t *testing.T, method, path, user string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.e.URL+path, rd)
	switch user {
	case "":
	case "admin":
		req.SetBasicAuth("admin", f.e.AdminPassword)
	default:
		req.SetBasicAuth(user, f.users[user])
	}
	resp, err := newHTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s %s: not JSON (%d): %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// pull GETs (or HEADs) a manifest of repo as user with a pull token.
func (f *policyFixture) pull(t *testing.T, method, user, repo, ref string) (*http.Response, []byte) {
	t.Helper()
	pw := f.users[user]
	if user == "admin" {
		pw = f.e.AdminPassword
	}
	tok := f.e.token(t, user, pw, false, "repository:"+repo+":pull")
	if tok.status != http.StatusOK {
		t.Fatalf("token for %s: %d", user, tok.status)
	}
	return call(t, method, f.e.URL+"/v2/"+repo+"/manifests/"+ref, tok.Token, nil, "Accept", oci.MediaTypeDockerManifest+", "+oci.MediaTypeOCIManifest)
}

func items(pairs ...string) []map[string]string {
	var out []map[string]string
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, map[string]string{"repository": pairs[i], "digest": pairs[i+1]})
	}
	return out
}

// TestQuarantineAPI: maintainers (and admins) quarantine and lift, others
// cannot; a quarantine refuses pulls at once with its reason and is
// audited; lifting restores pulls at once; reads are limited to what the
// caller may pull.
func TestQuarantineAPI(t *testing.T) {
	f := newPolicyFixture(t)
	const reason = "CVE-2099-0001: libfoo"
	req := map[string]any{"items": items("team/app", f.teamImg), "reason": reason}
	for user, want := range map[string]int{"": http.StatusUnauthorized, f.rep: http.StatusForbidden, f.dev: http.StatusForbidden, f.o: http.StatusForbidden} {
		if status, body := f.api(t, http.MethodPost, "/api/v1/quarantine", user, req); status != want {
			t.Errorf("quarantine as %q: %d %v, want %d", user, status, body, want)
		}
	}
	// A maintainer of one project cannot quarantine in another, not even
	// as part of a batch: nothing is done.
	if status, body := f.api(t, http.MethodPost, "/api/v1/quarantine", f.maint, map[string]any{"items": items("team/app", f.teamImg, "other/app", f.otherImg), "reason": reason}); status != http.StatusForbidden || !strings.Contains(body["error"].(string), "other/app") {
		t.Errorf("mixed batch: %d %v", status, body)
	}
	if r, _ := f.pull(t, http.MethodGet, f.rep, "team/app", "v1"); r.StatusCode != http.StatusOK {
		t.Fatalf("after refused quarantines, pull: %d", r.StatusCode)
	}

	status, body := f.api(t, http.MethodPost, "/api/v1/quarantine", f.maint, req)
	if status != http.StatusOK {
		t.Fatalf("maintainer quarantines: %d %v", status, body)
	}
	res := body["results"].([]any)[0].(map[string]any)
	if res["status"] != "quarantined" || res["quarantine"].(map[string]any)["actor"] != f.maint || res["quarantine"].(map[string]any)["reason"] != reason {
		t.Errorf("result %v", res)
	}
	if _, body := f.api(t, http.MethodPost, "/api/v1/quarantine", "admin", req); body["results"].([]any)[0].(map[string]any)["status"] != "already quarantined" {
		t.Errorf("again, by an admin: %v", body)
	}
	for _, who := range []string{f.rep, f.dev, f.maint, "admin"} {
		for _, ref := range []string{"v1", f.teamImg} {
			r, b := f.pull(t, http.MethodGet, who, "team/app", ref)
			if r.StatusCode != http.StatusForbidden || !strings.Contains(string(b), `"DENIED"`) || !strings.Contains(string(b), reason) || !strings.Contains(string(b), "quarantined by "+f.maint) {
				t.Errorf("%s pulls %s: %d %s", who, ref, r.StatusCode, b)
			}
		}
	}
	if r, _ := f.pull(t, http.MethodGet, f.o, "other/app", "v1"); r.StatusCode != http.StatusOK {
		t.Errorf("the other project's image: %d", r.StatusCode)
	}

	// Reads: a member sees the project's quarantines; an outsider does not.
	if status, body := f.api(t, http.MethodGet, "/api/v1/quarantine?repository=team/app", f.rep, nil); status != http.StatusOK || len(body["quarantines"].([]any)) != 1 {
		t.Errorf("reporter lists: %d %v", status, body)
	}
	if status, _ := f.api(t, http.MethodGet, "/api/v1/quarantine?repository=team/app", f.o, nil); status != http.StatusNotFound {
		t.Errorf("outsider lists team/app: %d, want 404", status)
	}
	if status, body := f.api(t, http.MethodGet, "/api/v1/quarantine", f.o, nil); status != http.StatusOK || len(body["quarantines"].([]any)) != 0 {
		t.Errorf("outsider lists everything: %d %v", status, body)
	}

	// Lifting: not by a developer; by the maintainer, at once.
	lift := map[string]any{"items": items("team/app", f.teamImg), "reason": "fixed in libfoo 1.2"}
	if status, _ := f.api(t, http.MethodPost, "/api/v1/quarantine/lift", f.dev, lift); status != http.StatusForbidden {
		t.Errorf("developer lifts: %d", status)
	}
	if status, body := f.api(t, http.MethodPost, "/api/v1/quarantine/lift", f.maint, lift); status != http.StatusOK || body["results"].([]any)[0].(map[string]any)["status"] != "lifted" {
		t.Fatalf("maintainer lifts: %d %v", status, body)
	}
	if r, b := f.pull(t, http.MethodGet, f.rep, "team/app", "v1"); r.StatusCode != http.StatusOK {
		t.Errorf("after the lift: %d %s", r.StatusCode, b)
	}
	if _, body := f.api(t, http.MethodGet, "/api/v1/quarantine?repository=team/app&history=true", f.rep, nil); len(body["quarantines"].([]any)) != 1 || body["quarantines"].([]any)[0].(map[string]any)["liftedBy"] != f.maint {
		t.Errorf("history: %v", body)
	}

	// Everything is in the audit log: who, what, why.
	_, audit := f.api(t, http.MethodGet, "/api/v1/audit?repository=team/app", "admin", nil)
	var seen []string
	for _, ev := range audit["events"].([]any) {
		e := ev.(map[string]any)
		switch e["action"] {
		case auth.AuditQuarantine, auth.AuditQuarantineLift, auth.AuditPullDenied:
			seen = append(seen, e["action"].(string)+" "+e["actor"].(string))
			if e["digest"] != f.teamImg || !strings.Contains(e["detail"].(string), reason) {
				t.Errorf("audit event %v", e)
			}
		}
	}
	// Eight refused pulls of the image, one audit event (per image and
	// outcome and 10 minutes): a pull storm does not flood the log.
	want := []string{"quarantine.lift maint", "pull.denied rep", "quarantine maint"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("audit (newest first): %v, want %v", seen, want)
	}
}

// TestRequireSignatureAPI: the setting is read by members and changed
// by maintainers; under enforce a reporter's pull of an unsigned image is
// refused, a developer's (who may push, so may sign) served with the
// warning, HEAD served; refused pulls are counted in /metrics and audited
// at most once per image.
func TestRequireSignatureAPI(t *testing.T) {
	f := newPolicyFixture(t)
	set := func(user, value string) (int, map[string]any) {
		return f.api(t, http.MethodPost, "/api/v1/projects/require-signature", user, map[string]string{"project": "team/app", "requireSignature": value})
	}
	for user, want := range map[string]int{"": http.StatusUnauthorized, f.rep: http.StatusForbidden, f.dev: http.StatusForbidden, f.o: http.StatusNotFound} {
		if status, body := set(user, "enforce"); status != want {
			t.Errorf("set as %q: %d %v, want %d", user, status, body, want)
		}
	}
	if status, body := set(f.maint, "sometimes"); status != http.StatusBadRequest || !strings.Contains(body["error"].(string), "off, warn") {
		t.Errorf("bad value: %d %v", status, body)
	}
	if status, _ := f.api(t, http.MethodPost, "/api/v1/projects/require-signature", "admin", map[string]string{"project": "no/such", "requireSignature": "warn"}); status != http.StatusNotFound {
		t.Errorf("unknown project: %d", status)
	}
	if status, body := set(f.maint, "enforce"); status != http.StatusOK || body["previous"] != "off" || body["requireSignature"] != "enforce" {
		t.Fatalf("maintainer sets enforce: %d %v", status, body)
	}
	if status, body := f.api(t, http.MethodGet, "/api/v1/projects/require-signature?project=team/app", f.rep, nil); status != http.StatusOK || body["requireSignature"] != "enforce" {
		t.Errorf("reporter reads: %d %v", status, body)
	}
	if status, _ := f.api(t, http.MethodGet, "/api/v1/projects/require-signature?project=team/app", f.o, nil); status != http.StatusNotFound {
		t.Errorf("outsider reads: %d", status)
	}

	const pulls = 20
	for range pulls {
		r, b := f.pull(t, http.MethodGet, f.rep, "team/app", "v1")
		if r.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "has no verified signature") || !strings.Contains(string(b), "require-signature: enforce") {
			t.Fatalf("reporter pulls an unsigned image: %d %s", r.StatusCode, b)
		}
	}
	if r, _ := f.pull(t, http.MethodHead, f.rep, "team/app", "v1"); r.StatusCode != http.StatusOK {
		t.Errorf("HEAD: %d", r.StatusCode)
	}
	// Producers are served: a developer, and an admin (whose access token
	// does not say it is an admin's).
	for _, who := range []string{f.dev, "admin"} {
		r, _ := f.pull(t, http.MethodGet, who, "team/app", f.teamImg)
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Warning"), "served because you may push") {
			t.Errorf("%s pulls: %d, Warning %q", who, r.StatusCode, r.Header.Get("Warning"))
		}
	}
	if r, _ := f.pull(t, http.MethodGet, f.o, "other/app", "v1"); r.StatusCode != http.StatusOK || r.Header.Get("Warning") != "" {
		t.Errorf("another project's image: %d %q", r.StatusCode, r.Header.Get("Warning"))
	}

	resp, metrics := call(t, http.MethodGet, f.e.URL+"/metrics", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	for outcome, n := range map[string]string{"unsigned_denied": "20", "unsigned_producer": "2"} {
		if !regexp.MustCompile(`(?m)^hallmark_registry_pull_policy_total\{outcome="` + outcome + `"\} ` + n + `$`).Match(metrics) {
			t.Errorf("metrics lack %s = %s:\n%s", outcome, n, grepLines(metrics, "pull_policy"))
		}
	}
	_, audit := f.api(t, http.MethodGet, "/api/v1/audit?action="+auth.AuditPullDenied, "admin", nil)
	if evs := audit["events"].([]any); len(evs) != 1 || evs[0].(map[string]any)["actor"] != f.rep {
		t.Errorf("%d refused pulls of one image: audit %v, want one event", pulls, evs)
	}
	_, audit = f.api(t, http.MethodGet, "/api/v1/audit?action="+auth.AuditRequireSig, "admin", nil)
	if evs := audit["events"].([]any); len(evs) != 1 || evs[0].(map[string]any)["actor"] != f.maint || evs[0].(map[string]any)["detail"] != "require-signature off -> enforce" {
		t.Errorf("the setting's audit: %v", evs)
	}

	// warn: served with the warning to everyone.
	if status, _ := set("admin", "warn"); status != http.StatusOK {
		t.Fatal(status)
	}
	r, _ := f.pull(t, http.MethodGet, f.rep, "team/app", "v1")
	if w := r.Header.Get("Warning"); r.StatusCode != http.StatusOK || !strings.HasPrefix(w, `299 - "image `) || !strings.Contains(w, "require-signature: warn") {
		t.Errorf("warn: %d, Warning %q", r.StatusCode, w)
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestQuarantineAPIAdminToken: the admin token may quarantine anywhere,
// and its changes are audited as the admin token's.
func TestQuarantineAPIAdminToken(t *testing.T) {
	f := newPolicyFixture(t)
	tok, err := os.ReadFile(filepath.Join(f.e.DataDir, server.AdminTokenFile))
	if err != nil {
		t.Skipf("no admin token file: %v", err)
	}
	b, _ := json.Marshal(map[string]any{"items": items("other/app", f.otherImg), "reason": "incident 42"})
	resp, body := call(t, http.MethodPost, f.e.URL+"/api/v1/quarantine", strings.TrimSpace(string(tok)), b)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	_, audit := f.api(t, http.MethodGet, "/api/v1/audit?action=quarantine", "admin", nil)
	if evs := audit["events"].([]any); len(evs) != 1 || evs[0].(map[string]any)["actorKind"] != auth.KindAdminToken {
		t.Errorf("audit %v", evs)
	}
	if status, body := f.api(t, http.MethodGet, "/api/v1/quarantine?"+url.Values{"repository": {"other/app"}}.Encode(), f.o, nil); status != http.StatusOK || len(body["quarantines"].([]any)) != 1 {
		t.Errorf("the other project's developer lists it: %d %v", status, body)
	}
}
