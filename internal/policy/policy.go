package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// Limits on what one request may ask.
const (
	// MaxItems bounds the manifests of one quarantine or lift (a search's
	// result set is at most 1000 signatures).
	MaxItems = 1000
	// MaxReasonRunes bounds a reason; it is shown in error messages, the
	// audit log and the console.
	MaxReasonRunes = 500
)

// Errors of the service; the API maps them to HTTP statuses.
var (
	// ErrInvalid: the request is malformed (the message says how).
	ErrInvalid = errors.New("invalid request")
	// ErrForbidden: the caller may not do this (the message says what it
	// would need).
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such project, or the caller may not see it.
	ErrNotFound = errors.New("not found")
)

// RateLimitedError says when the caller may change the policy again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many quarantine and policy changes; retry in %s", e.RetryAfter.Round(time.Second))
}

// Caller is who asks: its identity, as the audit log records it, and
// what it may do to which repository. auth.Caller (the API's callers) and
// Operator (the CLI on the server's database) are Callers.
type Caller interface {
	Identity() (name, kind, remote string)
	May(ctx context.Context, repo, action string) (bool, error)
}

// Operator is a Caller with every right: someone with the server's
// database in hand (hallmark quarantine --data-dir / --database-url).
type Operator struct{ Name string }

// OperatorKind is the audit log's actor kind of an Operator.
const OperatorKind = "operator"

// Identity implements Caller.
func (o Operator) Identity() (name, kind, remote string) { return o.Name, OperatorKind, "" }

// May implements Caller: everything.
func (Operator) May(context.Context, string, string) (bool, error) { return true, nil }

// Store is what the service needs of the database (meta/sqlstore).
type Store interface {
	meta.Quarantines
	GetProject(ctx context.Context, path string) (auth.Project, error)
	SetProjectRequireSignature(ctx context.Context, path string, rs meta.RequireSignature, e auth.AuditEvent) error
}

// Config tunes the service.
type Config struct {
	// ChangeLimit bounds how fast one caller may change the policy
	// (quarantine, lift, setting), per replica: default 20 changes at
	// once, then one per 3 seconds. One change may carry MaxItems items.
	ChangeLimit auth.RateLimit
	// Now returns the current time (tests); default time.Now.
	Now func() time.Time
}

// Service changes and reads the pull policy.
type Service struct {
	store   Store
	log     *slog.Logger
	cfg     Config
	changes *auth.EventLimit
}

// New returns the service over store.
func New(store Store, log *slog.Logger, cfg Config) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ChangeLimit.Burst <= 0 || cfg.ChangeLimit.Every <= 0 {
		cfg.ChangeLimit = auth.RateLimit{Burst: 20, Every: 3 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{store: store, log: log, cfg: cfg, changes: auth.NewEventLimit(cfg.ChangeLimit)}
}

// CheckReason validates a reason (trimmed): at most MaxReasonRunes
// characters of valid UTF-8 without control or format characters (no
// newlines, escapes or bidirectional overrides), so that it cannot forge
// lines of a log or disguise itself where it is shown. required: it must
// not be empty.
func CheckReason(reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "" && required:
		return "", fmt.Errorf("%w: reason: say why (it is shown to everyone whose pull is refused, and audited)", ErrInvalid)
	case !utf8.ValidString(reason):
		return "", fmt.Errorf("%w: reason: not valid UTF-8", ErrInvalid)
	case utf8.RuneCountInString(reason) > MaxReasonRunes:
		return "", fmt.Errorf("%w: reason: at most %d characters", ErrInvalid, MaxReasonRunes)
	}
	for i, r := range reason {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			return "", fmt.Errorf("%w: reason: control or format character %U at byte %d; use one line of plain text", ErrInvalid, r, i)
		}
	}
	return reason, nil
}

