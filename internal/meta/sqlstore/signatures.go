package sqlstore

import (
	"context"
	"database/sql"
	"errors"
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
	now := time.Now().UnixNano()
	err := s.tx(ctx, func(tx conn) error {
		added = 0
		for _, sg := range sigs {
			rid, err := ensureRepo(ctx, tx, sg.Repository, now)
			if err != nil {
				return err
			}
			created := now
			if !sg.Created.IsZero() {
				created = sg.Created.UnixNano()
			}
			var id int64
			err = tx.queryRow(ctx, `INSERT INTO signatures(repository_id, subject_digest, manifest_digest, layer_digest, sig_key, kind,
				payload_type, signer, cert_issuer, log_index, status, status_detail, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT(repository_id, sig_key) DO NOTHING RETURNING id`,
				rid, sg.Subject.String(), sg.Manifest.String(), sg.Layer.String(), sg.Key, sg.Kind,
				sg.PayloadType, sg.Signer, sg.CertIssuer, sg.LogIndex, sg.Status, sg.StatusDetail, created).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				// Already indexed; if its image was deleted and the
				// signature is pushed again, it is listed again.
				res, err := tx.exec(ctx, `UPDATE signatures SET deleted_at = NULL, manifest_digest = ?
					WHERE repository_id = ? AND sig_key = ? AND deleted_at IS NOT NULL`, sg.Manifest.String(), rid, sg.Key)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n > 0 {
					added++
				}
				continue
			}
			if err != nil {
				return err
			}
			added++
			for k, v := range sg.Annotations {
				if _, err := tx.exec(ctx, `INSERT INTO signature_annotations(signature_id, key, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
					return err
				}
			}
			for k, v := range sg.CertExtensions {
				if _, err := tx.exec(ctx, `INSERT INTO signature_cert_extensions(signature_id, oid, value) VALUES (?, ?, ?)`, id, k, v); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return added, err
}

const sigColumns = `s.id, r.name, s.subject_digest, s.manifest_digest, s.layer_digest, s.sig_key, s.kind, s.payload_type,
	s.signer, s.cert_issuer, s.log_index, s.status, s.status_detail, s.created_at`

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
			&sg.Signer, &sg.CertIssuer, &logIndex, &sg.Status, &sg.StatusDetail, &created); err != nil {
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
		WHERE c.oid = ? AND c.value = ? AND s.deleted_at IS NULL ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, oid, value, limit)
}

// KnownSignatureKeys returns which of keys are recorded for repo (the
// indexer skips re-pushed layers it has already indexed).
func (s *Store) KnownSignatureKeys(ctx context.Context, repo string, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		chunk := keys[:n]
		keys = keys[n:]
		args := make([]any, 0, n+1)
		args = append(args, repo)
		for _, k := range chunk {
			args = append(args, k)
		}
		rows, err := s.r.query(ctx, `SELECT s.sig_key FROM signatures s JOIN repositories r ON r.id = s.repository_id
			WHERE r.name = ? AND s.deleted_at IS NULL AND s.sig_key IN (`+placeholders(n, 1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SearchSigner implements meta.Signatures.
func (s *Store) SearchSigner(ctx context.Context, signer string, limit int) ([]meta.Signature, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.querySignatures(ctx, `SELECT `+sigColumns+` FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE s.signer = ? AND s.deleted_at IS NULL ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, signer, limit)
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
		WHERE r.name = ? AND s.subject_digest = ? AND s.deleted_at IS NULL ORDER BY s.created_at, s.id`, repo, subject.String())
}

// SearchAnnotation implements meta.Signatures.
func (s *Store) SearchAnnotation(ctx context.Context, key, value string, limit int) ([]meta.Signature, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.querySignatures(ctx, `SELECT `+sigColumns+` FROM signature_annotations a
		JOIN signatures s ON s.id = a.signature_id JOIN repositories r ON r.id = s.repository_id
		WHERE a.key = ? AND a.value = ? AND s.deleted_at IS NULL ORDER BY s.created_at DESC, s.id DESC LIMIT ?`, key, value, limit)
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
