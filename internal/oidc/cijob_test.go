package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

func newTestCIJobs(t testing.TB, iss *Issuer, minter JobTokenMinter) *CIJobs {
	t.Helper()
	ci, err := NewCIJobs(iss, minter, nil, CIJobConfig{URL: testIssuerURL, MaxJobTokenTTL: 7 * 24 * time.Hour,
		Fingerprint: func() string { return "fp" }})
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// TestCIJobOneClaimRule: the CI job environment and the ID token minted
// for it come from one validation of the claims, so they agree, and the
// project id is the same synthetic id with or without the issuer.
func TestCIJobOneClaimRule(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	var minted []string
	minter := func(_ context.Context, project, job, pipeline, user string, ttl time.Duration) (string, error) {
		minted = append(minted, strings.Join([]string{project, job, pipeline, user, ttl.String()}, " "))
		return "hmjob_test", nil
	}
	req := CIJobRequest{Project: "/Group/Sub/App/", Ref: "main", SHA: strings.ToUpper("714a629c0b401fdce83e847fc9589983fc6f46bc"), Pipeline: "574", User: "alice"}
	with, err := newTestCIJobs(t, iss, minter).Job(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	without, err := newTestCIJobs(t, nil, nil).Job(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := newTestVerifier(t, c, iss).Verify(context.Background(), with["SIGSTORE_ID_TOKEN"], "sigstore")
	if err != nil {
		t.Fatal(err)
	}
	for v, claim := range map[string]string{"CI_PROJECT_ID": "project_id", "CI_PROJECT_PATH": "project_path", "CI_PROJECT_NAMESPACE": "namespace_path",
		"CI_COMMIT_SHA": "sha", "CI_PIPELINE_ID": "pipeline_id", "CI_JOB_ID": "job_id", "GITLAB_USER_LOGIN": "user_login",
		"GITLAB_USER_ID": "user_id", "GITLAB_USER_EMAIL": "user_email", "CI_COMMIT_REF_NAME": "ref"} {
		if got, _ := tok.StringClaim(claim); got != with[v] {
			t.Errorf("%s = %q, the ID token's %s = %q", v, with[v], claim, got)
		}
		if without[v] != with[v] {
			t.Errorf("%s without the issuer %q, with it %q", v, without[v], with[v])
		}
	}
	if with["CI_PROJECT_ID"] != syntheticID("Group/Sub/App") || with["CI_JOB_ID"] != "575" || with["CI_COMMIT_SHA"] != strings.ToLower(req.SHA) {
		t.Errorf("project id %q job %q sha %q", with["CI_PROJECT_ID"], with["CI_JOB_ID"], with["CI_COMMIT_SHA"])
	}
	if want := []string{"group/sub/app 575 574 alice 1h0m0s"}; !reflect.DeepEqual(minted, want) {
		t.Errorf("job token minted for %q, want %q", minted, want)
	}
	if with["CI_JOB_TOKEN"] != "hmjob_test" || without["CI_JOB_TOKEN"] != "" || without["SIGSTORE_ID_TOKEN"] != "" {
		t.Errorf("tokens: with %q, without %q %q", with["CI_JOB_TOKEN"], without["CI_JOB_TOKEN"], without["SIGSTORE_ID_TOKEN"])
	}
	if len(with) != len(CIJobVariables) || len(without) != len(CIJobVariables) {
		t.Errorf("%d and %d variables, want %d", len(with), len(without), len(CIJobVariables))
	}
}

// TestNormalizedIsIdempotent: the claims the CI endpoint validated are
// valid for Mint as they are (explicit defaults included).
func TestNormalizedIsIdempotent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for _, j := range []JobClaims{
		job(),
		{ProjectPath: "a/b", Ref: "v1", RefType: "tag"},
		{ProjectPath: "a/b/c", Ref: "main", CIConfigPath: "ci/.gitlab-ci.yml", Environment: "prod", UserEmail: "a@b"},
	} {
		once, err := j.normalized(now, ErrInvalidClaims)
		if err != nil {
			t.Fatalf("%+v: %v", j, err)
		}
		twice, err := once.normalized(now, ErrInvalidClaims)
		if err != nil || !reflect.DeepEqual(once, twice) {
			t.Errorf("normalized twice: %+v, %v; once: %+v", twice, err, once)
		}
	}
	for _, bad := range []string{".", "..", "a/../b", "a//b", "a b", ""} {
		if err := validateConfigPath(bad); err == nil {
			t.Errorf("config path %q accepted", bad)
		}
	}
}

func TestCIJobInvalid(t *testing.T) {
	ci := newTestCIJobs(t, newTestIssuer(t, newClock(), ""), nil)
	for _, tc := range []struct {
		req  CIJobRequest
		want string
	}{
		{CIJobRequest{Ref: "main"}, "project"},
		{CIJobRequest{Project: "app", Ref: "main"}, "group/project"},
		{CIJobRequest{Project: "group/a b", Ref: "main"}, "project"},
		{CIJobRequest{Project: "group/app"}, "ref is required"},
		{CIJobRequest{Project: "group/app", Ref: "refs/heads/main"}, "short name"},
		{CIJobRequest{Project: "group/app", Ref: "ma\tin"}, "white space"},
		{CIJobRequest{Project: "group/app", Ref: "main", RefType: "merge"}, "branch or tag"},
		{CIJobRequest{Project: "group/app", Ref: "main", SHA: "xyz"}, "hex commit"},
		{CIJobRequest{Project: "group/app", Ref: "main", Pipeline: "x1"}, "pipeline id"},
		{CIJobRequest{Project: "group/app", Ref: "main", Job: "0"}, "job id"},
		{CIJobRequest{Project: "group/app", Ref: "main", User: "-x"}, "user"},
		{CIJobRequest{Project: "group/app", Ref: "main", UserName: "a\nb"}, "user name"},
		{CIJobRequest{Project: "group/app", Ref: "main", UserEmail: "a b@c"}, "email"},
		{CIJobRequest{Project: "group/app", Ref: "main", TTL: 8 * 24 * time.Hour}, "at most"},
		{CIJobRequest{Project: "group/app", Ref: "main", TTL: 2 * time.Hour}, "oidc-max-token-ttl"},
		{CIJobRequest{Project: "Group/APP", Ref: "main", SHA: strings.Repeat("a", 40)}, ""}, // valid: lower-cased for the registry
	} {
		_, err := ci.Job(context.Background(), tc.req)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%+v: %v", tc.req, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidCIJob) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalidCIJob mentioning %q", tc.req, err, tc.want)
		}
	}
}

// FuzzCIJobHandler: whatever the body, the CI job endpoint answers 200
// with every variable or 400, and never an error of its own.
func FuzzCIJobHandler(f *testing.F) {
	for _, s := range []string{`{"project":"group/app","ref":"main"}`, `{"project":"g/a","ref":"v1","ref_type":"tag","ttl":"5m","user_email":"x@y"}`,
		`{"project":"g//a","ref":"m"}`, `{}`, `null`, `[]`, `{"ttl":"1ns"}`, `{"project":"a/b","ref":"main","extra":1}`} {
		f.Add(s)
	}
	ci := newTestCIJobs(f, newTestIssuer(f, newClock(), ""), nil)
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		ci.ServeHTTP(w, httptest.NewRequest(http.MethodPost, CIJobPath, strings.NewReader(body)))
		switch w.Code {
		case http.StatusOK:
			var out CIJobResponse
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			for _, k := range CIJobVariables {
				if _, ok := out.Variables[k]; !ok {
					t.Fatalf("200 without %s for %q", k, body)
				}
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("%q: HTTP %d %s", body, w.Code, w.Body)
		}
		if w.Header().Get("Cache-Control") != "no-store" {
			t.Fatal("reply without Cache-Control: no-store")
		}
	})
}
