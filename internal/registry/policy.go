package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// The pull policy is applied to manifest GETs and HEADs (blobs are
// content addressed and stay pullable: the manifest is the gate). What it
// needs comes with the manifest from the store's one lookup
// (meta.Manifest.Quarantine, RequireSignature), so a pull of a repository
// whose project does not ask for signatures costs nothing more:
//
//   - Quarantine: a quarantined manifest, whatever is attached to it
//     (signatures, attestations, referrers) and an index listing it answer
//     403 DENIED with who quarantined it, when and why, to HEAD too (a
//     quarantined digest is not even resolved). docker and crane follow a
//     failed HEAD with a GET, which carries the message; cosign and
//     hallmark verify fail on the signatures, which are refused alike.
//   - require-signature: enforce refuses a GET of an image that has no
//     verified signature (403 DENIED saying what is missing and what to
//     do); warn serves it with an HTTP Warning header (299, as the OCI
//     spec's warnings), counted and audited. Signing needs the image
//     itself, so enforce gates consumers, not producers: a client that may
//     push to the repository (Config.MayPush: the pipeline that builds and
//     signs it, its maintainers) is served, with the warning (cosign sign
//     GETs the manifest it signs; hallmark sign and cosign v3 HEAD it).
//     HEAD is answered either way: it serves no content. Attachments
//     (cosign .sig, .att and .sbom tags, any manifest with a subject) are
//     never gated: they are how an image gets its signatures.

// PullOutcome is what the pull policy did with a pull it did not simply
// serve.
type PullOutcome string

// Pull outcomes.
const (
	PullQuarantined    PullOutcome = "quarantined"     // refused: quarantined
	PullUnsignedDenied PullOutcome = "unsigned_denied" // refused: no verified signature (enforce)
	PullUnsignedWarned PullOutcome = "unsigned_warned" // served with a warning: no verified signature (warn)
	// served with a warning: no verified signature (enforce), but the
	// client may push to the repository (Config.MayPush)
	PullUnsignedProducer PullOutcome = "unsigned_producer"
	PullPending          PullOutcome = "signature_pending" // served with a warning: its signature is still being verified
)

// PullPolicySink is an optional ability of Config.Events: it is told of
// every pull the policy refused or served with a warning. Pulls come in
// storms (every node of a cluster, every retry): it must bound what it
// records, as auth's audit sink does (one event per image, outcome and
// interval).
type PullPolicySink interface {
	// outcome is a PullOutcome, refused whether the pull was refused;
	// detail is the message the client got.
	PullPolicyApplied(ctx context.Context, repo string, d digest.Digest, outcome string, refused bool, detail string)
}

// signaturePolicy is what require-signature reads from the store, only
// for projects that ask for signatures.
type signaturePolicy interface {
	SignatureVerdict(ctx context.Context, repo string, d digest.Digest) (meta.SignatureVerdict, error)
	TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error)
}

