package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sync"
	"time"

	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Limits on credentials created through the service.
const (
	MaxPATLifetime      = 366 * 24 * time.Hour
	MaxJobTokenLifetime = 7 * 24 * time.Hour
	DefaultJobTokenTTL  = time.Hour
)

// Patterns are compiled on first use, not at package init: every hallmark
// process (a CLI run too) would otherwise pay for them at start-up.
var userNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`) })

// ValidateUserName checks a user name: 1-64 letters, digits, '.', '_', '-'.
// The CI login name is reserved.
func ValidateUserName(name string) error {
	if !userNameRE().MatchString(name) {
		return fmt.Errorf("user name %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	if name == JobTokenUser {
		return fmt.Errorf("user name %q is reserved for CI job logins", name)
	}
	return nil
}

// Admin manages users, projects and credentials (used by the CLI, the
// server's bootstrap and the admin API). It needs only the store.
type Admin struct {
	Store Store
	Now   func() time.Time
}

func (a *Admin) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// AddUser creates a user with the given password.
func (a *Admin) AddUser(ctx context.Context, name, password string, admin bool) (User, error) {
	if err := ValidateUserName(name); err != nil {
		return User{}, err
	}
	if len(password) < 8 {
		return User{}, errors.New("password must be at least 8 characters")
	}
	h, err := HashPassword(password)
	if err != nil {
		return User{}, err
	}
	now := a.now()
	return a.Store.CreateUser(ctx, User{Name: name, PasswordHash: h, Admin: admin, PasswordChangedAt: now, Created: now})
}

// SetPassword changes a user's password; refresh tokens issued before the
// change stop working.
func (a *Admin) SetPassword(ctx context.Context, name, password string) error {
	if len(password) < 8 {
		return errors.New("password must be at least 8 characters")
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	return a.Store.SetPassword(ctx, name, h, a.now())
}

// GeneratePassword returns a random password (256 bits, URL-safe).
func GeneratePassword() string { return randomSecret("") }

// EnsureAdmin creates the bootstrap account "admin" when the database has
// no admin user, with the password that password returns (called only
// then). password must give every caller the same password (replicas
// starting together: one generates and stores it, the others read it),
// so that whichever creates the account, its password is the one handed
// out. created reports whether the account was made now.
func (a *Admin) EnsureAdmin(ctx context.Context, password func(context.Context) (string, error)) (created bool, err error) {
	users, err := a.Store.ListUsers(ctx)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if u.Admin {
			return false, nil
		}
	}
	pw, err := password(ctx)
	if err != nil {
		return false, fmt.Errorf("admin password: %w", err)
	}
	if _, err := a.AddUser(ctx, "admin", pw, true); err != nil {
		if errors.Is(err, ErrExists) {
			return false, nil
		}
		return false, fmt.Errorf("create admin account: %w", err)
	}
	return true, nil
}

// AddProject creates a project.
func (a *Admin) AddProject(ctx context.Context, path, visibility, oidcIssuer string) (Project, error) {
	if err := oci.ValidateName(path); err != nil {
		return Project{}, fmt.Errorf("project path: %w", err)
	}
	switch visibility {
	case VisibilityPublic, VisibilityPrivate:
	default:
		return Project{}, fmt.Errorf("visibility %q: use public (anonymous pull) or private", visibility)
	}
	return a.Store.CreateProject(ctx, Project{Path: path, Visibility: visibility, OIDCIssuer: oidcIssuer, Created: a.now()})
}

// SetProjectIssuer pins project path to the OIDC issuer URL: only that
// issuer's ID tokens may then log in to it. "" unpins it (then only the
// built-in issuer's tokens may).
func (a *Admin) SetProjectIssuer(ctx context.Context, path, issuer string) error {
	if issuer != "" {
		u, err := url.Parse(issuer)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("issuer %q: want the issuer URL, e.g. https://gitlab.example.com", issuer)
		}
	}
	return a.Store.SetProjectIssuer(ctx, path, issuer)
}

// CreatePAT issues a personal access token for user and returns the secret
// (shown once; only its hash is stored).
func (a *Admin) CreatePAT(ctx context.Context, user, name string, scopes []string, ttl time.Duration) (string, PAT, error) {
	sc, err := ParsePATScopes(scopes)
	if err != nil {
		return "", PAT{}, err
	}
	if ttl <= 0 || ttl > MaxPATLifetime {
		return "", PAT{}, fmt.Errorf("expiry %s: a personal access token must expire within %s", ttl, MaxPATLifetime)
	}
	if _, err := a.Store.GetUser(ctx, user); err != nil {
		return "", PAT{}, fmt.Errorf("user %q: %w", user, err)
	}
	secret := randomSecret(PATPrefix)
	now := a.now()
	t, err := a.Store.CreatePAT(ctx, PAT{User: user, Name: name, Scopes: sc, Hash: HashToken(secret), Expires: now.Add(ttl), Created: now})
	if err != nil {
		return "", PAT{}, err
	}
	return secret, t, nil
}

// JobTokenRequest asks for a CI job token.
type JobTokenRequest struct {
	Project  string
	JobID    string
	Pipeline string
	User     string
	TTL      time.Duration // default DefaultJobTokenTTL
	// CreateProject creates the project (private) if it does not exist.
	CreateProject bool
}

// CreateJobToken issues a CI job token for a project and returns the
// secret (only its hash is stored).
func (a *Admin) CreateJobToken(ctx context.Context, req JobTokenRequest) (string, JobToken, error) {
	if req.TTL == 0 {
		req.TTL = DefaultJobTokenTTL
	}
	if req.TTL < 0 || req.TTL > MaxJobTokenLifetime {
		return "", JobToken{}, fmt.Errorf("job token lifetime %s: must be positive and at most %s", req.TTL, MaxJobTokenLifetime)
	}
	if req.JobID == "" {
		return "", JobToken{}, errors.New("job id is required")
	}
	if _, err := a.Store.GetProject(ctx, req.Project); errors.Is(err, ErrNotFound) && req.CreateProject {
		if _, err := a.AddProject(ctx, req.Project, VisibilityPrivate, ""); err != nil && !errors.Is(err, ErrExists) {
			return "", JobToken{}, err
		}
	} else if err != nil {
		return "", JobToken{}, fmt.Errorf("project %q: %w", req.Project, err)
	}
	secret := randomSecret(JobTokenPrefix)
	now := a.now()
	t, err := a.Store.CreateJobToken(ctx, JobToken{Project: req.Project, JobID: req.JobID, Pipeline: req.Pipeline, User: req.User,
		Hash: HashToken(secret), Expires: now.Add(req.TTL), Created: now})
	if err != nil {
		return "", JobToken{}, err
	}
	return secret, t, nil
}

// RevokeJobToken revokes CI job token id, which must belong to project
// (any project when project is ""): it can no longer log in. Revoking a
// revoked token again is not an error. It returns the token.
func (a *Admin) RevokeJobToken(ctx context.Context, project string, id int64) (JobToken, error) {
	t, err := a.Store.GetJobToken(ctx, id)
	if err != nil {
		return JobToken{}, fmt.Errorf("CI job token %d: %w", id, err)
	}
	if project != "" && t.Project != project {
		return JobToken{}, fmt.Errorf("CI job token %d is not a token of project %s: %w", id, project, ErrNotFound)
	}
	if !t.Revoked {
		// ErrNotFound here: revoked meanwhile by someone else.
		if err := a.Store.RevokeJobToken(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
			return JobToken{}, fmt.Errorf("revoking CI job token %d: %w", id, err)
		}
		t.Revoked = true
	}
	return t, nil
}
