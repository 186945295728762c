package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Principal kinds.
const (
	KindAnonymous  = "anonymous"
	KindUser       = "user"
	KindPAT        = "pat"
	KindJob        = "job"
	KindOIDC       = "oidc"
	KindAdminToken = "admin-token"
)

// JobTokenUser is the user name CI jobs log in with (GitLab's
// CI_REGISTRY_USER), the password being $CI_JOB_TOKEN or an OIDC ID token.
const JobTokenUser = "gitlab-ci-token"

// Secret prefixes make tokens recognisable (to people, secret scanners and
// the login code, which picks the credential kind from them).
const (
	PATPrefix      = "hmpat_"
	JobTokenPrefix = "hmjob_"
)

// Errors returned by Authenticate and the token issuance.
var (
	// ErrBadCredentials is the only thing a client learns about a failed
	// login; the reason goes to the audit log.
	ErrBadCredentials = errors.New("invalid username or password")
	ErrThrottled      = errors.New("too many failed logins")
)

// ThrottledError says when the client may try again.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many failed logins; retry in %s", e.RetryAfter.Round(time.Second))
}

// Unwrap makes errors.Is(err, ErrThrottled) work.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// Principal is who a request or token speaks for.
type Principal struct {
	Kind    string // Kind* constants
	Name    string // token subject: user name, ci-job:<project>:<job>, OIDC sub; "" for anonymous
	User    string // the user a user/PAT principal is, or the user who triggered a job
	Admin   bool   // user/PAT principals only
	Project string // job and OIDC principals: the project they act for
	JobID   string
	CredID  int64    // PAT or job token id
	Scopes  []string // PAT scopes
	// Expires bounds refresh tokens (credential expiry); zero for none.
	Expires    time.Time
	OIDCIssuer string
}

// OIDCIdentity is a verified OIDC ID token as far as login is concerned.
type OIDCIdentity struct {
	Issuer      string
	Subject     string
	ProjectPath string // GitLab's project_path claim
	JobID       string
	User        string
	Expiry      time.Time
}

// OIDCVerifier verifies ID tokens presented as login passwords against the
// trusted issuers (satisfied in internal/server by an adapter over
// internal/oidc).
type OIDCVerifier interface {
	VerifyLogin(ctx context.Context, raw, audience string) (OIDCIdentity, error)
}

// Config configures the auth service.
type Config struct {
	// Issuer is the iss of registry tokens (the server's external URL).
	Issuer string
	// Realm is the token endpoint URL put in Bearer challenges.
	Realm string
	// Service is the aud of registry tokens; default: host of Issuer.
	Service string
	// OIDCAudience is the aud an ID token must carry to be accepted as a
	// login password; default Issuer (the Hallmark URL).
	OIDCAudience string
	// BuiltinIssuer is the URL of the server's own OIDC issuer ("" when it
	// is off). Its ID tokens may log in to any project; another trusted
	// issuer's only to a project pinned to it (Project.OIDCIssuer), so that
	// the owner of the same project path on another GitLab cannot push here.
	BuiltinIssuer string
	// AccessTTL is the lifetime of access tokens (default 5 minutes).
	AccessTTL time.Duration
	// RefreshTTL is the longest lifetime of refresh tokens (default 30
	// days); they never outlive the credential they were issued for.
	RefreshTTL time.Duration
	// Failed logins are throttled per client address (ClientAddr): every
	// credential failure counts against AddrLimit (default 30 then 1 per
	// 10 s), whatever the user name. Passwords, the only credentials short
	// enough to guess, also have per-user budgets: UserLimit per user name
	// and client address (default 10 then 1/min), so a guesser locks out
	// only its own address, and UserTotalLimit per user name over all
	// addresses (default 100 then 1/min), which bounds guessing from many
	// addresses but is not applied at addresses the user logged in from
	// within KnownAddrTTL (default 30 days), so it cannot lock the user out
	// where they work. Tokens (PATs, CI job tokens, ID tokens, refresh and
	// access tokens) carry 256 bits or a signature: their failures count
	// against the address only. The CI login name gitlab-ci-token has no
	// per-user budget (see userLimited).
	UserLimit, UserTotalLimit, AddrLimit RateLimit
	KnownAddrTTL                         time.Duration
	// Budgets keeps those budgets and the known addresses; default in
	// memory (each replica its own). Replicas sharing a database pass the
	// database's, so the budgets hold across them.
	Budgets BudgetStore
	// AccessCacheSize bounds how many verified access tokens are remembered
	// (default 16384) and CredentialRecheck how long the PAT or CI job token
	// behind one is trusted without reading it again (default 10 s); see
	// access.go for what this means for expiry and revocation.
	AccessCacheSize   int
	CredentialRecheck time.Duration
	// TrustedProxies are the peers (reverse proxies, load balancers) whose
	// X-Forwarded-For and X-Real-IP headers name the client (ClientAddr).
	TrustedProxies []netip.Prefix
	// External, when set, is the external token service (--auth=token):
	// /v2/ then accepts only its tokens, authorized from their access claim
	// alone, and its Bearer challenge names the service's realm and service
	// instead of Realm and Service (external.go). Logins with users, PATs,
	// job tokens and ID tokens still authenticate the admin and provenance
	// APIs.
	External *ExternalTokens
	// AdminToken returns the admin token (or "" if there is none); it
	// authorises the admin API like an admin user's credentials.
	AdminToken func() (string, error)
	// PullAuditInterval bounds the audit events of pulls the pull policy
	// refused or warned about: one per image and outcome per interval
	// (default 10 minutes).
	PullAuditInterval time.Duration
	// HashConcurrency bounds parallel password hashing (default NumCPU).
	HashConcurrency int
	// Now returns the current time (tests); default time.Now.
	Now func() time.Time
}

