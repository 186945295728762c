package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// JobClaims describes the CI job a token is minted for. Only Audience,
// ProjectPath and Ref are required; see Mint for the defaults.
type JobClaims struct {
	Audience []string `json:"aud"` // e.g. ["sigstore"]

	ProjectPath   string `json:"project"`        // group[/subgroup...]/project
	ProjectID     string `json:"project_id"`     // default: a stable number derived from ProjectPath
	NamespacePath string `json:"namespace"`      // default: ProjectPath without its last segment
	NamespaceID   string `json:"namespace_id"`   // default: a stable number derived from NamespacePath
	Visibility    string `json:"visibility"`     // public, internal or private (default private)
	CIConfigPath  string `json:"ci_config_path"` // default .gitlab-ci.yml

	Ref          string `json:"ref"`           // branch or tag name, e.g. main
	RefType      string `json:"ref_type"`      // branch (default) or tag
	RefProtected bool   `json:"ref_protected"` // the ref is protected
	SHA          string `json:"sha"`           // commit, 40 (or 64) hex; default 40 zeros (unknown)
	CIConfigSHA  string `json:"ci_config_sha"` // default SHA

	PipelineID     string `json:"pipeline_id"`     // default: derived from the current time
	PipelineSource string `json:"pipeline_source"` // default push
	JobID          string `json:"job_id"`          // default: PipelineID

	UserID          string `json:"user_id"`           // default 1
	UserLogin       string `json:"user"`              // default hallmark
	UserEmail       string `json:"user_email"`        // default ""
	UserAccessLevel string `json:"user_access_level"` // default developer

	RunnerID          int64  `json:"runner_id"`          // default 1
	RunnerEnvironment string `json:"runner_environment"` // self-hosted (default) or gitlab-hosted

	Environment    string `json:"environment"`     // deployment environment (optional)
	DeploymentTier string `json:"deployment_tier"` // production, staging, testing, development, other (with Environment)

	TTL time.Duration `json:"-"` // default IssuerConfig.DefaultTTL, at most MaxTTL
}

// claimsSupported lists the claims of a minted token (discovery document).
var claimsSupported = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti",
	"namespace_id", "namespace_path", "project_id", "project_path",
	"user_id", "user_login", "user_email", "user_access_level",
	"job_project_id", "job_project_path", "job_namespace_id", "job_namespace_path",
	"pipeline_id", "pipeline_source", "job_id", "ref", "ref_type", "ref_path", "ref_protected",
	"environment", "environment_protected", "deployment_tier", "environment_action",
	"runner_id", "runner_environment", "sha", "ci_config_ref_uri", "ci_config_sha", "project_visibility",
}

// gitlabClaims is the payload of a minted token, field for field what
// GitLab puts in a CI ID token (lib/gitlab/ci/jwt.rb, jwt_v2.rb): IDs are
// strings, runner_id is a number, ref_protected is "true"/"false".
type gitlabClaims struct {
	NamespaceID          string `json:"namespace_id"`
	NamespacePath        string `json:"namespace_path"`
	ProjectID            string `json:"project_id"`
	ProjectPath          string `json:"project_path"`
	UserID               string `json:"user_id"`
	UserLogin            string `json:"user_login"`
	UserEmail            string `json:"user_email"`
	UserAccessLevel      string `json:"user_access_level"`
	JobProjectID         string `json:"job_project_id"`
	JobProjectPath       string `json:"job_project_path"`
	JobNamespaceID       string `json:"job_namespace_id"`
	JobNamespacePath     string `json:"job_namespace_path"`
	PipelineID           string `json:"pipeline_id"`
	PipelineSource       string `json:"pipeline_source"`
	JobID                string `json:"job_id"`
	Ref                  string `json:"ref"`
	RefType              string `json:"ref_type"`
	RefPath              string `json:"ref_path"`
	RefProtected         string `json:"ref_protected"`
	Environment          string `json:"environment,omitempty"`
	EnvironmentProtected string `json:"environment_protected,omitempty"`
	DeploymentTier       string `json:"deployment_tier,omitempty"`
	EnvironmentAction    string `json:"environment_action,omitempty"`
	RunnerID             int64  `json:"runner_id"`
	RunnerEnvironment    string `json:"runner_environment"`
	SHA                  string `json:"sha"`
	ProjectVisibility    string `json:"project_visibility"`
	CIConfigRefURI       string `json:"ci_config_ref_uri"`
	CIConfigSHA          string `json:"ci_config_sha"`
	JTI                  string `json:"jti"`
	Iss                  string `json:"iss"`
	Iat                  int64  `json:"iat"`
	Nbf                  int64  `json:"nbf"`
	Exp                  int64  `json:"exp"`
	Sub                  string `json:"sub"`
	Aud                  any    `json:"aud"` // a string for one audience, else an array (as GitLab)
}

