package oidc

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/hallmark-dev/hallmark/internal/keystore"
)

func TestMintGitLabClaimSet(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	j := job()
	j.UserLogin, j.UserEmail, j.UserID = "alice", "alice@example.com", "42"
	j.RefProtected = true
	j.RunnerID = 12270835
	j.Environment, j.DeploymentTier = "prod", "production"
	j.TTL = 7 * time.Minute
	tok := mint(t, iss, j)

	hdr := strings.Split(tok, ".")[0]
	hb, _ := base64.RawURLEncoding.DecodeString(hdr)
	var h map[string]string
	if err := json.Unmarshal(hb, &h); err != nil {
		t.Fatal(err)
	}
	if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] != iss.KeyID() {
		t.Fatalf("header %v, want RS256/JWT/kid %s", h, iss.KeyID())
	}

	p := payloadOf(t, tok)
	now := c.Now().Unix()
	wantStr := map[string]string{
		"iss":                testIssuerURL,
		"sub":                "project_path:group/app:ref_type:branch:ref:main",
		"aud":                "sigstore",
		"project_path":       "group/app",
		"namespace_path":     "group",
		"job_project_path":   "group/app",
		"job_namespace_path": "group",
		"user_id":            "42",
		"user_login":         "alice",
		"user_email":         "alice@example.com",
		"user_access_level":  "developer",
		"pipeline_id":        "574",
		"pipeline_source":    "push",
		"job_id":             "302",
		"ref":                "main",
		"ref_type":           "branch",
		"ref_path":           "refs/heads/main",
		"ref_protected":      "true",
		"environment":        "prod",
		"deployment_tier":    "production",
		"runner_environment": "self-hosted",
		"sha":                "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"ci_config_sha":      "714a629c0b401fdce83e847fc9589983fc6f46bc",
		"ci_config_ref_uri":  "hallmark.example.com:8443/group/app//.gitlab-ci.yml@refs/heads/main",
		"project_visibility": "private",
	}
	for k, want := range wantStr {
		if got, ok := p[k].(string); !ok || got != want {
			t.Errorf("claim %s = %#v, want string %q", k, p[k], want)
		}
	}
	for _, k := range []string{"project_id", "namespace_id", "job_project_id", "job_namespace_id"} {
		s, ok := p[k].(string)
		if !ok || !digitsRE().MatchString(s) {
			t.Errorf("claim %s = %#v, want a decimal string", k, p[k])
		}
	}
	if p["project_id"] != p["job_project_id"] || p["namespace_id"] != p["job_namespace_id"] {
		t.Errorf("job_* claims differ from project claims")
	}
	if jti, _ := p["jti"].(string); len(jti) != 36 {
		t.Errorf("jti %v is not a UUID", p["jti"])
	}
	num := func(k string) int64 {
		n, ok := p[k].(json.Number)
		if !ok {
			t.Fatalf("claim %s = %#v, want a number", k, p[k])
		}
		i, err := n.Int64()
		if err != nil {
			t.Fatalf("claim %s: %v", k, err)
		}
		return i
	}
	if num("runner_id") != 12270835 {
		t.Errorf("runner_id %v", p["runner_id"])
	}
	if num("iat") != now || num("nbf") != now-5 || num("exp") != now+420 {
		t.Errorf("iat/nbf/exp = %d/%d/%d, want %d/%d/%d", num("iat"), num("nbf"), num("exp"), now, now-5, now+420)
	}
}

func TestMintTagsDefaultsAndAudiences(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	tok := mint(t, iss, JobClaims{Audience: []string{"sigstore", "vault"}, ProjectPath: "grp/sub/proj", Ref: "v1.2.3", RefType: "tag"})
	p := payloadOf(t, tok)
	checks := map[string]any{
		"sub":               "project_path:grp/sub/proj:ref_type:tag:ref:v1.2.3",
		"ref_path":          "refs/tags/v1.2.3",
		"ci_config_ref_uri": "hallmark.example.com:8443/grp/sub/proj//.gitlab-ci.yml@refs/tags/v1.2.3",
		"namespace_path":    "grp/sub",
		"sha":               strings.Repeat("0", 40),
		"user_login":        "hallmark",
		"ref_protected":     "false",
	}
	for k, want := range checks {
		if p[k] != want {
			t.Errorf("claim %s = %#v, want %#v", k, p[k], want)
		}
	}
	if _, ok := p["environment"]; ok {
		t.Error("environment claim present without an environment")
	}
	auds, ok := p["aud"].([]any)
	if !ok || len(auds) != 2 || auds[0] != "sigstore" || auds[1] != "vault" {
		t.Errorf("aud = %#v, want [sigstore vault]", p["aud"])
	}
	if exp, _ := p["exp"].(json.Number).Int64(); exp != c.Now().Add(10*time.Minute).Unix() {
		t.Errorf("default ttl: exp %d", exp)
	}
	// Synthetic IDs are stable per path.
	p2 := payloadOf(t, mint(t, iss, JobClaims{Audience: []string{"x"}, ProjectPath: "grp/sub/proj", Ref: "main"}))
	if p["project_id"] != p2["project_id"] || p["namespace_id"] != p2["namespace_id"] {
		t.Error("synthetic ids not stable")
	}
}