// applyPullPolicy decides on a pull of m (looked up by rt.ref): an error
// (403 DENIED) refuses it; a warning serves it with that Warning.
func (h *Handler) applyPullPolicy(r *http.Request, rt route, m *meta.Manifest) (warning string, err error) {
	ctx := r.Context()
	var tags []string // what the reference tells of m's tags
	if !oci.IsDigestReference(rt.ref) {
		tags = []string{rt.ref}
	}
	if q := m.Quarantine; q != nil {
		msg := quarantineMessage(m, tags, q)
		h.pullOutcome(ctx, m, PullQuarantined, msg)
		// No detail: clients print it after the message (crane: "; map[...]"),
		// and the message names the digests already.
		return "", apiErr(http.StatusForbidden, oci.CodeDenied, msg, nil)
	}
	if r.Method != http.MethodGet || m.RequireSignature == "" || m.RequireSignature == meta.RequireSignatureOff {
		return "", nil
	}
	if _, ok := m.AttachmentSubject(tags); ok {
		return "", nil
	}
	verdict, err := h.verdict(ctx, m)
	if err != nil {
		return "", err
	}
	switch verdict {
	case meta.VerdictVerified:
		return "", nil
	case meta.VerdictPending:
		msg := fmt.Sprintf("the signature of image %s in project %s is still being verified; served meanwhile (require-signature: %s)", m.Digest, m.Project, m.RequireSignature)
		h.pullOutcome(ctx, m, PullPending, msg)
		return msg, nil
	}
	if tags == nil { // by digest: an attachment is known by its tags
		if tags, err = h.meta.TagsOf(ctx, m.Repository, m.Digest); err != nil {
			return "", err
		}
		if _, ok := m.AttachmentSubject(tags); ok {
			return "", nil
		}
	}
	if m.RequireSignature != meta.RequireSignatureWarn { // enforce, and any setting this build does not know
		producer := false
		if h.cfg.MayPush != nil {
			if producer, err = h.cfg.MayPush(ctx, m.Repository); err != nil {
				return "", err
			}
		}
		if producer {
			msg := fmt.Sprintf("image %s in project %s has no verified signature; served because you may push to %s (to sign it: "+
				"hallmark sign or cosign sign); pulls by others are refused (require-signature: %s)", m.Digest, m.Project, m.Repository, m.RequireSignature)
			h.pullOutcome(ctx, m, PullUnsignedProducer, msg)
			return msg, nil
		}
		msg := fmt.Sprintf("image %s in project %s has no verified signature; the project requires one (require-signature: %s). "+
			"Sign it with hallmark sign or cosign sign, or ask a maintainer", m.Digest, m.Project, m.RequireSignature)
		h.pullOutcome(ctx, m, PullUnsignedDenied, msg)
		return "", apiErr(http.StatusForbidden, oci.CodeDenied, msg, nil)
	}
	msg := fmt.Sprintf("image %s in project %s has no verified signature; the project asks for one (require-signature: warn). "+
		"Sign it with hallmark sign or cosign sign", m.Digest, m.Project)
	h.pullOutcome(ctx, m, PullUnsignedWarned, msg)
	return msg, nil
}

// settleTimeout bounds how long a pull waits for the signature index to
// judge the image's queued signatures.
const settleTimeout = 5 * time.Second

// verdict judges m's signatures for require-signature. Without a verified
// one it first has the image's queued signature manifests indexed; if
// they are still being indexed when settleTimeout ends, the verdict is
// pending.
func (h *Handler) verdict(ctx context.Context, m *meta.Manifest) (meta.SignatureVerdict, error) {
	verdict, err := h.meta.SignatureVerdict(ctx, m.Repository, m.Digest)
	if err != nil || verdict == meta.VerdictVerified || h.cfg.SettleIndex == nil {
		return verdict, err
	}
	sctx, cancel := context.WithTimeout(ctx, settleTimeout)
	err = h.cfg.SettleIndex(sctx, m.Repository, m.Digest)
	cancel()
	switch {
	case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		return meta.VerdictPending, nil
	case err != nil:
		return "", err
	}
	return h.meta.SignatureVerdict(ctx, m.Repository, m.Digest)
}

// quarantineMessage says what is quarantined, by whom, when and why, and
// what to do; m was looked up under tags.
func quarantineMessage(m *meta.Manifest, tags []string, q *meta.Quarantine) string {
	by := q.Actor
	if by == "" {
		by = "an administrator"
	}
	what := fmt.Sprintf("is quarantined by %s at %s: %s", by, q.Created.UTC().Format(time.RFC3339), q.Reason)
	ref := m.Repository + "@" + m.Digest.String()
	attachedTo, attached := m.AttachmentSubject(tags)
	switch {
	case q.Digest == m.Digest:
		what = "manifest " + ref + " " + what
	case attached && q.Digest == attachedTo:
		what = ref + " is attached to " + q.Digest.String() + ", which " + what
	case attached:
		what = ref + " is attached to " + attachedTo.String() + ", which lists " + q.Digest.String() + ", which " + what
	default:
		what = "index " + ref + " lists " + q.Digest.String() + ", which " + what
	}
	return what + ". Pulls are refused until a maintainer of the project lifts the quarantine (hallmark quarantine remove)"
}

// pullOutcome counts an outcome and tells the event sink.
func (h *Handler) pullOutcome(ctx context.Context, m *meta.Manifest, o PullOutcome, detail string) {
	if h.PullOutcomes != nil {
		h.PullOutcomes(o)
	}
	if ps, ok := h.cfg.Events.(PullPolicySink); ok {
		ps.PullPolicyApplied(ctx, m.Repository, m.Digest, string(o), o == PullQuarantined || o == PullUnsignedDenied, detail)
	}
}

// warningHeader formats msg as an HTTP Warning (RFC 9111 5.5: code 299,
// no agent, a quoted string), as the OCI distribution spec's warnings.
func warningHeader(msg string) string {
	return `299 - "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(msg) + `"`
}
