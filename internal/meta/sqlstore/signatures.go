package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// rowsPerInsert bounds the rows of one multi-row INSERT (SQLite allows
// 32,766 parameters; the widest row here has 8).
const rowsPerInsert = 500

// rowValues are the values of rows of one width (an INSERT's columns),
// one row after the other in one slice, not a slice per row.
type rowValues struct {
	width int
	vals  []any
}

// add appends a row of width values.
func (r *rowValues) add(vals ...any) { r.vals = append(r.vals, vals...) }

// insertRows inserts rows with multi-row INSERTs: head is "INSERT INTO
// t(cols) VALUES ", tail what follows the values (e.g. " ON CONFLICT DO
// NOTHING").
func insertRows(ctx context.Context, tx conn, head, tail string, rows rowValues) error {
	for start := 0; start < len(rows.vals); start += rowsPerInsert * rows.width {
		part := rows.vals[start:min(start+rowsPerInsert*rows.width, len(rows.vals))]
		if _, err := tx.exec(ctx, head+placeholders(len(part)/rows.width, rows.width)+tail, part...); err != nil {
			return err
		}
	}
	return nil
}

// RecordSignatures implements meta.Signatures. With each new signature it
// stores its facts (meta.Facts), from its annotations, certificate and the
// claims the CA recorded for its certificate.
func (s *Store) RecordSignatures(ctx context.Context, sigs []meta.Signature) (int, error) {
	if len(sigs) == 0 {
		return 0, nil
	}
	added := 0
	err := s.tx(ctx, func(tx conn) error {
		var err error
		added, err = recordSignatures(ctx, tx, sigs, false)
		return err
	})
	return added, err
}

// certClaims returns the searchable claims the CA recorded for each of the
// certificates with hex SHA-256 in shas, by SHA-256 (none for "" or a
// certificate it did not issue): one query per idsPerQuery certificates.
func certClaims(ctx context.Context, q conn, shas []string) (map[string]map[string]string, error) {
	shas = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(shas))), func(s string) bool { return s == "" })
	return stringMaps(ctx, q, `SELECT cert_sha256, claim, value FROM ca_certificate_claims WHERE cert_sha256 IN (%s)`, shas)
}

const sigColumns = `s.id, r.name, s.subject_digest, s.manifest_digest, s.layer_digest, s.sig_key, s.kind, s.payload_type,
	s.signer, s.cert_issuer, s.log_index, s.status, s.status_detail, s.created_at, s.cert_sha256, s.repository_id, s.generation`

// loadOptions say what querySignatures adds to each signature beyond its
// row, annotations and the CA's record: nil slices mean everything.
type loadOptions struct {
	extensions []string // certificate extensions, by OID
	facts      []string // facts, by field
	tags       bool     // the signed image's tags
}