func TestMintRejectsBadClaims(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	cases := map[string]func(*JobClaims){
		"no audience":         func(j *JobClaims) { j.Audience = nil },
		"blank audience":      func(j *JobClaims) { j.Audience = []string{" "} },
		"no project":          func(j *JobClaims) { j.ProjectPath = "" },
		"project one segment": func(j *JobClaims) { j.ProjectPath = "app" },
		"project dotdot":      func(j *JobClaims) { j.ProjectPath = "group/../app" },
		"project space":       func(j *JobClaims) { j.ProjectPath = "group/my app" },
		"namespace not parent": func(j *JobClaims) {
			j.NamespacePath = "other"
		},
		"no ref":              func(j *JobClaims) { j.Ref = "" },
		"full ref":            func(j *JobClaims) { j.Ref = "refs/heads/main" },
		"ref with space":      func(j *JobClaims) { j.Ref = "ma in" },
		"ref with dotdot":     func(j *JobClaims) { j.Ref = "a..b" },
		"ref newline":         func(j *JobClaims) { j.Ref = "main\n" },
		"bad ref type":        func(j *JobClaims) { j.RefType = "commit" },
		"short sha":           func(j *JobClaims) { j.SHA = "abc123" },
		"non hex sha":         func(j *JobClaims) { j.SHA = strings.Repeat("g", 40) },
		"pipeline not number": func(j *JobClaims) { j.PipelineID = "12a" },
		"job zero":            func(j *JobClaims) { j.JobID = "0" },
		"bad source":          func(j *JobClaims) { j.PipelineSource = "Push Event" },
		"bad user":            func(j *JobClaims) { j.UserLogin = "a b" },
		"bad email":           func(j *JobClaims) { j.UserEmail = "not-an-email" },
		"bad access level":    func(j *JobClaims) { j.UserAccessLevel = "admin" },
		"negative runner":     func(j *JobClaims) { j.RunnerID = -1 },
		"bad runner env":      func(j *JobClaims) { j.RunnerEnvironment = "cloud" },
		"bad visibility":      func(j *JobClaims) { j.Visibility = "secret" },
		"tier without env":    func(j *JobClaims) { j.DeploymentTier = "production" },
		"bad tier":            func(j *JobClaims) { j.Environment, j.DeploymentTier = "e", "prod" },
		"ttl too long":        func(j *JobClaims) { j.TTL = 2 * time.Hour },
		"ttl negative":        func(j *JobClaims) { j.TTL = -time.Minute },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			j := job()
			mod(&j)
			_, err := iss.Mint(context.Background(), j)
			if !errors.Is(err, ErrInvalidClaims) {
				t.Fatalf("Mint = %v, want ErrInvalidClaims", err)
			}
		})
	}
}

