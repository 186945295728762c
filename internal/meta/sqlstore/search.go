package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// driveOrder ranks the fact fields by how few signatures a value usually
// has: the exact fact condition ranked first is read in index order and
// drives the search; the others are checked per signature.
var driveOrder = []string{meta.FieldJob, meta.FieldPipeline, meta.FieldCommit, meta.FieldIdentity, meta.FieldRunner,
	meta.FieldUser, meta.FieldRef, meta.FieldIssuer, meta.FieldProject}

// ErrBadSearch is wrapped by SearchSignatures for a query it refuses.
var ErrBadSearch = errors.New("bad search")

// SearchSignatures implements meta.Signatures. The access filter, every
// condition and the keyset position are in the one SQL statement, so a
// page is as full as the matches the caller may see allow. The plan:
//
//   - an exact fact condition: the facts index (field, value, created_at,
//     signature_id) read backwards from the position; each row's
//     repository is checked for access before its signature is read;
//   - else an annotation condition: the annotations index (key, value,
//     created_at, signature_id), the same way;
//   - else a prefix fact or a certificate extension condition: its
//     matches, sorted (a commit prefix of at least 7 hex digits has few);
//   - else the signatures in (created_at, id) order (a status alone: in
//     (status, created_at, id) order).
func (s *Store) SearchSignatures(ctx context.Context, q meta.SignatureSearch) ([]meta.Signature, error) {
	if q.Limit < 1 || q.Limit > meta.MaxSearchLimit {
		return nil, fmt.Errorf("%w: limit %d is not between 1 and %d", ErrBadSearch, q.Limit, meta.MaxSearchLimit)
	}
	var b whereBuilder
	if !b.access(q.Access) {
		return nil, nil // sees nothing
	}
	facts, anns, exts := slices.Clone(q.Facts), slices.Clone(q.Annotations), slices.Clone(q.CertExtensions)
	for _, f := range facts {
		if f.Prefix && f.Value == "" {
			return nil, fmt.Errorf("%w: empty prefix for %s", ErrBadSearch, f.Field)
		}
	}
	drive := -1
	for i, f := range facts {
		if !f.Prefix && (drive < 0 || rank(f.Field) < rank(facts[drive].Field)) {
			drive = i
		}
	}
	var from, created, id string
	// Signatures of deleted images are history, not search results.
	b.add(`s.deleted_at IS NULL`)
	switch {
	case drive >= 0:
		f := facts[drive]
		facts = slices.Delete(facts, drive, drive+1)
		from, created, id = `signature_facts d CROSS JOIN repositories r CROSS JOIN signatures s`, "d.created_at", "d.signature_id"
		b.add(`d.field = ? AND d.value = ? AND r.id = d.repository_id AND s.id = d.signature_id`, f.Field, f.Value)
	case len(anns) > 0:
		a := anns[0]
		anns = anns[1:]
		from, created, id = `signature_annotations d CROSS JOIN signatures s CROSS JOIN repositories r`, "d.created_at", "d.signature_id"
		b.add(`d.key = ? AND d.value = ? AND s.id = d.signature_id AND r.id = s.repository_id`, a.Key, a.Value)
	default:
		from, created, id = `signatures s CROSS JOIN repositories r`, "s.created_at", "s.id"
		b.add(`r.id = s.repository_id`)
		switch {
		case len(facts) > 0: // a prefix
			lo, hi := prefixRange(facts[0].Value)
			b.add(`s.id IN (SELECT signature_id FROM signature_facts WHERE field = ? AND value >= ? AND value < ?)`, facts[0].Field, lo, hi)
			facts = facts[1:]
		case len(exts) > 0:
			b.add(`s.id IN (SELECT signature_id FROM signature_cert_extensions WHERE oid = ? AND value = ?)`, exts[0].Key, exts[0].Value)
			exts = exts[1:]
		}
	}
	for _, f := range facts {
		if f.Prefix {
			lo, hi := prefixRange(f.Value)
			b.add(`EXISTS (SELECT 1 FROM signature_facts f WHERE f.signature_id = s.id AND f.field = ? AND f.value >= ? AND f.value < ?)`, f.Field, lo, hi)
		} else {
			b.add(`EXISTS (SELECT 1 FROM signature_facts f WHERE f.signature_id = s.id AND f.field = ? AND f.value = ?)`, f.Field, f.Value)
		}
	}
	for _, a := range anns {
		b.add(`EXISTS (SELECT 1 FROM signature_annotations a WHERE a.signature_id = s.id AND a.key = ? AND a.value = ?)`, a.Key, a.Value)
	}
	for _, e := range exts {
		b.add(`EXISTS (SELECT 1 FROM signature_cert_extensions c WHERE c.signature_id = s.id AND c.oid = ? AND c.value = ?)`, e.Key, e.Value)
	}
	if len(q.Statuses) > 0 {
		args := make([]any, len(q.Statuses))
		for i, st := range q.Statuses {
			args[i] = st
		}
		b.add(`s.status IN (`+placeholders(len(args), 1)+`)`, args...)
	}
	if !q.Since.IsZero() {
		b.add(created+` >= ?`, q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		b.add(created+` < ?`, q.Until.UnixNano())
	}
	if q.After != nil {
		b.add(`(`+created+`, `+id+`) < (?, ?)`, q.After.Created, q.After.ID)
	}
	b.where = append(b.where, b.acc)
	b.args = append(b.args, b.accArgs...)
	sqlq := `SELECT ` + sigColumns + ` FROM ` + from + ` WHERE ` + strings.Join(b.where, ` AND `) +
		` ORDER BY ` + created + ` DESC, ` + id + ` DESC LIMIT ?`
	o := loadOptions{tags: true}
	if q.Brief {
		o.extensions, o.facts = meta.EvidenceExtensions, []string{}
		for _, f := range q.Facts {
			if !slices.Contains(o.facts, f.Field) {
				o.facts = append(o.facts, f.Field)
			}
		}
	}
	return s.querySignatures(ctx, o, sqlq, append(b.args, q.Limit)...)
}

func rank(field string) int {
	if i := slices.Index(driveOrder, field); i >= 0 {
		return i
	}
	return len(driveOrder)
}

// prefixRange returns [lo, hi): the strings starting with p (p is not
// empty). Facts are compared bytewise (the value column's collation), and
// bytewise order of UTF-8 is code point order: hi is p with its last code
// point incremented (dropping trailing ones that cannot be).
func prefixRange(p string) (string, string) {
	for rest := p; rest != ""; {
		r, n := utf8.DecodeLastRuneInString(rest)
		rest = rest[:len(rest)-n]
		if r == utf8.RuneError || r == unicode.MaxRune {
			continue
		}
		next := r + 1
		if next >= 0xd800 && next <= 0xdfff {
			next = 0xe000
		}
		return p, rest + string(next)
	}
	return p, p + string(unicode.MaxRune) // p made only of U+10FFFF
}

// whereBuilder collects the conditions and arguments of a search.
type whereBuilder struct {
	where   []string
	args    []any
	acc     string // the access condition, added last
	accArgs []any
}

func (b *whereBuilder) add(cond string, args ...any) {
	b.where = append(b.where, cond)
	b.args = append(b.args, args...)
}

// access sets the access condition for a, on the repository r; false when
// a sees nothing.
func (b *whereBuilder) access(a meta.Access) bool {
	if a.All {
		b.acc = `1 = 1`
		return true
	}
	var ors []string
	var projCond []string
	if a.Public {
		projCond = append(projCond, `visibility = ?`)
		b.accArgs = append(b.accArgs, "public")
	}
	if len(a.Projects) > 0 {
		projCond = append(projCond, `path IN (`+placeholders(len(a.Projects), 1)+`)`)
		for _, p := range a.Projects {
			b.accArgs = append(b.accArgs, p)
		}
	}
	if len(projCond) > 0 {
		ors = append(ors, `r.project_id IN (SELECT id FROM projects WHERE `+strings.Join(projCond, ` OR `)+`)`)
	}
	if len(a.Repositories) > 0 {
		ors = append(ors, `r.name IN (`+placeholders(len(a.Repositories), 1)+`)`)
		for _, r := range a.Repositories {
			b.accArgs = append(b.accArgs, r)
		}
	}
	if len(ors) == 0 {
		return false
	}
	b.acc = `(` + strings.Join(ors, ` OR `) + `)`
	return true
}
