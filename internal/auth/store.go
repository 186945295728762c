package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Sentinel errors returned by stores; test with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Visibility of a project's repositories.
const (
	VisibilityPublic  = "public"  // anyone, also anonymous clients, may pull
	VisibilityPrivate = "private" // only members (and admins) may pull
)

// Role is a project member's role; each grants a fixed set of actions.
type Role string

// Roles, in increasing order of power.
const (
	RoleReporter   Role = "reporter"   // pull
	RoleDeveloper  Role = "developer"  // pull, push
	RoleMaintainer Role = "maintainer" // pull, push, delete
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleReporter, RoleDeveloper, RoleMaintainer:
		return r, nil
	}
	return "", fmt.Errorf("role %q: use reporter (pull), developer (pull, push) or maintainer (pull, push, delete)", s)
}

// Actions lists what the role may do on the project's repositories.
func (r Role) Actions() []string {
	switch r {
	case RoleReporter:
		return []string{ActionPull}
	case RoleDeveloper:
		return []string{ActionPull, ActionPush}
	case RoleMaintainer:
		return []string{ActionDelete, ActionPull, ActionPush}
	}
	return nil
}

// User is a registry account.
type User struct {
	ID                int64
	Name              string
	PasswordHash      string // argon2id PHC string
	Admin             bool
	PasswordChangedAt time.Time
	Created           time.Time
}

// Project is a repository path prefix: project "group/app" covers the
// repositories group/app and group/app/<anything>.
type Project struct {
	ID         int64
	Path       string
	Visibility string
	// OIDCIssuer, when set, is the only issuer whose ID tokens may log in
	// for this project; empty means only the built-in issuer's.
	OIDCIssuer string
	// RequireSignature is whether pulls of images without a verified
	// signature are served (off, the default), warned about or refused
	// (internal/policy sets it, internal/registry enforces it).
	RequireSignature meta.RequireSignature
	Created          time.Time
}

// Member is a user's role in a project.
type Member struct {
	Project string
	User    string
	Role    Role
}

// PAT is a personal access token (only its SHA-256 is stored).
type PAT struct {
	ID       int64
	User     string
	Name     string
	Scopes   []string // subset of pull, push, delete
	Hash     string   // hex SHA-256 of the token
	Expires  time.Time
	Revoked  bool
	Created  time.Time
	LastUsed time.Time
}

// JobToken is a CI job token (only its SHA-256 is stored). It may push only
// to its own project.
type JobToken struct {
	ID       int64
	Project  string
	JobID    string
	Pipeline string
	// User is the user who triggered the job (informational; if it names a
	// Hallmark user, the job may also pull what that user may pull).
	User    string
	Hash    string
	Expires time.Time
	Revoked bool
	Created time.Time
}

// AuditEvent is one audit log record.
type AuditEvent struct {
	ID         int64
	Time       time.Time
	Action     string // see the Audit* constants
	Actor      string // token subject: user name, ci-job:<project>:<job>, oidc subject, or "" (anonymous)
	ActorKind  string // anonymous, user, pat, job, oidc, admin-token
	Repository string
	Reference  string // tag or digest
	Digest     string
	RemoteAddr string
	Detail     string // free text, never a secret
}

// AuditQuery filters audit events; zero fields do not filter.
type AuditQuery struct {
	Action     string
	Repository string
	Actor      string
	Since      time.Time
	Limit      int
	// Before, when > 0, returns only events with ID < Before (paging).
	Before int64
}

// Users stores accounts.
type Users interface {
	CreateUser(ctx context.Context, u User) (User, error) // ErrExists if the name is taken
	GetUser(ctx context.Context, name string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	DeleteUser(ctx context.Context, name string) error
	SetPassword(ctx context.Context, name, hash string, at time.Time) error
}

// Projects stores projects and memberships.
type Projects interface {
	CreateProject(ctx context.Context, p Project) (Project, error)
	// FindProject returns the project with the longest path that covers
	// repo (equal to it or a prefix followed by '/'), or ErrNotFound.
	FindProject(ctx context.Context, repo string) (Project, error)
	GetProject(ctx context.Context, path string) (Project, error)
	ListProjects(ctx context.Context) ([]Project, error)
	DeleteProject(ctx context.Context, path string) error
	// SetProjectIssuer pins project path to the OIDC issuer URL ("" unpins).
	SetProjectIssuer(ctx context.Context, path, issuer string) error
	SetMember(ctx context.Context, project, user string, role Role) error
	RemoveMember(ctx context.Context, project, user string) error
	// MemberRole returns user's role in project, or ErrNotFound.
	MemberRole(ctx context.Context, projectID int64, user string) (Role, error)
	// UserProjects returns the paths of the projects user is a member of
	// (every role may pull).
	UserProjects(ctx context.Context, user string) ([]string, error)
	ListMembers(ctx context.Context, project string) ([]Member, error)
}

// Tokens stores personal access tokens and CI job tokens by hash.
type Tokens interface {
	CreatePAT(ctx context.Context, t PAT) (PAT, error)
	PATByHash(ctx context.Context, hash string) (PAT, error)
	GetPAT(ctx context.Context, id int64) (PAT, error)
	ListPATs(ctx context.Context, user string) ([]PAT, error)
	RevokePAT(ctx context.Context, id int64) error
	CreateJobToken(ctx context.Context, t JobToken) (JobToken, error)
	JobTokenByHash(ctx context.Context, hash string) (JobToken, error)
	GetJobToken(ctx context.Context, id int64) (JobToken, error)
	RevokeJobToken(ctx context.Context, id int64) error
}

// AuditLog stores audit events.
type AuditLog interface {
	RecordAudit(ctx context.Context, e AuditEvent) error
	QueryAudit(ctx context.Context, q AuditQuery) ([]AuditEvent, error)
}

// Store is everything the auth service needs from the database.
type Store interface {
	Users
	Projects
	Tokens
	AuditLog
}