// querySignatures runs q (selecting sigColumns) and completes each
// signature with its annotations, certificate extensions, facts and the
// CA's record of its certificate, as o says.
func (s *Store) querySignatures(ctx context.Context, o loadOptions, q string, args ...any) ([]meta.Signature, error) {
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []meta.Signature
	var repoIDs []int64
	for rows.Next() {
		var sg meta.Signature
		var subj, man, layer string
		var logIndex sql.NullInt64
		var created, rid int64
		if err := rows.Scan(&sg.ID, &sg.Repository, &subj, &man, &layer, &sg.Key, &sg.Kind, &sg.PayloadType,
			&sg.Signer, &sg.CertIssuer, &logIndex, &sg.Status, &sg.StatusDetail, &created, &sg.CertSHA256, &rid, &sg.Generation); err != nil {
			rows.Close()
			return nil, err
		}
		repoIDs = append(repoIDs, rid)
		sg.Subject, sg.Manifest, sg.Layer = digest.Digest(subj), digest.Digest(man), digest.Digest(layer)
		if logIndex.Valid {
			v := logIndex.Int64
			sg.LogIndex = &v
		}
		sg.Created = time.Unix(0, created).UTC()
		out = append(out, sg)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]int64, len(out))
	var shas []string
	for i := range out {
		ids[i] = out[i].ID
		if c := out[i].CertSHA256; c != "" && !slices.Contains(shas, c) {
			shas = append(shas, c)
		}
	}
	ann, err := stringMaps(ctx, s.r, `SELECT signature_id, key, value FROM signature_annotations WHERE signature_id IN (%s)`, ids)
	if err != nil {
		return nil, err
	}
	extQ := `SELECT signature_id, oid, value FROM signature_cert_extensions WHERE signature_id IN (%s)`
	if o.extensions != nil {
		extQ += ` AND oid IN (` + quoted(o.extensions) + `)`
	}
	ext, err := stringMaps(ctx, s.r, extQ, ids)
	if err != nil {
		return nil, err
	}
	var facts map[int64][]meta.Fact
	if o.facts == nil || len(o.facts) > 0 {
		if facts, err = s.facts(ctx, ids, o.facts); err != nil {
			return nil, err
		}
	}
	certs, err := s.certificateRecords(ctx, shas)
	if err != nil {
		return nil, err
	}
	var tags map[imageKey][]string
	if o.tags {
		if tags, err = s.imageTags(ctx, out, repoIDs); err != nil {
			return nil, err
		}
	}
	for i := range out {
		sg := &out[i]
		sg.Annotations, sg.CertExtensions, sg.Facts = ann[sg.ID], ext[sg.ID], facts[sg.ID]
		if sg.Annotations == nil {
			sg.Annotations = map[string]string{}
		}
		if sg.CertExtensions == nil {
			sg.CertExtensions = map[string]string{}
		}
		if c, ok := certs[sg.CertSHA256]; ok {
			sg.Certificate = &c
		}
		if o.tags {
			sg.Tags = tags[imageKey{repoIDs[i], sg.Subject.String()}]
			if sg.Tags == nil {
				sg.Tags = []string{}
			}
		}
	}
	return out, nil
}

// quoted is a SQL list of string literals of known-safe values (OIDs and
// field names defined in code, never input).
func quoted(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return strings.Join(q, ",")
}

// imageKey is an image in a repository, by repository id.
type imageKey struct {
	repo   int64
	digest string
}

