package gc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// RetentionStore is what running retention policies needs of the
// metadata database.
type RetentionStore interface {
	DueRetention(ctx context.Context, now, before time.Time, claim bool) ([]meta.ProjectRetention, error)
	ProjectTags(ctx context.Context, project string) ([]meta.RetentionTag, error)
	RemoveTags(ctx context.Context, ts []meta.RetentionTag) ([]meta.RetentionTag, error)
}

// Policy is a project's retention policy, as GitLab's cleanup policies:
// in each repository of the project, of the tags TagRegex matches, the
// KeepN most recently pushed stay, and the others are removed (only those
// last pushed more than OlderThan ago, when it is set). Tags
// ProtectedRegex matches, tags of quarantined manifests and cosign's
// signature and attestation tags (they go with their image) are never
// removed. Removing a tag leaves the manifest; garbage collection deletes
// it if no tag is left and untagged manifests are collected
// (--gc-untagged-manifests).
type Policy struct {
	KeepN          int      `json:"keep_n,omitempty"`
	TagRegex       string   `json:"tag_regex,omitempty"`
	OlderThan      Duration `json:"older_than,omitempty"`
	ProtectedRegex string   `json:"protected_regex,omitempty"`

	tags, protected *regexp.Regexp
}

// Bounds of a policy.
const (
	maxPolicy    = 4 << 10
	maxRegex     = 256
	maxKeepN     = 10000
	maxOlderThan = 100 * 365 * 24 * time.Hour
)

// Duration is a duration in JSON: a Go duration ("720h") or whole days
// ("30d").
type Duration time.Duration

// ParseDuration parses "30d" or a Go duration.
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > int(maxOlderThan/(24*time.Hour)) {
			return 0, fmt.Errorf("%q: want whole days such as 30d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want a duration such as 30d or 720h", s)
	}
	return d, nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30d" or a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("older_than: want a string such as \"30d\" or \"720h\"")
	}
	v, err := ParseDuration(s)
	if err != nil {
		return fmt.Errorf("older_than: %w", err)
	}
	*d = Duration(v)
	return nil
}