// CheckItems validates and de-duplicates items (order kept).
func CheckItems(items []meta.QuarantineItem) ([]meta.QuarantineItem, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: items: name at least one manifest as {repository, digest}", ErrInvalid)
	}
	if len(items) > MaxItems {
		return nil, fmt.Errorf("%w: items: at most %d in one request", ErrInvalid, MaxItems)
	}
	seen := make(map[meta.QuarantineItem]bool, len(items))
	out := make([]meta.QuarantineItem, 0, len(items))
	for i, it := range items {
		if err := oci.ValidateName(it.Repository); err != nil {
			return nil, fmt.Errorf("%w: item %d: %v", ErrInvalid, i, err)
		}
		d, err := oci.ParseDigest(it.Digest.String())
		if err != nil {
			return nil, fmt.Errorf("%w: item %d: %v", ErrInvalid, i, err)
		}
		it.Digest = d
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out, nil
}

// authorize checks that c may change the policy of every repository
// (maintainer rights: delete) and has change budget left.
func (s *Service) authorize(ctx context.Context, c Caller, repos []string, what string) error {
	checked := map[string]bool{}
	for _, repo := range repos {
		if checked[repo] {
			continue
		}
		checked[repo] = true
		ok, err := c.May(ctx, repo, auth.ActionDelete)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s in %s needs maintainer rights in its project (or an admin)", ErrForbidden, what, repo)
		}
	}
	name, kind, _ := c.Identity()
	if ok, retry := s.changes.Allow(kind+":"+name, s.cfg.Now()); !ok {
		return &RateLimitedError{RetryAfter: retry}
	}
	return nil
}

func (s *Service) change(c Caller, items []meta.QuarantineItem, reason string) meta.QuarantineChange {
	name, kind, remote := c.Identity()
	return meta.QuarantineChange{Items: items, Reason: reason, Actor: name, ActorKind: kind, RemoteAddr: remote, At: s.cfg.Now()}
}

func repositories(items []meta.QuarantineItem) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Repository
	}
	return out
}

// Quarantine quarantines items (manifests, present or not, e.g. every
// image of a provenance search's result set) with one reason, for c: c
// must be allowed to quarantine in every item's repository (a maintainer
// of its project, or an admin), else nothing is done. From the moment it
// returns, every replica refuses pulls of them (and of what is attached to
// them, and of indexes listing them) with the reason. Each new quarantine
// is audited with c's identity in the same transaction. Items already
// quarantined keep their record (Changed false).
func (s *Service) Quarantine(ctx context.Context, c Caller, items []meta.QuarantineItem, reason string) ([]meta.QuarantineOutcome, error) {
	return s.changeItems(ctx, c, items, reason, true, "quarantining", s.store.Quarantine)
}

// Lift ends the quarantines of items (with an optional reason), for c
// (rights as for Quarantine): pulls work again at once. The records stay
// as history; each lift is audited in the same transaction.
func (s *Service) Lift(ctx context.Context, c Caller, items []meta.QuarantineItem, reason string) ([]meta.QuarantineOutcome, error) {
	return s.changeItems(ctx, c, items, reason, false, "lifting a quarantine", s.store.LiftQuarantine)
}

// changeItems validates, authorizes and stores a quarantine change.
func (s *Service) changeItems(ctx context.Context, c Caller, items []meta.QuarantineItem, reason string, reasonRequired bool, what string,
	store func(context.Context, meta.QuarantineChange) ([]meta.QuarantineOutcome, error)) ([]meta.QuarantineOutcome, error) {
	reason, err := CheckReason(reason, reasonRequired)
	if err != nil {
		return nil, err
	}
	if items, err = CheckItems(items); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, repositories(items), what); err != nil {
		return nil, err
	}
	out, err := store(ctx, s.change(c, items, reason))
	if err != nil {
		return nil, err
	}
	name, _, _ := c.Identity()
	s.log.InfoContext(ctx, what, "actor", name, "items", len(items), "changed", changed(out))
	return out, nil
}

func changed(out []meta.QuarantineOutcome) int {
	n := 0
	for _, o := range out {
		if o.Changed {
			n++
		}
	}
	return n
}

// maxListScan bounds the records read for one listing before filtering
// by what the caller may pull.
const maxListScan = 1000