// imageTags returns the tags of the images the signatures sign (one
// query: an OR of (repository, digest) pairs, each an index lookup).
func (s *Store) imageTags(ctx context.Context, sigs []meta.Signature, repoIDs []int64) (map[imageKey][]string, error) {
	out := map[imageKey][]string{}
	var keys []imageKey
	seen := map[imageKey]bool{}
	for i, sg := range sigs {
		k := imageKey{repoIDs[i], sg.Subject.String()}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for start := 0; start < len(keys); start += idsPerQuery {
		part := keys[start:min(start+idsPerQuery, len(keys))]
		conds := make([]string, len(part))
		args := make([]any, 0, 2*len(part))
		for i, k := range part {
			conds[i] = `(m.repository_id = ? AND m.digest = ?)`
			args = append(args, k.repo, k.digest)
		}
		rows, err := s.r.query(ctx, `SELECT m.repository_id, m.digest, t.name FROM manifests m CROSS JOIN tags t
			WHERE t.manifest_id = m.id AND (`+strings.Join(conds, ` OR `)+`) ORDER BY t.name`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k imageKey
			var tag string
			if err := rows.Scan(&k.repo, &k.digest, &tag); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = append(out[k], tag)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// facts returns the facts of the signatures ids (only those of fields,
// when set).
func (s *Store) facts(ctx context.Context, ids []int64, fields []string) (map[int64][]meta.Fact, error) {
	// The fields are filtered here, not in the query: a field condition
	// leads SQLite's planner to the (field, value) key, every signature's
	// fact of the field, instead of the signatures' few rows.
	out := map[int64][]meta.Fact{}
	for start := 0; start < len(ids); start += idsPerQuery {
		part := ids[start:min(start+idsPerQuery, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := s.r.query(ctx, `SELECT signature_id, field, value, basis FROM signature_facts WHERE signature_id IN (`+
			placeholders(len(part), 1)+`) ORDER BY signature_id, field, value`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var f meta.Fact
			if err := rows.Scan(&id, &f.Field, &f.Value, &f.Basis); err != nil {
				rows.Close()
				return nil, err
			}
			if fields != nil && !slices.Contains(fields, f.Field) {
				continue
			}
			out[id] = append(out[id], f)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// idsPerQuery bounds the ids of one IN list (SQLite allows 32,766
// parameters; a page of signatures is far smaller).
const idsPerQuery = 500

// stringMaps runs q (with %s for the placeholders of an IN list of ids,
// selecting id, key, value) for ids and returns the key/value map of each
// id: one query per idsPerQuery ids instead of one per signature.
func stringMaps[K int64 | string](ctx context.Context, c conn, q string, ids []K) (map[K]map[string]string, error) {
	out := map[K]map[string]string{}
	for start := 0; start < len(ids); start += idsPerQuery {
		part := ids[start:min(start+idsPerQuery, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := c.query(ctx, fmt.Sprintf(q, placeholders(len(part), 1)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id K
			var k, v string
			if err := rows.Scan(&id, &k, &v); err != nil {
				rows.Close()
				return nil, err
			}
			if out[id] == nil {
				out[id] = map[string]string{}
			}
			out[id][k] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ListSignatures implements meta.Signatures (the image page: one index
// range on repository and subject).
func (s *Store) ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]meta.Signature, error) {
	return s.querySignatures(ctx, loadOptions{}, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = ? AND s.subject_digest = ? AND s.deleted_at IS NULL ORDER BY s.created_at, s.id`, repo, subject.String())
}

// TagsOf implements meta.Signatures.
func (s *Store) TagsOf(ctx context.Context, repo string, d digest.Digest) ([]string, error) {
	rows, err := s.r.query(ctx, `SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
		JOIN manifests m ON m.id = t.manifest_id WHERE r.name = ? AND m.digest = ? ORDER BY t.name`, repo, d.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	tags := []string{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		tags = append(tags, t)
	}
	return tags, rows.Err()
}

// backfillFacts computes the facts of the signatures recorded before
// migration 6 (they have no certificate hash, so no CA claims), 500 at a
// time.
func backfillFacts(ctx context.Context, tx conn) error {
	var last int64
	for {
		rows, err := tx.query(ctx, `SELECT s.id, s.repository_id, r.name, s.signer, s.cert_issuer, s.created_at
			FROM signatures s JOIN repositories r ON r.id = s.repository_id WHERE s.id > ? ORDER BY s.id LIMIT ?`, last, idsPerQuery)
		if err != nil {
			return err
		}
		type sigRow struct {
			sig          meta.Signature
			rid, created int64
		}
		var batch []sigRow
		for rows.Next() {
			var r sigRow
			if err := rows.Scan(&r.sig.ID, &r.rid, &r.sig.Repository, &r.sig.Signer, &r.sig.CertIssuer, &r.created); err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		ids := make([]int64, len(batch))
		for i, r := range batch {
			ids[i] = r.sig.ID
		}
		ann, err := stringMaps(ctx, tx, `SELECT signature_id, key, value FROM signature_annotations WHERE signature_id IN (%s)`, ids)
		if err != nil {
			return err
		}
		ext, err := stringMaps(ctx, tx, `SELECT signature_id, oid, value FROM signature_cert_extensions WHERE signature_id IN (%s)`, ids)
		if err != nil {
			return err
		}
		facts := rowValues{width: 6}
		for _, r := range batch {
			r.sig.Annotations, r.sig.CertExtensions = ann[r.sig.ID], ext[r.sig.ID]
			for _, f := range meta.Facts(&r.sig, nil) {
				facts.add(f.Field, f.Value, r.created, r.sig.ID, r.rid, f.Basis)
			}
		}
		if err := insertRows(ctx, tx, `INSERT INTO signature_facts(field, value, created_at, signature_id, repository_id, basis) VALUES `,
			` ON CONFLICT DO NOTHING`, facts); err != nil {
			return err
		}
		last = batch[len(batch)-1].sig.ID
	}
}