// notBeforeSkew is how far before iat a token becomes valid (GitLab: 5 s).
const notBeforeSkew = 5 * time.Second

// Patterns are compiled on first use, not at package init: every hallmark
// process (a CLI run too) would otherwise pay for them at start-up.
var (
	pathSegmentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`) })
	digitsRE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[1-9][0-9]{0,18}$`) })
	hexSHARE      = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`) })
	wordRE        = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`) })
)

// ValidCommitSHA reports whether sha is a lower-case 40 or 64 character hex
// commit id, as the commit claims require.
func ValidCommitSHA(sha string) bool { return hexSHARE().MatchString(sha) }

// ValidNumericID reports whether id is a positive decimal number of at most
// 19 digits, as the id claims (pipeline, job, project, ...) require.
func ValidNumericID(id string) bool { return digitsRE().MatchString(id) }

// ValidUserLogin reports whether login is a GitLab user name the user_login
// claim accepts: letters, digits, '_', '-', '.', not starting with '-' or
// '.', at most 255 characters.
func ValidUserLogin(login string) bool {
	return pathSegmentRE().MatchString(login) && len(login) <= 255
}

// Mint signs a CI job ID token for job. Defaults: ref_type branch,
// namespace = project path without its last segment, project_id and
// namespace_id stable numbers derived from the paths, pipeline_id and
// job_id from the current time, pipeline_source push, user "hallmark"
// (id 1, developer), runner 1 self-hosted, visibility private, sha 40 zeros,
// ci_config_sha = sha. iss is the issuer URL; ci_config_ref_uri is
// <host[:port]>/<project>//.gitlab-ci.yml@refs/heads/<ref> (refs/tags/ for
// tags) and sub project_path:<project>:ref_type:<type>:ref:<ref>, exactly
// as GitLab builds them.
func (i *Issuer) Mint(ctx context.Context, job JobClaims) (string, error) {
	tok, _, _, err := i.mint(ctx, job)
	return tok, err
}

// mint is Mint that also returns the token's expiry and the kid of the key
// that signed it.
func (i *Issuer) mint(ctx context.Context, job JobClaims) (tok string, exp time.Time, kid string, err error) {
	now := i.cfg.Now()
	c, err := i.claims(job, now)
	if err != nil {
		return "", time.Time{}, "", err
	}
	i.maybeRotate(ctx, now)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("oidc: encode claims: %w", err)
	}
	k := i.current()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("oidc: signer: %w", err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		return "", time.Time{}, "", fmt.Errorf("oidc: sign token: %w", err)
	}
	if tok, err = obj.CompactSerialize(); err != nil {
		return "", time.Time{}, "", err
	}
	return tok, time.Unix(c.Exp, 0).UTC(), k.kid, nil
}