func TestDiscoveryAndJWKS(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	var doc map[string]any
	if err := json.Unmarshal(iss.Discovery(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["issuer"] != testIssuerURL || doc["jwks_uri"] != testIssuerURL+"/oauth/discovery/keys" {
		t.Fatalf("discovery %v", doc)
	}
	if algs, _ := doc["id_token_signing_alg_values_supported"].([]any); len(algs) != 1 || algs[0] != "RS256" {
		t.Fatalf("algs %v", doc["id_token_signing_alg_values_supported"])
	}
	for _, k := range []string{"response_types_supported", "subject_types_supported", "claims_supported"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("discovery lacks %s", k)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys", len(set.Keys))
	}
	k := set.Keys[0]
	if !k.IsPublic() || k.Use != "sig" || k.Algorithm != "RS256" || k.KeyID != iss.KeyID() {
		t.Fatalf("JWK %+v", k)
	}
	// kid is the RFC 7638 thumbprint of the published key.
	tp, _ := k.Thumbprint(crypto.SHA256)
	if b64(tp) != k.KeyID {
		t.Fatalf("kid %s is not the RFC 7638 thumbprint %s", k.KeyID, b64(tp))
	}
	// The private key file is 0600.
	fi, err := os.Stat(iss.ks.Where(KeyNamePrefix + "1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
}

func TestKeyRotation(t *testing.T) {
	c := newClock()
	iss := newTestIssuer(t, c, "")
	v := newTestVerifier(t, c, iss)
	ctx := context.Background()
	oldKid := iss.KeyID()
	old := mint(t, iss, job())
	newKid, err := iss.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldKid || iss.KeyID() != newKid {
		t.Fatalf("rotation kept kid %s", oldKid)
	}
	fresh := mint(t, iss, job())
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		got, err := v.Verify(ctx, tok, "sigstore")
		if err != nil {
			t.Fatalf("%s token: %v", name, err)
		}
		if want := map[string]string{"old": oldKid, "new": newKid}[name]; got.KeyID != want {
			t.Errorf("%s token verified by %s, want %s", name, got.KeyID, want)
		}
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 || set.Keys[0].KeyID != newKid || set.Keys[1].KeyID != oldKid {
		t.Fatalf("JWKS after rotation: %v", kidsOf(set))
	}
	// Once every token of the old key has expired, the key leaves the set
	// and its tokens (even re-dated ones) stop verifying.
	c.Advance(time.Hour + retainMargin + time.Minute)
	if err := json.Unmarshal(iss.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0].KeyID != newKid {
		t.Fatalf("JWKS long after rotation: %v", kidsOf(set))
	}
	late := signJWT(t, jose.RS256, iss.keys[0].priv, oldKid, standardClaims(testIssuerURL, c.Now()))
	if _, err := v.Verify(ctx, late, "sigstore"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("token of a pruned key: %v, want ErrUnknownKey", err)
	}
}

func TestAutomaticRotation(t *testing.T) {
	c := newClock()
	ks := t.TempDir()
	first := newTestIssuer(t, c, ks)
	iss, err := NewIssuer(context.Background(), nil, first.ks, IssuerConfig{URL: testIssuerURL, Now: c.Now, RotationPeriod: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	k1 := iss.KeyID()
	mint(t, iss, job())
	if iss.KeyID() != k1 {
		t.Fatal("rotated before the period")
	}
	c.Advance(25 * time.Hour)
	// Concurrent mints past the period rotate exactly once.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := iss.Mint(context.Background(), job()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	tok := mint(t, iss, job())
	if iss.KeyID() == k1 {
		t.Fatal("not rotated after the period")
	}
	files, _ := filepath.Glob(filepath.Join(ks, KeyNamePrefix+"*.pem"))
	if len(files) != 2 {
		t.Fatalf("%d key files after concurrent automatic rotation, want 2", len(files))
	}
	if _, err := newTestVerifier(t, c, iss).Verify(context.Background(), tok, "sigstore"); err != nil {
		t.Fatal(err)
	}
}

func TestKeysSurviveRestart(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	first := newTestIssuer(t, c, dir)
	tok := mint(t, first, job())
	if _, err := first.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok2 := mint(t, first, job())

	// A new process: same key directory.
	second := newTestIssuer(t, c, dir)
	if second.KeyID() != first.KeyID() {
		t.Fatalf("restart signs with %s, want %s", second.KeyID(), first.KeyID())
	}
	v := newTestVerifier(t, c, second)
	for _, tk := range []string{tok, tok2} {
		if _, err := v.Verify(context.Background(), tk, "sigstore"); err != nil {
			t.Fatalf("token minted before the restart: %v", err)
		}
	}
}

func TestRotationSeenByOtherReplica(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	a := newTestIssuer(t, c, dir)
	b := newTestIssuer(t, c, dir) // another replica sharing the key dir
	kid, err := a.Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, a, job())
	// b has not rescanned yet; an unknown kid makes it look again.
	c.Advance(2 * time.Second)
	got, err := newTestVerifier(t, c, b).Verify(context.Background(), tok, "sigstore")
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != kid || b.KeyID() != kid {
		t.Fatalf("replica b: verified by %s, signs with %s; want %s", got.KeyID, b.KeyID(), kid)
	}
}

func TestIssuerRejectsNonRSAKey(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, KeyNamePrefix+"1.pem"), []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newClock()
	ks, _ := keystore.Open(dir)
	if _, err := NewIssuer(context.Background(), nil, ks, IssuerConfig{URL: testIssuerURL, Now: c.Now}); err == nil {
		t.Fatal("NewIssuer accepted a corrupt key file")
	}
}

func kidsOf(set jose.JSONWebKeySet) []string {
	var s []string
	for _, k := range set.Keys {
		s = append(s, k.KeyID)
	}
	return s
}