// List returns quarantine records matching q that c may see (those of
// repositories it may pull), newest first. A repository c may not pull is
// ErrNotFound, as the registry answers.
func (s *Service) List(ctx context.Context, c Caller, q meta.QuarantineQuery) ([]meta.Quarantine, error) {
	if q.Limit <= 0 || q.Limit > maxListScan {
		q.Limit = 100
	}
	if q.Repository != "" {
		if err := oci.ValidateName(q.Repository); err != nil {
			return nil, fmt.Errorf("%w: repository: %v", ErrInvalid, err)
		}
		ok, err := c.May(ctx, q.Repository, auth.ActionPull)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: repository %s, or you may not pull it", ErrNotFound, strconv.Quote(q.Repository))
		}
		return s.store.ListQuarantine(ctx, q)
	}
	limit := q.Limit
	q.Limit = maxListScan
	recs, err := s.store.ListQuarantine(ctx, q)
	if err != nil {
		return nil, err
	}
	allowed := map[string]bool{}
	out := make([]meta.Quarantine, 0, min(len(recs), limit))
	for _, r := range recs {
		if len(out) == limit {
			break
		}
		ok, seen := allowed[r.Repository]
		if !seen {
			if ok, err = c.May(ctx, r.Repository, auth.ActionPull); err != nil {
				return nil, err
			}
			allowed[r.Repository] = ok
		}
		if ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// RequireSignature returns project's require-signature setting, if c may
// pull its repositories.
func (s *Service) RequireSignature(ctx context.Context, c Caller, project string) (meta.RequireSignature, error) {
	p, err := s.project(ctx, c, project, auth.ActionPull)
	if err != nil {
		return "", err
	}
	return p.RequireSignature, nil
}

// SetRequireSignature changes project's require-signature setting for c
// (a maintainer of the project, or an admin) and returns the previous
// one. Pulls follow the new setting from the moment it returns, on every
// replica. The change is audited in the same transaction.
func (s *Service) SetRequireSignature(ctx context.Context, c Caller, project string, rs meta.RequireSignature) (meta.RequireSignature, error) {
	if _, err := meta.ParseRequireSignature(string(rs)); err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p, err := s.project(ctx, c, project, auth.ActionDelete)
	if err != nil {
		return "", err
	}
	if err := s.authorize(ctx, c, nil, ""); err != nil {
		return "", err
	}
	name, kind, remote := c.Identity()
	ev := auth.AuditEvent{Time: s.cfg.Now(), Action: auth.AuditRequireSig, Actor: name, ActorKind: kind, Repository: p.Path,
		RemoteAddr: remote, Detail: fmt.Sprintf("require-signature %s -> %s", p.RequireSignature, rs)}
	if err := s.store.SetProjectRequireSignature(ctx, p.Path, rs, ev); err != nil {
		if errors.Is(err, auth.ErrNotFound) {
			return "", fmt.Errorf("%w: project %s", ErrNotFound, strconv.Quote(project))
		}
		return "", err
	}
	s.log.InfoContext(ctx, "require-signature changed", "project", p.Path, "actor", name, "from", p.RequireSignature, "to", rs)
	return p.RequireSignature, nil
}

// project returns the project at path if c may do action on it (its
// repositories); a project c may not even pull is ErrNotFound.
func (s *Service) project(ctx context.Context, c Caller, path, action string) (auth.Project, error) {
	if err := oci.ValidateName(path); err != nil {
		return auth.Project{}, fmt.Errorf("%w: project: %v", ErrInvalid, err)
	}
	notFound := fmt.Errorf("%w: project %s, or you may not pull it", ErrNotFound, strconv.Quote(path))
	for _, act := range []string{auth.ActionPull, action} {
		ok, err := c.May(ctx, path, act)
		if err != nil {
			return auth.Project{}, err
		}
		if !ok && act == auth.ActionPull {
			return auth.Project{}, notFound
		}
		if !ok {
			return auth.Project{}, fmt.Errorf("%w: changing project %s needs maintainer rights in it (or an admin)", ErrForbidden, path)
		}
	}
	p, err := s.store.GetProject(ctx, path)
	if errors.Is(err, auth.ErrNotFound) {
		return auth.Project{}, notFound
	}
	return p, err
}
