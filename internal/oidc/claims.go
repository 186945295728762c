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
	fileSegmentRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]+$`) })
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
	job, err := job.normalized(now, ErrInvalidClaims)
	if err != nil {
		return nil, err
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
	project, ns, refPrefix := job.ProjectPath, job.NamespacePath, refPrefix(job.RefType)
	c := &gitlabClaims{
		NamespaceID: job.NamespaceID, NamespacePath: ns, ProjectID: job.ProjectID, ProjectPath: project,
		UserID: job.UserID, UserLogin: job.UserLogin, UserEmail: job.UserEmail, UserAccessLevel: job.UserAccessLevel,
		JobProjectID: job.ProjectID, JobProjectPath: project, JobNamespaceID: job.NamespaceID, JobNamespacePath: ns,
		PipelineID: job.PipelineID, PipelineSource: job.PipelineSource, JobID: job.JobID,
		Ref: job.Ref, RefType: job.RefType, RefPath: refPrefix + job.Ref, RefProtected: strconv.FormatBool(job.RefProtected),
		RunnerID: job.RunnerID, RunnerEnvironment: job.RunnerEnvironment, SHA: job.SHA, ProjectVisibility: job.Visibility,
		CIConfigRefURI: u.Host + strings.TrimSuffix(u.Path, "/") + "/" + project + "//" + job.CIConfigPath + "@" + refPrefix + job.Ref,
		CIConfigSHA:    job.CIConfigSHA,
		JTI:            jti, Iss: i.cfg.URL,
		Iat: now.Unix(), Nbf: now.Add(-notBeforeSkew).Unix(), Exp: now.Add(ttl).Unix(),
		Sub: "project_path:" + project + ":ref_type:" + job.RefType + ":ref:" + job.Ref,
		Aud: aud,
	}
	if job.Environment != "" {
		c.Environment, c.EnvironmentProtected, c.DeploymentTier, c.EnvironmentAction = job.Environment, "false", job.DeploymentTier, "start"
	}
	return c, nil
}

// refPrefix is the git ref namespace of a ref type (branch or tag).
func refPrefix(refType string) string {
	if refType == "tag" {
		return "refs/tags/"
	}
	return "refs/heads/"
}

// normalized is the one validation of a CI job's claims, shared by Mint
// and the CI job endpoint (CIJobs): it checks every field of job and
// returns it with the defaults applied (see Mint; ProjectPath without
// surrounding slashes, SHA lower-cased). Audience and TTL are the
// issuance's business, not the job's, and are left as they are. Errors
// wrap invalid.
func (job JobClaims) normalized(now time.Time, invalid error) (JobClaims, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{invalid}, a...)...)
	}
	project := strings.Trim(job.ProjectPath, "/")
	if err := validatePath(project, 2); err != nil {
		return job, bad("project %q: %v (want group/project, e.g. group/app)", job.ProjectPath, err)
	}
	job.ProjectPath = project
	if job.NamespacePath == "" {
		job.NamespacePath = project[:strings.LastIndex(project, "/")]
	} else if err := validatePath(job.NamespacePath, 1); err != nil || !strings.HasPrefix(project, job.NamespacePath+"/") {
		return job, bad("namespace %q must be a parent path of project %q", job.NamespacePath, project)
	}
	job.RefType = orDefault(job.RefType, "branch")
	if job.RefType != "branch" && job.RefType != "tag" {
		return job, bad("ref_type %q: use branch or tag", job.RefType)
	}
	if job.Ref == "" {
		return job, bad("ref is required: a branch or tag name such as main")
	}
	if err := validateRef(job.Ref); err != nil {
		return job, bad("ref %q: %v", job.Ref, err)
	}
	sha := strings.ToLower(job.SHA)
	if sha == "" {
		sha = strings.Repeat("0", 40)
	} else if !ValidCommitSHA(sha) {
		return job, bad("sha %q: want a 40 (or 64) character hex commit id", job.SHA)
	}
	job.SHA = sha
	configSHA := strings.ToLower(job.CIConfigSHA)
	if configSHA == "" {
		configSHA = sha
	} else if !ValidCommitSHA(configSHA) {
		return job, bad("ci_config_sha %q: want a 40 (or 64) character hex commit id", job.CIConfigSHA)
	}
	job.CIConfigSHA = configSHA
	job.CIConfigPath = orDefault(job.CIConfigPath, ".gitlab-ci.yml")
	if err := validateConfigPath(job.CIConfigPath); err != nil {
		return job, bad("ci_config_path %q: %v", job.CIConfigPath, err)
	}
	job.ProjectID = orDefault(job.ProjectID, syntheticID(project))
	job.NamespaceID = orDefault(job.NamespaceID, syntheticID(job.NamespacePath))
	job.PipelineID = orDefault(job.PipelineID, strconv.FormatInt(now.UnixMilli(), 10))
	job.JobID = orDefault(job.JobID, job.PipelineID)
	job.UserID = orDefault(job.UserID, "1")
	for _, id := range []struct{ name, v string }{{"project id", job.ProjectID}, {"namespace id", job.NamespaceID},
		{"pipeline id", job.PipelineID}, {"job id", job.JobID}, {"user id", job.UserID}} {
		if !ValidNumericID(id.v) {
			return job, bad("%s %q: want a positive decimal number", id.name, id.v)
		}
	}
	job.PipelineSource = orDefault(job.PipelineSource, "push")
	if !wordRE().MatchString(job.PipelineSource) {
		return job, bad("pipeline_source %q: want a word such as push, web, schedule, merge_request_event", job.PipelineSource)
	}
	job.UserLogin = orDefault(job.UserLogin, "hallmark")
	if !ValidUserLogin(job.UserLogin) {
		return job, bad("user %q: not a valid user name (letters, digits, '_', '-', '.')", job.UserLogin)
	}
	if job.UserEmail != "" && !validEmail(job.UserEmail) {
		return job, bad("user email %q: not an email address", job.UserEmail)
	}
	job.UserAccessLevel = orDefault(job.UserAccessLevel, "developer")
	if !slices.Contains([]string{"guest", "planner", "reporter", "developer", "maintainer", "owner"}, job.UserAccessLevel) {
		return job, bad("user_access_level %q: use guest, planner, reporter, developer, maintainer or owner", job.UserAccessLevel)
	}
	if job.RunnerID == 0 {
		job.RunnerID = 1
	} else if job.RunnerID < 0 {
		return job, bad("runner_id %d: want a positive number", job.RunnerID)
	}
	job.RunnerEnvironment = orDefault(job.RunnerEnvironment, "self-hosted")
	if job.RunnerEnvironment != "self-hosted" && job.RunnerEnvironment != "gitlab-hosted" {
		return job, bad("runner_environment %q: use self-hosted or gitlab-hosted", job.RunnerEnvironment)
	}
	job.Visibility = orDefault(job.Visibility, "private")
	if !slices.Contains([]string{"public", "internal", "private"}, job.Visibility) {
		return job, bad("visibility %q: use public, internal or private", job.Visibility)
	}
	if job.Environment != "" {
		if len(job.Environment) > 255 || strings.ContainsAny(job.Environment, "\t\r\n") {
			return job, bad("environment %q: not a valid environment name", job.Environment)
		}
		job.DeploymentTier = orDefault(job.DeploymentTier, "other")
		if !slices.Contains([]string{"production", "staging", "testing", "development", "other"}, job.DeploymentTier) {
			return job, bad("deployment_tier %q: use production, staging, testing, development or other", job.DeploymentTier)
		}
	} else if job.DeploymentTier != "" {
		return job, bad("deployment_tier needs an environment")
	}
	return job, nil
}

// validEmail is the check of the user_email claim: at most 255
// characters, an @, no white space.
func validEmail(e string) bool {
	return len(e) <= 255 && strings.Contains(e, "@") && !strings.ContainsAny(e, " \t\r\n")
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

// validateConfigPath checks the path of a CI configuration file in the
// repository (.gitlab-ci.yml, ci/.gitlab-ci.yml): segments of letters,
// digits, '_', '-' and '.' (a leading dot too), none "." or "..".
func validateConfigPath(p string) error {
	if p == "" || len(p) > 255 {
		return fmt.Errorf("want a file path of 1-255 characters")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." || !fileSegmentRE().MatchString(seg) {
			return fmt.Errorf("segment %q: use letters, digits, '_', '-' and '.'", seg)
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
	if strings.IndexFunc(r, func(c rune) bool { return c <= 0x20 || c == 0x7f }) >= 0 {
		return fmt.Errorf("contains white space or control characters")
	}
	for _, c := range r {
		if strings.ContainsRune("~^:?*[\\", c) {
			return fmt.Errorf("contains %q, which git forbids in ref names", c)
		}
	}
	return nil
}

// syntheticID is a stable positive number for a path, used as project or
// namespace ID when the caller does not know one (in the ID token's claims
// and in the CI job environment's CI_PROJECT_ID alike).
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
