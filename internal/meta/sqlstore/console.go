package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// The web console's reads: every one is bounded by a row cap and pages
// with a key (tag name, signature id), and runs on an index.

// artifactTagSQL is true for tags that look like cosign's attachment tags
// (sha256-<hex>.sig, .att, .sbom) or the referrers fallback tag; the
// console hides them unless asked (meta.IsArtifactTag decides exactly).
const artifactTagSQL = `((t.name LIKE 'sha256-%' OR t.name LIKE 'sha512-%') AND length(t.name) >= 71)`

// maxConsoleRows caps every console page.
const maxConsoleRows = 500

func capRows(n int) int {
	if n <= 0 || n > maxConsoleRows {
		return maxConsoleRows
	}
	return n
}

// ListTagInfo returns up to n tags of repo after the tag named after, in
// byte order, with their manifests; without artifacts, tags that look like
// signature attachments are left out. more reports whether further tags
// exist. ErrRepositoryNotFound for an unknown repository.
func (s *Store) ListTagInfo(ctx context.Context, repo, after string, n int, artifacts bool) ([]meta.TagInfo, bool, error) {
	n = capRows(n)
	id, err := repoID(ctx, s.r, repo)
	if err != nil {
		return nil, false, err
	}
	q := `SELECT t.name, m.digest, m.media_type, m.artifact_type, t.updated_at, m.size,
		(SELECT COALESCE(SUM(b.size), 0) FROM manifest_references mr JOIN blobs b ON b.digest = mr.child_digest
			JOIN repository_blobs rb ON rb.digest = b.digest AND rb.repository_id = m.repository_id
			WHERE mr.manifest_id = m.id AND mr.kind = 'blob'),
		(SELECT COUNT(*) FROM manifest_references mr WHERE mr.manifest_id = m.id AND mr.kind = 'manifest')
		FROM tags t JOIN manifests m ON m.id = t.manifest_id WHERE t.repository_id = ? AND t.name > ?`
	if !artifacts {
		q += ` AND NOT ` + artifactTagSQL
	}
	rows, err := s.r.query(ctx, q+` ORDER BY t.name LIMIT ?`, id, after, n+1)
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var out []meta.TagInfo
	for rows.Next() {
		var ti meta.TagInfo
		var dg string
		var pushed, size, blobs int64
		if err := rows.Scan(&ti.Name, &dg, &ti.MediaType, &ti.ArtifactType, &pushed, &size, &blobs, &ti.Children); err != nil {
			return nil, false, err
		}
		ti.Digest, ti.Pushed, ti.Size = digest.Digest(dg), time.Unix(0, pushed).UTC(), size+blobs
		out = append(out, ti)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if len(out) > n {
		return out[:n], true, nil
	}
	return out, false, nil
}

// SearchRepositories returns up to n repository names after the name
// after, in byte order, containing contains ("" for all).
func (s *Store) SearchRepositories(ctx context.Context, contains, after string, n int) ([]string, bool, error) {
	n = capRows(n)
	pat := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(contains) + "%"
	return s.list(ctx, `SELECT name FROM repositories WHERE name > ? AND name LIKE ? ESCAPE '\' ORDER BY name LIMIT ?`, n, after, pat, n+1)
}

// SignaturePage returns up to n signatures of subject in repo with an id
// above after, oldest first; more reports whether further ones exist.
func (s *Store) SignaturePage(ctx context.Context, repo string, subject digest.Digest, after int64, n int) ([]meta.Signature, bool, error) {
	n = capRows(n)
	sigs, err := s.querySignatures(ctx, loadOptions{}, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = ? AND s.subject_digest = ? AND s.id > ? AND s.deleted_at IS NULL ORDER BY s.id LIMIT ?`, repo, subject.String(), after, n+1)
	if err != nil {
		return nil, false, err
	}
	if len(sigs) > n {
		return sigs[:n], true, nil
	}
	return sigs, false, nil
}

// LatestSignatures returns the newest signatures (at most n) of the given
// subjects in repo, newest first: the console picks each image's
// representative signature from them.
func (s *Store) LatestSignatures(ctx context.Context, repo string, subjects []digest.Digest, n int) ([]meta.Signature, error) {
	if len(subjects) == 0 {
		return nil, nil
	}
	subjects = subjects[:min(len(subjects), idsPerQuery)]
	args := []any{repo}
	for _, d := range subjects {
		args = append(args, d.String())
	}
	args = append(args, capRows(n))
	return s.querySignatures(ctx, loadOptions{}, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = ? AND s.subject_digest IN (`+placeholders(len(subjects), 1)+`) AND s.deleted_at IS NULL ORDER BY s.id DESC LIMIT ?`, args...)
}

// SignatureStatusCounts returns, per subject of repo among subjects, how
// many signatures it has of each status.
func (s *Store) SignatureStatusCounts(ctx context.Context, repo string, subjects []digest.Digest) (map[digest.Digest]map[string]int, error) {
	out := map[digest.Digest]map[string]int{}
	if len(subjects) == 0 {
		return out, nil
	}
	subjects = subjects[:min(len(subjects), idsPerQuery)]
	args := []any{repo}
	for _, d := range subjects {
		args = append(args, d.String())
	}
	rows, err := s.r.query(ctx, `SELECT s.subject_digest, s.status, COUNT(*) FROM signatures s
		JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = ? AND s.subject_digest IN (`+placeholders(len(subjects), 1)+`) AND s.deleted_at IS NULL GROUP BY s.subject_digest, s.status`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var subj, status string
		var n int
		if err := rows.Scan(&subj, &status, &n); err != nil {
			return nil, err
		}
		d := digest.Digest(subj)
		if out[d] == nil {
			out[d] = map[string]int{}
		}
		out[d][status] = n
	}
	return out, rows.Err()
}

// ImageStatusCounts counts, per repository, the images (tagged manifests,
// attachment tags left out) by image status: the best status of their
// signatures in the order given (order[0] is the best; a status not in
// order ranks after all of them and counts as other), unsigned when they
// have none. LastPush is the repository's newest tag move.
func (s *Store) ImageStatusCounts(ctx context.Context, order []string, other, unsigned string) ([]meta.StatusCount, error) {
	var rank strings.Builder
	args := []any{}
	rank.WriteString("CASE status")
	for i, st := range order {
		rank.WriteString(fmt.Sprintf(" WHEN ? THEN %d", i))
		args = append(args, st)
	}
	rank.WriteString(fmt.Sprintf(" ELSE %d END", len(order)))
	q := `SELECT r.name, COALESCE(b.rank, -1), COUNT(*), MAX(i.pushed) FROM
		(SELECT m.repository_id, m.digest, MAX(t.updated_at) AS pushed FROM tags t JOIN manifests m ON m.id = t.manifest_id
			WHERE NOT ` + artifactTagSQL + ` GROUP BY m.repository_id, m.digest) i
		JOIN repositories r ON r.id = i.repository_id
		LEFT JOIN (SELECT repository_id, subject_digest, MIN(` + rank.String() + `) AS rank FROM signatures
			WHERE deleted_at IS NULL GROUP BY repository_id, subject_digest) b ON b.repository_id = i.repository_id AND b.subject_digest = i.digest
		GROUP BY r.name, COALESCE(b.rank, -1) ORDER BY r.name`
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.StatusCount
	for rows.Next() {
		var c meta.StatusCount
		var rk int
		var last int64
		if err := rows.Scan(&c.Repository, &rk, &c.Images, &last); err != nil {
			return nil, err
		}
		switch {
		case rk < 0:
			c.Status = unsigned
		case rk < len(order):
			c.Status = order[rk]
		default:
			c.Status = other
		}
		c.LastPush = time.Unix(0, last).UTC()
		out = append(out, c)
	}
	return out, rows.Err()
}

// RecentImages returns the n most recently pushed tagged manifests
// (attachment tags left out), newest first.
func (s *Store) RecentImages(ctx context.Context, n int) ([]meta.ImageRef, error) {
	rows, err := s.r.query(ctx, `SELECT r.name, m.digest, t.name, m.created_at FROM manifests m
		JOIN repositories r ON r.id = m.repository_id JOIN tags t ON t.manifest_id = m.id
		WHERE NOT `+artifactTagSQL+` ORDER BY m.created_at DESC, t.name LIMIT ?`, capRows(n))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []meta.ImageRef
	for rows.Next() {
		var ir meta.ImageRef
		var dg string
		var at int64
		if err := rows.Scan(&ir.Repository, &dg, &ir.Tag, &at); err != nil {
			return nil, err
		}
		ir.Digest, ir.Pushed = digest.Digest(dg), time.Unix(0, at).UTC()
		out = append(out, ir)
	}
	return out, rows.Err()
}

// RecentSignatures returns the n most recently indexed signatures, newest
// first.
func (s *Store) RecentSignatures(ctx context.Context, n int) ([]meta.Signature, error) {
	return s.querySignatures(ctx, loadOptions{}, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE s.deleted_at IS NULL ORDER BY s.id DESC LIMIT ?`, capRows(n))
}

// SignaturesByLogIndex returns the signatures (at most n) recorded with
// transparency log index idx.
func (s *Store) SignaturesByLogIndex(ctx context.Context, idx int64, n int) ([]meta.Signature, error) {
	return s.querySignatures(ctx, loadOptions{}, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE s.log_index = ? AND s.deleted_at IS NULL ORDER BY s.id LIMIT ?`, idx, capRows(n))
}

// ListReferrers returns up to n referrers of d in repo, oldest first.
func (s *Store) ListReferrers(ctx context.Context, repo string, d digest.Digest, n int) ([]meta.Descriptor, bool, error) {
	n = capRows(n)
	descs, err := s.referrers(ctx, repo, d, "", n+1)
	if err != nil {
		return nil, false, err
	}
	if len(descs) > n {
		return descs[:n], true, nil
	}
	return descs, false, nil
}

// TagsOfN returns up to n tags pointing at manifest d in repo, in byte
// order; more reports whether there are others.
func (s *Store) TagsOfN(ctx context.Context, repo string, d digest.Digest, n int) ([]string, bool, error) {
	n = capRows(n)
	return s.list(ctx, `SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
		JOIN manifests m ON m.id = t.manifest_id WHERE r.name = ? AND m.digest = ? ORDER BY t.name LIMIT ?`, n, repo, d.String(), n+1)
}