// ParsePolicy reads and validates a policy (JSON, at most 4 KiB, no
// unknown fields).
func ParsePolicy(raw []byte) (*Policy, error) {
	if len(raw) > maxPolicy {
		return nil, fmt.Errorf("retention policy is %d bytes; the limit is %d", len(raw), maxPolicy)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("retention policy: %w (want {\"keep_n\": N, \"tag_regex\": RE, \"older_than\": \"30d\", \"protected_regex\": RE})", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("retention policy: one JSON object expected")
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return &p, nil
}

// NewPolicy returns a validated policy (what ParsePolicy reads).
func NewPolicy(keepN int, tagRegex string, olderThan time.Duration, protectedRegex string) (*Policy, error) {
	p := &Policy{KeepN: keepN, TagRegex: tagRegex, OlderThan: Duration(olderThan), ProtectedRegex: protectedRegex}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return p, nil
}

// compile validates p and compiles its expressions (full match, RE2:
// linear time whatever the input). Plan needs it done.
func (p *Policy) compile() error {
	switch {
	case p.KeepN < 0 || p.KeepN > maxKeepN:
		return fmt.Errorf("retention policy: keep_n %d: use 0 to %d", p.KeepN, maxKeepN)
	case p.OlderThan < 0 || time.Duration(p.OlderThan) > maxOlderThan:
		return errors.New("retention policy: older_than must be positive and at most 100 years")
	case p.KeepN == 0 && p.OlderThan == 0:
		return errors.New("retention policy: set keep_n, older_than or both (a policy with neither would remove every matching tag)")
	}
	var err error
	if p.tags, err = fullMatch("tag_regex", p.TagRegex, ".*"); err != nil {
		return err
	}
	p.protected, err = fullMatch("protected_regex", p.ProtectedRegex, "")
	return err
}

func fullMatch(field, re, def string) (*regexp.Regexp, error) {
	if re == "" {
		if def == "" {
			return nil, nil
		}
		re = def
	}
	if len(re) > maxRegex {
		return nil, fmt.Errorf("retention policy: %s is %d bytes; the limit is %d", field, len(re), maxRegex)
	}
	r, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		return nil, fmt.Errorf("retention policy: %s: %w", field, err)
	}
	return r, nil
}

// JSON returns the policy as stored.
func (p *Policy) JSON() string {
	b, _ := json.Marshal(p)
	return string(b)
}

// attachmentTag reports whether t is cosign's signature or attestation tag
// of an image (removed with the image, never by a policy).
func attachmentTag(t string) bool {
	_, _, ok := oci.AttachedDigest(t)
	return ok
}

// Plan returns the tags of tags (a project's) the policy removes at now.
// p comes from ParsePolicy or NewPolicy.
func (p *Policy) Plan(tags []meta.RetentionTag, now time.Time) []meta.RetentionTag {
	byRepo := map[string][]meta.RetentionTag{}
	for _, t := range tags {
		if attachmentTag(t.Tag) || !p.tags.MatchString(t.Tag) || (p.protected != nil && p.protected.MatchString(t.Tag)) {
			continue
		}
		byRepo[t.Repository] = append(byRepo[t.Repository], t)
	}
	var out []meta.RetentionTag
	cutoff := now.Add(-time.Duration(p.OlderThan))
	for _, repo := range slices.Sorted(func(yield func(string) bool) {
		for r := range byRepo {
			if !yield(r) {
				return
			}
		}
	}) {
		ts := byRepo[repo]
		slices.SortFunc(ts, func(a, b meta.RetentionTag) int {
			return cmp.Or(b.Updated.Compare(a.Updated), strings.Compare(a.Tag, b.Tag))
		})
		for _, t := range ts[min(p.KeepN, len(ts)):] {
			if p.OlderThan == 0 || t.Updated.Before(cutoff) {
				out = append(out, t)
			}
		}
	}
	return out
}

// PlanRetention returns what policy p would remove in project now, minus
// quarantined manifests' tags.
func (c *Collector) PlanRetention(ctx context.Context, project string, p *Policy) ([]meta.RetentionTag, error) {
	tags, err := c.store.ProjectTags(ctx, project)
	if err != nil {
		return nil, err
	}
	plan := p.Plan(tags, c.cfg.Now())
	if q := c.cfg.Quarantine; q != nil {
		var keep []meta.RetentionTag
		for _, t := range plan {
			held, err := q.Quarantined(ctx, t.Repository, t.Digest)
			if err != nil {
				return nil, err
			}
			if !held {
				keep = append(keep, t)
			}
		}
		plan = keep
	}
	return plan, nil
}

// ApplyRetention runs policy p on project now: it removes the planned
// tags (each only if not pushed again meanwhile) and audits each
// repository's removals, as actor (the collector's own runs: "gc").
func (c *Collector) ApplyRetention(ctx context.Context, project string, p *Policy, actor string) ([]meta.RetentionTag, error) {
	plan, err := c.PlanRetention(ctx, project, p)
	if err != nil || len(plan) == 0 {
		return nil, err
	}
	removed, err := c.store.RemoveTags(ctx, plan)
	byRepo := map[string][]meta.RetentionTag{}
	var repos []string
	for _, t := range removed {
		if byRepo[t.Repository] == nil {
			repos = append(repos, t.Repository)
		}
		byRepo[t.Repository] = append(byRepo[t.Repository], t)
	}
	for _, repo := range repos {
		ts := byRepo[repo]
		c.audit(ctx, auth.AuditEvent{Action: AuditRetention, Actor: actor, ActorKind: actorKind(actor), Repository: repo,
			Detail: fmt.Sprintf("retention policy of %s removed %d tags%s", project, len(ts), sample(ts, func(t meta.RetentionTag) string { return t.Tag }))})
	}
	return removed, err
}

func actorKind(a string) string {
	if a == actor {
		return "system"
	}
	return ""
}

// retention runs the policies that are due (claimed, so each runs on one
// replica once per RetentionEvery). A policy that fails is reported in
// r.Errors; the others run.
func (c *Collector) retention(ctx context.Context, r *Result) error {
	now := c.cfg.Now()
	due, err := c.store.DueRetention(ctx, now, now.Add(-c.cfg.RetentionEvery), !r.DryRun)
	if err != nil {
		return err
	}
	for _, pr := range due {
		p, err := ParsePolicy([]byte(pr.Policy))
		if err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("project %s: %v", pr.Project, err))
			continue
		}
		var ts []meta.RetentionTag
		if r.DryRun {
			ts, err = c.PlanRetention(ctx, pr.Project, p)
		} else {
			ts, err = c.ApplyRetention(ctx, pr.Project, p, actor)
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			r.Errors = append(r.Errors, fmt.Sprintf("project %s: %v", pr.Project, err))
		}
		r.TagsRemoved += len(ts)
		for _, t := range ts {
			if len(r.Tags) < listed {
				r.Tags = append(r.Tags, t)
			}
		}
	}
	return nil
}
