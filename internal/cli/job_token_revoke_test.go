package cli_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/config"
	"github.com/hallmark-dev/hallmark/internal/testenv"
)

// TestJobTokenRevoke (issue 9, defect 8): `hallmark project job-token
// revoke` on the data dir and `hallmark ci done` in the job (over the API,
// with the job's own token) revoke CI job tokens: they can no longer log
// in.
func TestJobTokenRevoke(t *testing.T) {
	srv := testenv.StartServer(t, func(c *config.Server) { c.Auth = "on" })
	host := strings.TrimPrefix(srv.URL, "http://")
	hm, _ := newToolsNoCosign(t)
	dd := "--data-dir=" + srv.DataDir
	hm.ok("project", "add", "group/app", dd)
	hm.ok("project", "add", "other/app", dd)

	r := hm.ok("project", "job-token", "group/app", "--job", "7", dd)
	job := strings.TrimSpace(r.stdout)
	id := regexp.MustCompile(`CI job token (\d+) `).FindStringSubmatch(r.stderr)
	if id == nil {
		t.Fatalf("no token id in %q", r.stderr)
	}
	hm.okStdin(job+"\n", "login", "-u", "gitlab-ci-token", "--password-stdin", host)
	for _, bad := range [][]string{
		{"project", "job-token", "revoke", "other/app", id[1], dd}, // another project's id
		{"project", "job-token", "revoke", "group/app", "x", dd},
		{"project", "job-token", "revoke", "group/app", "0", dd},
		{"project", "job-token", "revoke", "group/app", "9999", dd},
		{"project", "job-token", "revoke", "group/app", dd},
	} {
		if r := hm.run(bad...); r.code == 0 {
			t.Errorf("%v succeeded: %s", bad, r)
		}
	}
	hm.okStdin(job+"\n", "login", "-u", "gitlab-ci-token", "--password-stdin", host)
	if r := hm.ok("project", "job-token", "revoke", "group/app", id[1], dd); !strings.Contains(r.stderr, "revoked CI job token "+id[1]) {
		t.Errorf("revoke said %q", r.stderr)
	}
	if r := hm.runEnv(nil, job+"\n", "login", "-u", "gitlab-ci-token", "--password-stdin", host); r.code == 0 {
		t.Fatal("login with a revoked job token succeeded")
	}
	hm.ok("project", "job-token", "revoke", "group/app", id[1], dd) // again: not an error

	// The job's last step, with its own token.
	job2 := strings.TrimSpace(hm.ok("project", "job-token", "group/app", "--job", "8", dd).stdout)
	env := []string{"CI_JOB_TOKEN=" + job2, "HALLMARK_URL=" + srv.URL}
	if r := hm.okEnv(env, "ci", "done"); !strings.Contains(r.stderr, "of group/app job 8") {
		t.Errorf("ci done said %q", r.stderr)
	}
	if r := hm.runEnv(nil, job2+"\n", "login", "-u", "gitlab-ci-token", "--password-stdin", host); r.code == 0 {
		t.Fatal("login with the job token after ci done succeeded")
	}
	if r := hm.runEnv([]string{"CI_JOB_TOKEN=hmjob_unknown", "HALLMARK_URL=" + srv.URL}, "", "ci", "done"); r.code == 0 || !strings.Contains(r.stderr, "no such CI job token") {
		t.Errorf("ci done with an unknown token: %s", r)
	}
	if r := hm.runEnv([]string{"HALLMARK_URL=" + srv.URL}, "", "ci", "done"); r.code == 0 || !strings.Contains(r.stderr, "CI_JOB_TOKEN") {
		t.Errorf("ci done without CI_JOB_TOKEN: %s", r)
	}
}
