package meta

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// RequireSignature is a project's require-signature setting: whether a
// pull of an image without a verified signature is served (off), served
// with a warning that is counted and audited (warn), or refused (enforce).
type RequireSignature string

// Require-signature settings.
const (
	RequireSignatureOff     RequireSignature = "off"
	RequireSignatureWarn    RequireSignature = "warn"
	RequireSignatureEnforce RequireSignature = "enforce"
)

// ParseRequireSignature validates a require-signature setting.
func ParseRequireSignature(s string) (RequireSignature, error) {
	switch r := RequireSignature(s); r {
	case RequireSignatureOff, RequireSignatureWarn, RequireSignatureEnforce:
		return r, nil
	}
	return "", fmt.Errorf("require-signature %q: use off, warn (serve, but warn and audit) or enforce (refuse images without a verified signature)", s)
}

// Quarantine is one quarantine of a manifest in a repository: while it is
// active (Lifted is zero) pulls of the manifest, of its signatures and
// referrers and of an index listing it are refused with Reason. Lifted
// records stay as history.
type Quarantine struct {
	ID         int64
	Repository string
	Digest     digest.Digest
	Reason     string
	Actor      string // who quarantined it (an audit actor name)
	Created    time.Time
	Lifted     time.Time // zero while active
	LiftedBy   string
	LiftReason string
}

// Active reports whether q still blocks pulls.
func (q *Quarantine) Active() bool { return q.Lifted.IsZero() }

// QuarantineItem names a manifest (present or not: a digest may be
// quarantined before it is pushed again) in a repository.
type QuarantineItem struct {
	Repository string
	Digest     digest.Digest
}

// QuarantineChange is one quarantine or lift request: its items, its
// reason, and who asks. The store records it and one audit event per
// item in one transaction, so no quarantine changes unaudited.
type QuarantineChange struct {
	Items  []QuarantineItem
	Reason string // why: required to quarantine, optional to lift
	// Actor, ActorKind and RemoteAddr go to the audit log as they are
	// (auth.AuditEvent's fields of those names).
	Actor, ActorKind, RemoteAddr string
	At                           time.Time
}

// QuarantineOutcome is what a change did to one item: Quarantine is the
// record concerned (nil when a lift found no active quarantine) and
// Changed whether this change made or lifted it (false: it was already
// quarantined, and its record is unchanged).
type QuarantineOutcome struct {
	Item       QuarantineItem
	Quarantine *Quarantine
	Changed    bool
}

// QuarantineQuery filters quarantine records; zero fields do not filter.
type QuarantineQuery struct {
	Repository string
	Digest     digest.Digest
	// History includes lifted records (else only active ones).
	History bool
	// Limit bounds the records returned (default 100), newest first;
	// Before, when > 0, returns only records with ID < Before (paging).
	Limit  int
	Before int64
}

// Quarantines stores quarantines. The registry does not call it: a pull
// learns of a quarantine from GetManifest (Manifest.Quarantine), in the
// same query that reads the manifest.
type Quarantines interface {
	// Quarantine quarantines every item with c.Reason; an item already
	// quarantined keeps its record. One audit event per changed item.
	Quarantine(ctx context.Context, c QuarantineChange) ([]QuarantineOutcome, error)
	// LiftQuarantine ends the active quarantine of every item that has
	// one (pulls work again at once); one audit event per lifted item.
	LiftQuarantine(ctx context.Context, c QuarantineChange) ([]QuarantineOutcome, error)
	// ListQuarantine returns quarantine records, newest first.
	ListQuarantine(ctx context.Context, q QuarantineQuery) ([]Quarantine, error)
}

// SignatureVerdict summarises, for require-signature, the signatures the
// index holds for an image. It is the one place that turns signature
// statuses into a pull decision: statuses added later (e.g. "untrusted"
// under a per-project trust policy) count as not verified, and only
// "pending" is treated as still undecided.
type SignatureVerdict string

// Signature verdicts.
const (
	// VerdictVerified: at least one signature of the image, or of an index
	// in the same repository that lists it (docker pulls the index by tag,
	// then the platform manifest by digest; cosign signs the index), has
	// StatusVerified.
	VerdictVerified SignatureVerdict = "verified"
	// VerdictPending: none is verified yet, but the image's signatures
	// are still being judged: the registry waited for the index to work
	// through the image's queued signature manifests (the index is
	// asynchronous: registry.Config.SettleIndex) and some still were, or a
	// record has status "pending". The registry then serves the image
	// (with a warning) rather than refuse a pull made right after signing.
	VerdictPending SignatureVerdict = "pending"
	// VerdictNone: no signature, or only invalid, unverified (or
	// otherwise not verified) ones.
	VerdictNone SignatureVerdict = "none"
)

// StatusPending is the status an asynchronous indexer records for a
// signature it has not verified yet (see VerdictPending).
const StatusPending = "pending"

// SignatureVerdicts judges an image's signatures for require-signature.
type SignatureVerdicts interface {
	// SignatureVerdict returns the verdict for manifest d of repo.
	SignatureVerdict(ctx context.Context, repo string, d digest.Digest) (SignatureVerdict, error)
}
