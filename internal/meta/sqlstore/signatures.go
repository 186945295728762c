package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// RecordSignatures implements meta.Signatures.
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

const sigColumns = `s.id, r.name, s.subject_digest, s.manifest_digest, s.layer_digest, s.sig_key, s.kind, s.payload_type,
	s.signer, s.cert_issuer, s.log_index, s.status, s.status_detail, s.created_at, s.generation`

func (s *Store) querySignatures(ctx context.Context, q string, args ...any) ([]meta.Signature, error) {
	rows, err := s.r.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []meta.Signature
	for rows.Next() {
		var sg meta.Signature
		var subj, man, layer string
		var logIndex sql.NullInt64
		var created int64
		if err := rows.Scan(&sg.ID, &sg.Repository, &subj, &man, &layer, &sg.Key, &sg.Kind, &sg.PayloadType,
			&sg.Signer, &sg.CertIssuer, &logIndex, &sg.Status, &sg.StatusDetail, &created, &sg.Generation); err != nil {
			rows.Close()
			return nil, err
		}
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
	ids := make([]int64, len(out))
	for i := range out {
		ids[i] = out[i].ID
	}
	ann, err := s.stringMaps(ctx, `SELECT signature_id, key, value FROM signature_annotations WHERE signature_id IN (%s)`, ids)
	if err != nil {
		return nil, err
	}
	ext, err := s.stringMaps(ctx, `SELECT signature_id, oid, value FROM signature_cert_extensions WHERE signature_id IN (%s)`, ids)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Annotations, out[i].CertExtensions = ann[out[i].ID], ext[out[i].ID]
		if out[i].Annotations == nil {
			out[i].Annotations = map[string]string{}
		}
		if out[i].CertExtensions == nil {
			out[i].CertExtensions = map[string]string{}
		}
	}
	return out, nil
}

// SearchCertificate implements meta.Signatures.
func (s *Store) SearchCertificate(ctx context.Context, oid, value string, limit int) ([]meta.Signature, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.querySignatures(ctx, `SELECT `+sigColumns+` FROM signature_cert_extensions c
		JOIN signatures s ON s.id = c.signature_id JOIN repositories r ON r.id = s.repository_id
		WHERE c.oid = ? AND c.value = ? ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, oid, value, limit)
}

// SearchSigner implements meta.Signatures.
func (s *Store) SearchSigner(ctx context.Context, signer string, limit int) ([]meta.Signature, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.querySignatures(ctx, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE s.signer = ? ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, signer, limit)
}

// idsPerQuery bounds the ids of one IN list (SQLite allows 32,766
// parameters; a page of signatures is far smaller).
const idsPerQuery = 500

// stringMaps runs q (with %s for the placeholders of an IN list of ids,
// selecting id, key, value) for ids and returns the key/value map of each
// id: one query per idsPerQuery ids instead of one per signature.
func (s *Store) stringMaps(ctx context.Context, q string, ids []int64) (map[int64]map[string]string, error) {
	out := map[int64]map[string]string{}
	for start := 0; start < len(ids); start += idsPerQuery {
		part := ids[start:min(start+idsPerQuery, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := s.r.query(ctx, fmt.Sprintf(q, placeholders(len(part), 1)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
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

// ListSignatures implements meta.Signatures.
func (s *Store) ListSignatures(ctx context.Context, repo string, subject digest.Digest) ([]meta.Signature, error) {
	return s.querySignatures(ctx, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = ? AND s.subject_digest = ? ORDER BY s.created_at, s.id`, repo, subject.String())
}

// SearchAnnotation implements meta.Signatures.
func (s *Store) SearchAnnotation(ctx context.Context, key, value string, limit int) ([]meta.Signature, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.querySignatures(ctx, `SELECT `+sigColumns+` FROM signature_annotations a
		JOIN signatures s ON s.id = a.signature_id JOIN repositories r ON r.id = s.repository_id
		WHERE a.key = ? AND a.value = ? ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, key, value, limit)
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