// claims validates job, applies the defaults and builds the payload.
func (i *Issuer) claims(job JobClaims, now time.Time) (*gitlabClaims, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidClaims}, a...)...)
	}
	var auds []string
	for _, a := range job.Audience {
		if a = strings.TrimSpace(a); a != "" {
			if len(a) > 255 {
				return nil, bad("audience longer than 255 characters")
			}
			auds = append(auds, a)
		}
	}
	if len(auds) == 0 {
		return nil, bad("no audience; give the service the token is for, e.g. aud=sigstore")
	}
	project := strings.Trim(job.ProjectPath, "/")
	if err := validatePath(project, 2); err != nil {
		return nil, bad("project %q: %v (want group/project, e.g. group/app)", job.ProjectPath, err)
	}
	ns := job.NamespacePath
	if ns == "" {
		ns = project[:strings.LastIndex(project, "/")]
	} else if err := validatePath(ns, 1); err != nil || !strings.HasPrefix(project, ns+"/") {
		return nil, bad("namespace %q must be a parent path of project %q", ns, project)
	}
	refType := job.RefType
	if refType == "" {
		refType = "branch"
	}
	var refPrefix string
	switch refType {
	case "branch":
		refPrefix = "refs/heads/"
	case "tag":
		refPrefix = "refs/tags/"
	default:
		return nil, bad("ref_type %q: use branch or tag", refType)
	}
	if err := validateRef(job.Ref); err != nil {
		return nil, bad("ref %q: %v", job.Ref, err)
	}
	sha := strings.ToLower(job.SHA)
	if sha == "" {
		sha = strings.Repeat("0", 40)
	} else if !ValidCommitSHA(sha) {
		return nil, bad("sha %q: want a 40 (or 64) character hex commit id", job.SHA)
	}
	configSHA := strings.ToLower(job.CIConfigSHA)
	if configSHA == "" {
		configSHA = sha
	} else if !ValidCommitSHA(configSHA) {
		return nil, bad("ci_config_sha %q: want a 40 (or 64) character hex commit id", job.CIConfigSHA)
	}
	configPath := job.CIConfigPath
	if configPath == "" {
		configPath = ".gitlab-ci.yml"
	} else if err := validatePath(configPath, 1); err != nil {
		return nil, bad("ci_config_path %q: %v", configPath, err)
	}
	ids := map[string]*string{}
	projectID, nsID := job.ProjectID, job.NamespaceID
	if projectID == "" {
		projectID = syntheticID(project)
	}
	if nsID == "" {
		nsID = syntheticID(ns)
	}
	pipelineID := job.PipelineID
	if pipelineID == "" {
		pipelineID = strconv.FormatInt(now.UnixMilli(), 10)
	}
	jobID := job.JobID
	if jobID == "" {
		jobID = pipelineID
	}
	userID := job.UserID
	if userID == "" {
		userID = "1"
	}
	ids["project_id"], ids["namespace_id"], ids["pipeline_id"], ids["job_id"], ids["user_id"] = &projectID, &nsID, &pipelineID, &jobID, &userID
	for name, v := range ids {
		if !ValidNumericID(*v) {
			return nil, bad("%s %q: want a positive decimal number", name, *v)
		}
	}
	source := orDefault(job.PipelineSource, "push")
	if !wordRE().MatchString(source) {
		return nil, bad("pipeline_source %q: want a word such as push, web, schedule, merge_request_event", source)
	}
	login := orDefault(job.UserLogin, "hallmark")
	if !ValidUserLogin(login) {
		return nil, bad("user %q: not a valid user name", login)
	}
	if len(job.UserEmail) > 255 || strings.ContainsAny(job.UserEmail, " \t\r\n") || (job.UserEmail != "" && !strings.Contains(job.UserEmail, "@")) {
		return nil, bad("user_email %q: not an email address", job.UserEmail)
	}
	access := orDefault(job.UserAccessLevel, "developer")
	if !slices.Contains([]string{"guest", "planner", "reporter", "developer", "maintainer", "owner"}, access) {
		return nil, bad("user_access_level %q: use guest, planner, reporter, developer, maintainer or owner", access)
	}
	runnerID := job.RunnerID
	if runnerID == 0 {
		runnerID = 1
	} else if runnerID < 0 {
		return nil, bad("runner_id %d: want a positive number", runnerID)
	}
	runnerEnv := orDefault(job.RunnerEnvironment, "self-hosted")
	if runnerEnv != "self-hosted" && runnerEnv != "gitlab-hosted" {
		return nil, bad("runner_environment %q: use self-hosted or gitlab-hosted", runnerEnv)
	}
	visibility := orDefault(job.Visibility, "private")
	if !slices.Contains([]string{"public", "internal", "private"}, visibility) {
		return nil, bad("visibility %q: use public, internal or private", visibility)
	}
	var tier string
	if job.Environment != "" {
		if len(job.Environment) > 255 || strings.ContainsAny(job.Environment, "\t\r\n") {
			return nil, bad("environment %q: not a valid environment name", job.Environment)
		}
		tier = orDefault(job.DeploymentTier, "other")
		if !slices.Contains([]string{"production", "staging", "testing", "development", "other"}, tier) {
			return nil, bad("deployment_tier %q: use production, staging, testing, development or other", tier)
		}
	} else if job.DeploymentTier != "" {
		return nil, bad("deployment_tier needs an environment")
	}
	ttl := job.TTL
	if ttl == 0 {
		ttl = i.cfg.DefaultTTL
	}
	if ttl < time.Second || ttl > i.cfg.MaxTTL {
		return nil, bad("ttl %s: want between 1s and the server's maximum %s", ttl, i.cfg.MaxTTL)
	}
	u, err := url.Parse(i.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("oidc: issuer URL: %w", err)
	}
	jti, err := uuid4()
	if err != nil {
		return nil, err
	}
	var aud any = auds[0]
	if len(auds) > 1 {
		aud = auds
	}
	c := &gitlabClaims{
		NamespaceID: nsID, NamespacePath: ns, ProjectID: projectID, ProjectPath: project,
		UserID: userID, UserLogin: login, UserEmail: job.UserEmail, UserAccessLevel: access,
		JobProjectID: projectID, JobProjectPath: project, JobNamespaceID: nsID, JobNamespacePath: ns,
		PipelineID: pipelineID, PipelineSource: source, JobID: jobID,
		Ref: job.Ref, RefType: refType, RefPath: refPrefix + job.Ref, RefProtected: strconv.FormatBool(job.RefProtected),
		RunnerID: runnerID, RunnerEnvironment: runnerEnv, SHA: sha, ProjectVisibility: visibility,
		CIConfigRefURI: u.Host + strings.TrimSuffix(u.Path, "/") + "/" + project + "//" + configPath + "@" + refPrefix + job.Ref,
		CIConfigSHA:    configSHA,
		JTI:            jti, Iss: i.cfg.URL,
		Iat: now.Unix(), Nbf: now.Add(-notBeforeSkew).Unix(), Exp: now.Add(ttl).Unix(),
		Sub: "project_path:" + project + ":ref_type:" + refType + ":ref:" + job.Ref,
		Aud: aud,
	}
	if job.Environment != "" {
		c.Environment, c.EnvironmentProtected, c.DeploymentTier, c.EnvironmentAction = job.Environment, "false", tier, "start"
	}
	return c, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// validatePath checks a GitLab path of at least min segments.
