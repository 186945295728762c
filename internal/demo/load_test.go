package demo_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/demo"
	"github.com/hallmark-dev/hallmark/internal/server"
	"github.com/hallmark-dev/hallmark/internal/testenv"
	"github.com/hallmark-dev/hallmark/pkg/root"
	"github.com/hallmark-dev/hallmark/pkg/verify"
)

// authServer starts a server with auth on and returns it with its CI job
// source (over the admin HTTP API), its pinned trust and the admin
// credentials.
func authServer(t *testing.T) (*testenv.Server, demo.JobSource, *demo.Trust, demo.Credentials) {
	t.Helper()
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(srv.DataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	local, err := os.ReadFile(filepath.Join(srv.DataDir, server.TrustDir, root.TrustedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	trust, err := demo.FetchTrust(context.Background(), nil, srv.URL, root.Fingerprint(local))
	if err != nil {
		t.Fatal(err)
	}
	if trust.CAURL != srv.URL || trust.LogURL != srv.URL {
		t.Fatalf("signing services %s, %s; want the server %s", trust.CAURL, trust.LogURL, srv.URL)
	}
	jobs := &demo.HTTPJobs{URL: srv.URL, AdminToken: read(server.AdminTokenFile)}
	return srv, jobs, trust, demo.Credentials{Username: "admin", Password: read(server.AdminPasswordFile)}
}

// TestLoad is the CI-sized load test: 10 concurrent clients, each its own
// CI job (job token + ID token from the server, over 3 projects), push,
// keylessly sign and verify 3 images each against a server with auth on;
// no errors; afterwards every image verifies again in one batch and the
// index holds (and verified) every signature. bench scenario "load" runs
// the full size (50 x 10) against a server process.
func TestLoad(t *testing.T) {
	srv, jobs, trust, admin := authServer(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name              string
		keyBased          bool
		clients, per, prj int
	}{
		{"keyless", false, 10, 3, 3},
		{"key", true, 4, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := demo.RunLoad(ctx, demo.LoadConfig{Jobs: jobs, Trust: trust, Clients: tc.clients,
				ImagesPerClient: tc.per, Projects: tc.prj, KeyBased: tc.keyBased})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Errors) > 0 {
				t.Fatalf("%d errors, the first: %v", len(res.Errors), res.Errors[0])
			}
			n := tc.clients * tc.per
			if len(res.Done) != n || len(res.Cycle) != n || len(res.Push) != n || len(res.Sign) != n || len(res.Verify) != n {
				t.Fatalf("done %d, cycle timings %d; want %d", len(res.Done), len(res.Cycle), n)
			}
			seen := map[string]bool{}
			for _, im := range res.Done {
				seen[im.Ref.DigestStr()] = true
			}
			if len(seen) != n {
				t.Fatalf("%d distinct digests among %d images", len(seen), n)
			}
			if _, errs := demo.VerifyAll(ctx, res.Done, trust, res.Key, admin, 8, nil); len(errs) > 0 {
				t.Fatalf("batch re-verify: %d failures, the first: %v", len(errs), errs[0])
			}
			total, verified, err := demo.IndexCount(ctx, srv.URL, "Bearer "+jobsAdminToken(jobs), res.Projects, nil)
			if err != nil {
				t.Fatal(err)
			}
			if total != n {
				t.Errorf("index holds %d signatures of the run's projects; want %d", total, n)
			}
			// The index verifies keyless signatures with the server's own
			// trust; key-based ones only with a configured --trusted-key.
			if wantVerified := map[bool]int{false: n, true: 0}[tc.keyBased]; verified != wantVerified {
				t.Errorf("index verified %d signatures; want %d", verified, wantVerified)
			}
			// A batch check that cannot pass by accident: another tag fails.
			bad := append([]demo.LoadImage(nil), res.Done[0])
			bad[0].Tag = "not-" + bad[0].Tag
			if _, errs := demo.VerifyAll(ctx, bad, trust, res.Key, admin, 1, nil); len(errs) != 1 || !errors.Is(errs[0], verify.ErrNoMatching) {
				t.Errorf("verifying with a wrong tag: %v; want one ErrNoMatching", errs)
			}
		})
	}
}

func jobsAdminToken(j demo.JobSource) string { return j.(*demo.HTTPJobs).AdminToken }

// TestSessionScope: a session pushes, signs and searches with its job's
// token only: another project's repository is refused, a wrong tag or
// identity does not verify, and the search sees the job's signature.
func TestSessionScope(t *testing.T) {
	_, jobs, trust, _ := authServer(t)
	ctx := context.Background()
	envA, err := jobs.Job(ctx, demo.JobRequest{Project: "grp/a", Ref: "main"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Job(ctx, demo.JobRequest{Project: "grp/b", Ref: "main"}); err != nil {
		t.Fatal(err)
	}
	a, err := demo.NewSession(envA, demo.SessionConfig{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	img, err := demo.BuildImage(envA, "")
	if err != nil {
		t.Fatal(err)
	}
	tag := a.Tag("")
	ref, err := a.Push(ctx, img, tag)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := a.Sign(ctx, ref, tag)
	if err != nil {
		t.Fatal(err)
	}
	if len(signed.Annotations) != 11 || signed.Annotations["tag"] != tag || signed.Certificate == nil {
		t.Fatalf("signed %v (certificate %v); want the eleven annotations with tag %s", signed.Annotations, signed.Certificate != nil, tag)
	}
	res, err := a.Verify(ctx, ref, tag)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := demo.VerificationJSON(res); !strings.Contains(string(out), `"com.gitlab.ci.commit.sha":"`+envA["CI_COMMIT_SHA"]+`"`) {
		t.Errorf("verification JSON lacks the commit: %s", out)
	}
	if _, err := a.Verify(ctx, ref, "other"); !errors.Is(err, verify.ErrNoMatching) {
		t.Errorf("verify with another tag: %v; want ErrNoMatching", err)
	}
	sr, err := a.Search(ctx, "com.gitlab.ci.commit.sha", envA["CI_COMMIT_SHA"])
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Results) != 1 || sr.Results[0].Subject != ref.DigestStr() || sr.Results[0].Status != "verified" {
		t.Errorf("search: %s; want the one verified signature of %s", sr.Raw, ref.DigestStr())
	}

	// Job A's token in project B's repository: refused.
	intoB := maps.Clone(envA)
	intoB["CI_REGISTRY_IMAGE"] = strings.Replace(envA["CI_REGISTRY_IMAGE"], "grp/a", "grp/b", 1)
	sb, err := demo.NewSession(intoB, demo.SessionConfig{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Push(ctx, img, tag); err == nil {
		t.Error("job A's token pushed into project B")
	}
	// B's identity does not match A's signature.
	other := maps.Clone(envA)
	other["CI_PROJECT_URL"] = strings.Replace(envA["CI_PROJECT_URL"], "grp/a", "grp/b", 1)
	so, err := demo.NewSession(other, demo.SessionConfig{Trust: trust})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := so.Verify(ctx, ref, tag); !errors.Is(err, verify.ErrNoMatching) {
		t.Errorf("verify with project B's identity: %v; want ErrNoMatching", err)
	}
}

// TestFetchTrustPin: a wrong pin or none is refused.
func TestFetchTrustPin(t *testing.T) {
	srv := testenv.StartServer(t, nil)
	ctx := context.Background()
	if _, err := demo.FetchTrust(ctx, nil, srv.URL, ""); !errors.Is(err, demo.ErrTrust) {
		t.Errorf("no pin: %v", err)
	}
	if _, err := demo.FetchTrust(ctx, nil, srv.URL, strings.Repeat("ab", 32)); !errors.Is(err, demo.ErrTrust) || !strings.Contains(err.Error(), "fingerprint") {
		t.Errorf("wrong pin: %v", err)
	}
}

func TestDecodeJobResponse(t *testing.T) {
	good := `{"variables":{"CI_SERVER_URL":"http://h","CI_PROJECT_URL":"http://h/g/a","CI_PROJECT_PATH":"g/a",` +
		`"CI_REGISTRY_IMAGE":"h/g/a","CI_COMMIT_SHA":"0123456789012345678901234567890123456789","CI_COMMIT_SHORT_SHA":"01234567",` +
		`"CI_COMMIT_REF_NAME":"main","HALLMARK_URL":"http://h"}}`
	if _, err := demo.DecodeJobResponse([]byte(good)); err != nil {
		t.Fatalf("valid reply: %v", err)
	}
	for name, raw := range map[string]string{
		"not JSON":      `{"variables":`,
		"no variables":  `{}`,
		"null":          `null`,
		"bad name":      strings.Replace(good, `"HALLMARK_URL"`, `"HALLMARK URL"`, 1),
		"missing":       strings.Replace(good, `"CI_REGISTRY_IMAGE"`, `"X"`, 1),
		"empty value":   strings.Replace(good, `"h/g/a"`, `""`, 1),
		"not a string":  strings.Replace(good, `"main"`, `1`, 1),
		"leading digit": strings.Replace(good, `"CI_SERVER_URL"`, `"1CI"`, 1),
	} {
		if _, err := demo.DecodeJobResponse([]byte(raw)); !errors.Is(err, demo.ErrInvalidJob) {
			t.Errorf("%s: %v; want ErrInvalidJob", name, err)
		}
	}
}

func FuzzDecodeJobResponse(f *testing.F) {
	f.Add([]byte(`{"variables":{"CI_SERVER_URL":"http://h","CI_PROJECT_URL":"http://h/g/a","CI_PROJECT_PATH":"g/a","CI_REGISTRY_IMAGE":"h/g/a","CI_COMMIT_SHA":"0123","CI_COMMIT_SHORT_SHA":"0123","CI_COMMIT_REF_NAME":"main","HALLMARK_URL":"http://h"}}`))
	f.Add([]byte(`{"variables":{"a b":"c"}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env, err := demo.DecodeJobResponse(raw)
		if err != nil {
			if !errors.Is(err, demo.ErrInvalidJob) {
				t.Fatalf("error not wrapping ErrInvalidJob: %v", err)
			}
			return
		}
		if demo.CheckJob(env) != nil {
			t.Fatal("accepted an incomplete job environment")
		}
	})
}