// Service authenticates clients, decides access and issues tokens.
type Service struct {
	store   Store
	signer  *TokenSigner
	oidc    OIDCVerifier
	log     *slog.Logger
	cfg     Config
	hasher  *hasher
	budgets BudgetStore    // failed-login budgets and known logins (cfg.Budgets)
	local   *MemoryBudgets // this replica's samples of audit records, and known logins it has recorded
	dummyPW string         // hash verified for unknown users, so timing does not reveal them

	access      *accessCache  // verified access tokens
	revocations atomic.Uint64 // bumped by every revocation made through this server
}

// New returns the auth service. oidc may be nil (ID-token logins are then
// refused).
func New(store Store, signer *TokenSigner, oidc OIDCVerifier, log *slog.Logger, cfg Config) (*Service, error) {
	if store == nil || signer == nil {
		return nil, errors.New("auth: store and token signer are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Realm == "" {
		return nil, errors.New("auth: token realm is required")
	}
	if cfg.Service == "" {
		u, err := url.Parse(cfg.Issuer)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("auth: cannot derive the service name from issuer %q; set it", cfg.Issuer)
		}
		cfg.Service = u.Host
	}
	if cfg.Service != signer.Service() {
		return nil, fmt.Errorf("auth: service %q differs from the token signer's %q", cfg.Service, signer.Service())
	}
	if cfg.OIDCAudience == "" {
		cfg.OIDCAudience = cfg.Issuer
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 5 * time.Minute
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = 30 * 24 * time.Hour
	}
	if cfg.UserLimit.Burst <= 0 || cfg.UserLimit.Every <= 0 {
		cfg.UserLimit = RateLimit{Burst: 10, Every: time.Minute}
	}
	if cfg.UserTotalLimit.Burst <= 0 || cfg.UserTotalLimit.Every <= 0 {
		cfg.UserTotalLimit = RateLimit{Burst: 100, Every: time.Minute}
	}
	if cfg.AddrLimit.Burst <= 0 || cfg.AddrLimit.Every <= 0 {
		cfg.AddrLimit = RateLimit{Burst: 30, Every: 10 * time.Second}
	}
	if cfg.AccessCacheSize <= 0 {
		cfg.AccessCacheSize = 16384
	}
	if cfg.CredentialRecheck <= 0 {
		cfg.CredentialRecheck = 10 * time.Second
	}
	if cfg.KnownAddrTTL <= 0 {
		cfg.KnownAddrTTL = 30 * 24 * time.Hour
	}
	if cfg.PullAuditInterval <= 0 {
		cfg.PullAuditInterval = 10 * time.Minute
	}
	if cfg.HashConcurrency <= 0 {
		cfg.HashConcurrency = runtime.NumCPU()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dummy, err := HashPassword(randomSecret(""))
	if err != nil {
		return nil, err
	}
	local := NewMemoryBudgets()
	if cfg.Budgets == nil {
		cfg.Budgets = local
	}
	return &Service{store: store, signer: signer, oidc: oidc, log: log, cfg: cfg, hasher: newHasher(cfg.HashConcurrency),
		budgets: cfg.Budgets, local: local, dummyPW: dummy, access: newAccessCache(cfg.AccessCacheSize)}, nil
}

// Signer returns the token signer.
func (s *Service) Signer() *TokenSigner { return s.signer }

func randomSecret(prefix string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the stored form of a PAT or job token: hex SHA-256. The
// tokens carry 256 random bits, so a fast hash is enough.
func HashToken(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// looksLikeJWT reports whether s has the shape of a compact JWS.
func looksLikeJWT(s string) bool {
	return strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

// safeName returns a login name fit for the audit log: a name that looks
// like a secret (people paste tokens into the user field) is redacted.
func safeName(name string) string {
	if strings.HasPrefix(name, PATPrefix) || strings.HasPrefix(name, JobTokenPrefix) || looksLikeJWT(name) || len(name) > 128 {
		return "<redacted>"
	}
	return name
}

// userLimited reports whether failed logins under username count against
// a per-user budget. The CI login name is shared by every CI job and its
// credentials (job tokens, ID tokens) cannot be guessed: a budget for it
// would only let anyone lock all CI jobs out with a few bogus logins.
func userLimited(username string) bool {
	return username != "" && username != JobTokenUser
}

// isPassword reports whether a login secret is a password (something a
// person chose, so something one can guess) rather than a token.
func isPassword(secret string) bool {
	return !strings.HasPrefix(secret, PATPrefix) && !strings.HasPrefix(secret, JobTokenPrefix) && !looksLikeJWT(secret)
}

// throttled reports whether the client address, or for a password login
// the user name at that address or over all addresses, is over its budget.
func (s *Service) throttled(ctx context.Context, username, remote string, password bool) error {
	now := s.cfg.Now()
	checks := []charge{{addrKey(remote), s.cfg.AddrLimit, "client address"}}
	if password && userLimited(username) {
		checks = append(checks, charge{userAddrKey(username, remote), s.cfg.UserLimit, "user name at this address"})
		known, err := s.knownLogin(ctx, userAddrKey(username, remote), now)
		if err != nil {
			return err
		}
		if !known {
			checks = append(checks, charge{userKey(username), s.cfg.UserTotalLimit, "user name"})
		}
	}
	c, retry, err := exhausted(ctx, s.budgets, checks, now)
	if err != nil || c == nil {
		return err
	}
	// Audited at most once per period per budget and replica, so a flood
	// cannot flood the audit log.
	if allow(ctx, s.local, charge{key: "throttled:" + c.key, rl: RateLimit{Burst: 1, Every: c.rl.Every}}, now) {
		s.Audit(ctx, AuditEvent{Action: AuditThrottled, Actor: safeName(username), RemoteAddr: remote,
			Detail: "failed-login budget of the " + c.what + " exhausted"})
	}
	return &ThrottledError{RetryAfter: retry}
}

// loginFailed charges a failed login to the client address (and, for a
// wrong password, to the user name) and audits it (reason never contains
// the secret).
func (s *Service) loginFailed(ctx context.Context, username, remote string, password bool, reason string) error {
	charges := []charge{{addrKey(remote), s.cfg.AddrLimit, ""}}
	if password && userLimited(username) {
		charges = append(charges, charge{userAddrKey(username, remote), s.cfg.UserLimit, ""}, charge{userKey(username), s.cfg.UserTotalLimit, ""})
	}
	if _, err := spend(ctx, s.budgets, charges, s.cfg.Now()); err != nil {
		s.log.ErrorContext(ctx, "recording a failed login in its budgets", "err", err)
	}
	s.Audit(ctx, AuditEvent{Action: AuditLoginFailed, Actor: safeName(username), RemoteAddr: remote, Detail: reason})
	return ErrBadCredentials
}

// knownLogin reports whether key (a user name at an address) logged in
// within KnownAddrTTL, as this replica remembers or the budget store does.
func (s *Service) knownLogin(ctx context.Context, key string, now time.Time) (bool, error) {
	since := now.Add(-s.cfg.KnownAddrTTL)
	if ok, _ := s.local.LoginSince(ctx, key, since); ok || s.budgets == BudgetStore(s.local) {
		return ok, nil
	}
	return s.budgets.LoginSince(ctx, key, since)
}

// loginRefresh is how stale this replica's record of a known login may be
// before a login is written to the shared budget store again.
const loginRefresh = time.Hour

// rememberLogin records a successful login of a user name at an address;
// with a shared store, a write at most once per loginRefresh per key and
// replica.
func (s *Service) rememberLogin(ctx context.Context, key string, now time.Time) {
	if s.budgets != BudgetStore(s.local) {
		if recent, _ := s.local.LoginSince(ctx, key, now.Add(-loginRefresh)); !recent {
			if err := s.budgets.RememberLogin(ctx, key, now); err != nil {
				s.log.ErrorContext(ctx, "recording a login's address", "err", err)
				return
			}
		}
	}
	s.local.RememberLogin(ctx, key, now)
}

// SweepBudgets drops the failed-login budgets that are full again and
// the known logins older than KnownAddrTTL, keeping the budget store
// bounded; the server runs it every few minutes.
func (s *Service) SweepBudgets(ctx context.Context) (int64, error) {
	now := s.cfg.Now()
	n, err := s.local.SweepBudgets(ctx, now, now.Add(-s.cfg.KnownAddrTTL), maxBudgets)
	if s.budgets != BudgetStore(s.local) {
		var m int64
		m, err = s.budgets.SweepBudgets(ctx, now, now.Add(-s.cfg.KnownAddrTTL), maxBudgets)
		n += m
	}
	return n, err
}

// Authenticate checks login credentials: a user's password, a personal
// access token (with its owner's name), a CI job token (user
// gitlab-ci-token) or an OIDC ID token from a trusted issuer (any user
// name, conventionally gitlab-ci-token). remote is the client address
// (ClientAddr). Failures are throttled (see Config.UserLimit) and audited.
func (s *Service) Authenticate(ctx context.Context, username, password, remote string) (Principal, error) {
	pw := isPassword(password)
	if err := s.throttled(ctx, username, remote, pw); err != nil {
		return Principal{}, err
	}
	now := s.cfg.Now()
	failed := func(reason string) (Principal, error) {
		return Principal{}, s.loginFailed(ctx, username, remote, pw, reason)
	}
	switch {
	case password == "":
		return failed("empty password")
	case strings.HasPrefix(password, PATPrefix):
		t, err := s.store.PATByHash(ctx, HashToken(password))
		if errors.Is(err, ErrNotFound) {
			return failed("unknown personal access token")
		}
		if err != nil {
			return Principal{}, err
		}
		if t.User != username {
			return failed(fmt.Sprintf("personal access token %d belongs to another user", t.ID))
		}
		p, reason, err := s.patLogin(ctx, t, now)
		if err != nil {
			return Principal{}, err
		}
		if reason != "" {
			return failed(reason)
		}
		s.rememberLogin(ctx, userAddrKey(username, remote), now)
		return p, nil
	case strings.HasPrefix(password, JobTokenPrefix):
		if username != JobTokenUser {
			return failed("CI job token used with a user name other than " + JobTokenUser)
		}
		t, err := s.store.JobTokenByHash(ctx, HashToken(password))
		if errors.Is(err, ErrNotFound) {
			return failed("unknown CI job token")
		}
		if err != nil {
			return Principal{}, err
		}
		p, reason := jobLogin(t, now)
		if reason != "" {
			return failed(reason)
		}
		return p, nil
	case looksLikeJWT(password):
		if s.oidc == nil {
			return failed("OIDC ID token login, but no OIDC issuer is trusted")
		}
		id, err := s.oidc.VerifyLogin(ctx, password, s.cfg.OIDCAudience)
		if err != nil {
			return failed("OIDC ID token rejected: " + err.Error())
		}
		p, reason, err := s.oidcPrincipal(ctx, id)
		if err != nil {
			return Principal{}, err
		}
		if reason != "" {
			return failed(reason)
		}
		return p, nil
	}
	u, err := s.store.GetUser(ctx, username)
	if errors.Is(err, ErrNotFound) {
		s.hasher.verify(ctx, s.dummyPW, password) // same cost as a real check
		return failed("unknown user")
	}
	if err != nil {
		return Principal{}, err
	}
	ok, err := s.hasher.verify(ctx, u.PasswordHash, password)
	if err != nil {
		return Principal{}, fmt.Errorf("checking password of %s: %w", u.Name, err)
	}
	if !ok {
		return failed("wrong password")
	}
	s.rememberLogin(ctx, userAddrKey(username, remote), now)
	return Principal{Kind: KindUser, Name: u.Name, User: u.Name, Admin: u.Admin}, nil
}

// credentialProblem says why a personal access token or CI job token
// (revoked, expires) cannot be used at now; "" when it can.
func credentialProblem(revoked bool, expires, now time.Time) string {
	switch {
	case revoked:
		return "is revoked"
	case !now.Before(expires):
		return "expired at " + expires.UTC().Format(time.RFC3339)
	}
	return ""
}

// patLogin checks that the personal access token t can be used at now and
// that its owner still exists, and returns the principal it acts as.
// reason is set (and err nil) when it may not log in.
func (s *Service) patLogin(ctx context.Context, t PAT, now time.Time) (p Principal, reason string, err error) {
	if r := credentialProblem(t.Revoked, t.Expires, now); r != "" {
		return Principal{}, fmt.Sprintf("personal access token %d %s", t.ID, r), nil
	}
	u, err := s.store.GetUser(ctx, t.User)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, "owner of the personal access token no longer exists", nil
	}
	if err != nil {
		return Principal{}, "", err
	}
	return patPrincipal(u, t), "", nil
}

// jobLogin checks that the CI job token t can be used at now and returns
// the principal it acts as, or the reason it may not log in.
func jobLogin(t JobToken, now time.Time) (p Principal, reason string) {
	if r := credentialProblem(t.Revoked, t.Expires, now); r != "" {
		return Principal{}, fmt.Sprintf("CI job token %d %s", t.ID, r)
	}
	return jobPrincipal(t), ""
}

func patPrincipal(u User, t PAT) Principal {
	return Principal{Kind: KindPAT, Name: u.Name, User: u.Name, Admin: u.Admin, CredID: t.ID, Scopes: t.Scopes, Expires: t.Expires}
}

func jobPrincipal(t JobToken) Principal {
	return Principal{Kind: KindJob, Name: "ci-job:" + t.Project + ":" + t.JobID, User: t.User, Project: t.Project,
		JobID: t.JobID, CredID: t.ID, Expires: t.Expires}
}

// oidcPrincipal maps a verified ID token to its project. reason is set (and
// err nil) when the token is valid but may not log in.
func (s *Service) oidcPrincipal(ctx context.Context, id OIDCIdentity) (p Principal, reason string, err error) {
	if id.ProjectPath == "" {
		return Principal{}, "OIDC ID token from " + id.Issuer + " has no project_path claim", nil
	}
	proj, err := s.store.GetProject(ctx, id.ProjectPath)
	if errors.Is(err, ErrNotFound) {
		return Principal{}, "OIDC ID token for project " + id.ProjectPath + ", which does not exist here (hallmark project add)", nil
	}
	if err != nil {
		return Principal{}, "", err
	}
	switch {
	case proj.OIDCIssuer != "" && proj.OIDCIssuer != id.Issuer:
		return Principal{}, "OIDC ID token issuer " + id.Issuer + " is not the one project " + proj.Path + " trusts", nil
	case proj.OIDCIssuer == "" && (s.cfg.BuiltinIssuer == "" || id.Issuer != s.cfg.BuiltinIssuer):
		return Principal{}, "project " + proj.Path + " is not pinned to OIDC issuer " + id.Issuer +
			"; pin it to accept that issuer's ID tokens (hallmark project set-issuer " + proj.Path + " " + id.Issuer + ")", nil
	}
	// The triggering user's own pull rights come along only for the built-in
	// issuer: another issuer's user_login names a user of its directory,
	// not necessarily the Hallmark user of that name.
	user := id.User
	if id.Issuer != s.cfg.BuiltinIssuer {
		user = ""
	}
	return Principal{Kind: KindOIDC, Name: id.Subject, User: user, Project: proj.Path, JobID: id.JobID,
		Expires: id.Expiry, OIDCIssuer: id.Issuer}, "", nil
}

// Allowed returns the actions p may perform on resource typ:name.
func (s *Service) Allowed(ctx context.Context, p Principal, typ, name string) ([]string, error) {
	switch typ {
	case TypeRegistry:
		if name == CatalogName && p.Admin && (p.Kind == KindUser || p.Kind == KindPAT) {
			return []string{ActionAll}, nil
		}
		return nil, nil
	case TypeRepository:
	default:
		return nil, nil
	}
	if !validRepository(name) {
		return nil, nil
	}
	if p.Admin && p.Kind == KindUser {
		return []string{ActionDelete, ActionPull, ActionPush}, nil
	}
	if p.Admin && p.Kind == KindPAT {
		return patScopeActions(p.Scopes), nil
	}
	proj, err := s.store.FindProject(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil, nil // repositories outside every project are admin-only
	}
	if err != nil {
		return nil, err
	}
	var acts []string
	if proj.Visibility == VisibilityPublic {
		acts = []string{ActionPull}
	}
	switch p.Kind {
	case KindUser, KindPAT:
		role, err := s.store.MemberRole(ctx, proj.ID, p.User)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		acts = mergeActions(acts, role.Actions())
		if p.Kind == KindPAT {
			acts = intersect(TypeRepository, acts, patScopeActions(p.Scopes))
		}
	case KindJob, KindOIDC:
		if proj.Path == p.Project {
			// A CI job may pull and push in its own project, nothing more.
			acts = mergeActions(acts, []string{ActionPull, ActionPush})
		} else if p.User != "" {
			// ...and pull what the user who triggered it may pull.
			role, err := s.store.MemberRole(ctx, proj.ID, p.User)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			if slices.Contains(role.Actions(), ActionPull) {
				acts = mergeActions(acts, []string{ActionPull})
			}
		}
	}
	return acts, nil
}

// patScopeActions maps PAT scopes to actions: push implies pull.
func patScopeActions(scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		switch sc {
		case ActionPull:
			out = mergeActions(out, []string{ActionPull})
		case ActionPush:
			out = mergeActions(out, []string{ActionPull, ActionPush})
		case ActionDelete:
			out = mergeActions(out, []string{ActionDelete})
		}
	}
	return out
}

// ParsePATScopes validates PAT scope names.
func ParsePATScopes(scopes []string) ([]string, error) {
	var out []string
	for _, sc := range scopes {
		for _, s := range strings.Split(sc, ",") {
			s = strings.TrimSpace(s)
			switch s {
			case ActionPull, ActionPush, ActionDelete:
				out = mergeActions(out, []string{s})
			case "":
			default:
				return nil, fmt.Errorf("scope %q: use pull, push (implies pull) or delete", s)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("a personal access token needs at least one scope: pull, push or delete")
	}
	return out, nil
}

// Grant intersects the requested access with what p is allowed: a partial
// grant is not an error (the client simply gets less), as in distribution.
// A refused push or delete by an authenticated principal is audited.
func (s *Service) Grant(ctx context.Context, p Principal, requested []Access, remote string) ([]Access, error) {
	granted := []Access{}
	for _, req := range requested {
		allowed, err := s.Allowed(ctx, p, req.Type, req.Name)
		if err != nil {
			return nil, err
		}
		g := intersect(req.Type, req.Actions, allowed)
		if req.Type == TypeRegistry && slices.Contains(allowed, ActionAll) {
			g = slices.Clone(req.Actions)
		}
		if len(g) > 0 {
			granted = append(granted, Access{Type: req.Type, Name: req.Name, Actions: g})
		}
		if p.Kind != KindAnonymous {
			var refused []string
			for _, a := range expand(req.Type, req.Actions) {
				if a != ActionPull && a != ActionAll && !slices.Contains(g, a) {
					refused = append(refused, a)
				}
			}
			if len(refused) > 0 {
				s.Audit(ctx, AuditEvent{Action: AuditDenied, Actor: p.Name, ActorKind: p.Kind, Repository: req.Name,
					RemoteAddr: remote, Detail: "requested " + strings.Join(refused, ",") + " on " + req.Type + ":" + req.Name + "; not granted"})
			}
		}
	}
	return granted, nil
}

// TokenResponse is what the token endpoint returns.
type TokenResponse struct {
	Token        string    `json:"token"`
	AccessToken  string    `json:"access_token"`
	ExpiresIn    int       `json:"expires_in"`
	IssuedAt     string    `json:"issued_at"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	Granted      []Access  `json:"-"`
	Expires      time.Time `json:"-"`
}

// IssueToken grants p the requested access (reduced to what it may do)
// and signs an access token; with offline it adds a refresh token.
func (s *Service) IssueToken(ctx context.Context, p Principal, requested []Access, offline bool, remote string) (*TokenResponse, error) {
	granted, err := s.Grant(ctx, p, requested, remote)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	exp := now.Add(s.cfg.AccessTTL)
	if !p.Expires.IsZero() && p.Expires.Before(exp) {
		exp = p.Expires
	}
	tok, err := s.signer.sign(useAccess, p, granted, now, exp)
	if err != nil {
		return nil, err
	}
	resp := &TokenResponse{Token: tok, AccessToken: tok, ExpiresIn: max(int(exp.Sub(now).Seconds()), 1),
		IssuedAt: now.UTC().Format(time.RFC3339), Granted: granted, Expires: exp}
	scopes := make([]string, len(granted))
	for i, g := range granted {
		scopes[i] = g.String()
	}
	resp.Scope = strings.Join(scopes, " ")
	if offline && p.Kind != KindAnonymous {
		rexp := now.Add(s.cfg.RefreshTTL)
		if !p.Expires.IsZero() && p.Expires.Before(rexp) {
			rexp = p.Expires
		}
		if resp.RefreshToken, err = s.signer.sign(useRefresh, p, nil, now, rexp); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// Refresh checks a refresh token and that the credential it was issued for
// is still valid (user exists and has not changed password since, PAT or
// job token neither revoked nor expired, OIDC project still exists), and
// returns the principal with current permissions.
func (s *Service) Refresh(ctx context.Context, raw, remote string) (Principal, error) {
	if err := s.throttled(ctx, "", remote, false); err != nil {
		return Principal{}, err
	}
	now := s.cfg.Now()
	c, err := s.signer.VerifyRefresh(raw, now)
	if err != nil {
		return Principal{}, s.loginFailed(ctx, "", remote, false, "refresh token rejected: "+err.Error())
	}
	p := c.Principal()
	fail := func(reason string) (Principal, error) {
		return Principal{}, s.loginFailed(ctx, p.Name, remote, false, "refresh token: "+reason)
	}
	switch p.Kind {
	case KindUser:
		u, err := s.store.GetUser(ctx, p.User)
		if errors.Is(err, ErrNotFound) {
			return fail("user no longer exists")
		}
		if err != nil {
			return Principal{}, err
		}
		if c.IssuedAt.Time().Before(u.PasswordChangedAt.Truncate(time.Second)) {
			return fail("password changed since it was issued")
		}
		return Principal{Kind: KindUser, Name: u.Name, User: u.Name, Admin: u.Admin, Expires: c.Expiry.Time()}, nil
	case KindPAT:
		t, err := s.store.GetPAT(ctx, p.CredID)
		if errors.Is(err, ErrNotFound) {
			return fail("personal access token no longer exists")
		}
		if err != nil {
			return Principal{}, err
		}
		p2, reason, err := s.patLogin(ctx, t, now)
		if err != nil {
			return Principal{}, err
		}
		if reason != "" {
			return fail(reason)
		}
		return p2, nil
	case KindJob:
		t, err := s.store.GetJobToken(ctx, p.CredID)
		if errors.Is(err, ErrNotFound) {
			return fail("CI job token no longer exists")
		}
		if err != nil {
			return Principal{}, err
		}
		p2, reason := jobLogin(t, now)
		if reason != "" {
			return fail(reason)
		}
		return p2, nil
	case KindOIDC:
		p2, reason, err := s.oidcPrincipal(ctx, OIDCIdentity{Issuer: p.OIDCIssuer, Subject: p.Name, ProjectPath: p.Project,
			JobID: p.JobID, User: p.User, Expiry: c.Expiry.Time()})
		if err != nil {
			return Principal{}, err
		}
		if reason != "" {
			return fail(reason)
		}
		return p2, nil
	}
	return fail("unknown principal kind " + p.Kind)
}