func validatePath(p string, min int) error {
	if p == "" {
		return fmt.Errorf("empty")
	}
	if len(p) > 255 {
		return fmt.Errorf("longer than 255 characters")
	}
	segs := strings.Split(p, "/")
	if len(segs) < min {
		return fmt.Errorf("want at least %d path segments", min)
	}
	for _, s := range segs {
		if !pathSegmentRE().MatchString(s) || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
			return fmt.Errorf("segment %q: use letters, digits, '_', '-' and '.'", s)
		}
	}
	return nil
}

// validateRef applies git's ref name rules (git check-ref-format) to a
// short branch or tag name.
func validateRef(r string) error {
	switch {
	case r == "":
		return fmt.Errorf("empty; give a branch or tag name")
	case len(r) > 255:
		return fmt.Errorf("longer than 255 characters")
	case strings.HasPrefix(r, "refs/"):
		return fmt.Errorf("give the short name (main, v1.0), not the full ref")
	case strings.HasPrefix(r, "/") || strings.HasSuffix(r, "/") || strings.HasSuffix(r, ".") || strings.HasPrefix(r, "-"):
		return fmt.Errorf("cannot start with '/' or '-' or end with '/' or '.'")
	case strings.Contains(r, "..") || strings.Contains(r, "//") || strings.Contains(r, "@{") || strings.HasSuffix(r, ".lock") || r == "@":
		return fmt.Errorf("contains a sequence git forbids in ref names")
	}
	for _, c := range r {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(" ~^:?*[\\", c) {
			return fmt.Errorf("contains %q, which git forbids in ref names", c)
		}
	}
	return nil
}

// syntheticID is a stable positive number for a path, used as project or
// namespace ID when the caller does not know one.
func syntheticID(path string) string {
	h := sha256.Sum256([]byte("hallmark-id:" + path))
	return strconv.FormatUint(binary.BigEndian.Uint64(h[:8])%999_999_999+1, 10)
}

func uuid4() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("oidc: jti: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
