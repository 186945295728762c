package auth

import (
	"context"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// Audit actions.
const (
	AuditPush         = "push"          // manifest stored
	AuditSign         = "sign"          // signature manifest stored
	AuditDelete       = "delete"        // manifest, tag or blob deleted
	AuditLoginFailed  = "auth.failure"  // bad credentials or refresh token
	AuditInvalidToken = "auth.invalid"  // forged, tampered or foreign bearer token on /v2/
	AuditThrottled    = "auth.throttle" // failed-login budget exhausted
	AuditDenied       = "auth.denied"   // push/delete requested and not granted

	AuditQuarantine     = "quarantine"                // manifest quarantined (one event per item; detail: the reason)
	AuditQuarantineLift = "quarantine.lift"           // quarantine lifted
	AuditRequireSig     = "project.require-signature" // a project's require-signature setting changed
	AuditPullWarned     = "pull.warn"                 // served under require-signature: warn without a verified signature (sampled)
	AuditPullDenied     = "pull.denied"               // refused: quarantined, or no verified signature under enforce (sampled)
)

type ctxKey struct{}

// requestIdentity is what WithPrincipal stores: one context value, as it
// is set on every /v2/ request.
type requestIdentity struct {
	p      Principal
	remote string
}

// WithPrincipal returns ctx carrying the request's principal and client
// address (set by the /v2/ guard; read by the audit sink).
func WithPrincipal(ctx context.Context, p Principal, remote string) context.Context {
	return context.WithValue(ctx, ctxKey{}, &requestIdentity{p: p, remote: remote})
}

// PrincipalFrom returns the principal stored by WithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	id, ok := ctx.Value(ctxKey{}).(*requestIdentity)
	if !ok {
		return Principal{}, false
	}
	return id.p, true
}

func remoteFrom(ctx context.Context) string {
	if id, ok := ctx.Value(ctxKey{}).(*requestIdentity); ok {
		return id.remote
	}
	return ""
}

// Audit records an event; a failure to record is logged, never returned
// (the request that caused it has already happened).
func (s *Service) Audit(ctx context.Context, e AuditEvent) {
	if e.Time.IsZero() {
		e.Time = s.cfg.Now()
	}
	if len(e.Detail) > 1024 {
		e.Detail = e.Detail[:1024]
	}
	// Recording must survive the client going away mid-request.
	ctx = context.WithoutCancel(ctx)
	if err := s.store.RecordAudit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "recording audit event", "action", e.Action, "repository", e.Repository, "err", err)
	}
	if strings.HasPrefix(e.Action, "auth.") {
		s.log.WarnContext(ctx, "auth event", "action", e.Action, "actor", e.Actor, "remote", e.RemoteAddr, "detail", e.Detail)
	}
}

// EventSink returns the registry event sink that audits pushes,
// signatures and deletes with the principal of the request.
func (s *Service) EventSink() *AuditSink { return &AuditSink{s: s} }

// AuditSink implements the registry's EventSink.
type AuditSink struct{ s *Service }

func (a *AuditSink) actor(ctx context.Context) (name, kind, remote string) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return "", KindAnonymous, remoteFrom(ctx)
	}
	return p.Name, p.Kind, remoteFrom(ctx)
}

// ManifestPushed records a push (or a signature).
func (a *AuditSink) ManifestPushed(ctx context.Context, m *meta.Manifest, tags []string) {
	name, kind, remote := a.actor(ctx)
	action := AuditPush
	detail := m.MediaType
	if _, ok := m.SignatureSubject(tags); ok {
		action = AuditSign
		if m.Subject != "" {
			detail = "subject " + m.Subject.String()
		}
	}
	a.s.Audit(ctx, AuditEvent{Action: action, Actor: name, ActorKind: kind, Repository: m.Repository,
		Reference: strings.Join(tags, ","), Digest: m.Digest.String(), RemoteAddr: remote, Detail: detail})
}

// ManifestDeleted records a manifest or tag deletion.
func (a *AuditSink) ManifestDeleted(ctx context.Context, repo, reference string) {
	name, kind, remote := a.actor(ctx)
	ev := AuditEvent{Action: AuditDelete, Actor: name, ActorKind: kind, Repository: repo, Reference: reference, RemoteAddr: remote, Detail: "manifest"}
	if strings.Contains(reference, ":") {
		ev.Digest = reference
	}
	a.s.Audit(ctx, ev)
}

// PullPolicyApplied records a pull the registry's pull policy refused
// (quarantine, require-signature: enforce) or served with a warning
// (require-signature: warn, or a signature still being verified): at most
// one event per image, outcome and Config.PullAuditInterval, so that a
// pull storm cannot flood the audit log (the registry's metrics count
// every one).
func (a *AuditSink) PullPolicyApplied(ctx context.Context, repo string, d digest.Digest, outcome string, refused bool, detail string) {
	// Sampled per replica (s.local): each replica audits at most one
	// event per image and outcome per interval.
	sample := charge{key: "pull:" + outcome + "\x00" + repo + "@" + d.String(), rl: RateLimit{Burst: 1, Every: a.s.cfg.PullAuditInterval}}
	if !allow(ctx, a.s.local, sample, a.s.cfg.Now()) {
		return
	}
	action := AuditPullWarned
	if refused {
		action = AuditPullDenied
	}
	name, kind, remote := a.actor(ctx)
	a.s.Audit(ctx, AuditEvent{Action: action, Actor: name, ActorKind: kind, Repository: repo, Digest: d.String(),
		RemoteAddr: remote, Detail: outcome + ": " + detail})
}

// blobDeleted records a blob deletion (the registry has no event for it;
// the guard sees the 202).
func (s *Service) blobDeleted(ctx context.Context, repo, dgst string) {
	p, _ := PrincipalFrom(ctx)
	s.Audit(ctx, AuditEvent{Action: AuditDelete, Actor: p.Name, ActorKind: p.Kind, Repository: repo, Reference: dgst,
		Digest: dgst, RemoteAddr: remoteFrom(ctx), Detail: "blob"})
}

// AuditEventJSON is an audit event in API responses.
type AuditEventJSON struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	Action     string    `json:"action"`
	Actor      string    `json:"actor"`
	ActorKind  string    `json:"actorKind,omitempty"`
	Repository string    `json:"repository,omitempty"`
	Reference  string    `json:"reference,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	RemoteAddr string    `json:"remoteAddr,omitempty"`
	Detail     string    `json:"detail,omitempty"`
}

func auditJSON(e AuditEvent) AuditEventJSON {
	return AuditEventJSON{ID: e.ID, Time: e.Time.UTC(), Action: e.Action, Actor: e.Actor, ActorKind: e.ActorKind,
		Repository: e.Repository, Reference: e.Reference, Digest: e.Digest, RemoteAddr: e.RemoteAddr, Detail: e.Detail}
}

// invalidToken audits a rejected bearer token: the first few per client
// address, then at most one a minute (each record is a database write; a
// flood of junk tokens must not become a flood of writes).
func (s *Service) invalidToken(ctx context.Context, remote, repo, detail string) {
	if !allow(ctx, s.local, charge{key: "invalid:" + addrKey(remote), rl: RateLimit{Burst: 5, Every: time.Minute}}, s.cfg.Now()) {
		return
	}
	s.Audit(ctx, AuditEvent{Action: AuditInvalidToken, RemoteAddr: remote, Repository: repo, Detail: detail})
}
