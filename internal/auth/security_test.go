package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
)

// TestCILoginNameIsNotALockoutTarget: every CI job logs in as
// gitlab-ci-token (with a job token or an ID token: unguessable secrets),
// so that name is no user whose password could be guessed. If failures
// under it drained a per-user budget, anyone could send a few bogus
// "gitlab-ci-token" logins from one address and lock every CI job of the
// server out of the registry. The per-address budget still applies.
func TestCILoginNameIsNotALockoutTarget(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, auth.Config{UserLimit: auth.RateLimit{Burst: 5, Every: time.Minute}, AddrLimit: auth.RateLimit{Burst: 8, Every: time.Minute}})
	must[auth.Project](t)(f.adm.AddProject(ctx, "group/app", auth.VisibilityPrivate, ""))
	secret, _, err := f.adm.CreateJobToken(ctx, auth.JobTokenRequest{Project: "group/app", JobID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ { // the attacker's whole address budget
		if _, err := f.svc.Authenticate(ctx, auth.JobTokenUser, "hmjob_bogus", "198.51.100.1:1"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("bogus job token %d: %v", i, err)
		}
	}
	if _, err := f.svc.Authenticate(ctx, auth.JobTokenUser, "hmjob_bogus", "198.51.100.1:1"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("the attacking address is not throttled: %v", err)
	}
	if p, err := f.svc.Authenticate(ctx, auth.JobTokenUser, secret, "203.0.113.9:1"); err != nil || p.Project != "group/app" {
		t.Fatalf("a CI job on another address is locked out by someone else's failed gitlab-ci-token logins: %v", err)
	}
}
