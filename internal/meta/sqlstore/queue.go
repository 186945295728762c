package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// enqueueSignatureManifest adds the indexing job of a signature manifest
// in the transaction that stores it (PutManifest): a push acknowledged is
// a job the index will run. A job already waiting for the manifest is
// asked for again (its seq changes, so a worker holding it runs it once
// more).
func enqueueSignatureManifest(ctx context.Context, tx conn, m *meta.Manifest, tags []string, now int64) error {
	for _, subject := range m.SignatureSubjects(tags) {
		if _, err := tx.exec(ctx, `INSERT INTO index_jobs(repository, manifest_digest, subject_digest, generation, created_at)
			VALUES (?, ?, ?, 0, ?)
			ON CONFLICT(repository, manifest_digest, subject_digest) DO UPDATE SET seq = index_jobs.seq + 1`,
			m.Repository, m.Digest.String(), subject.String(), now); err != nil {
			return err
		}
	}
	return nil
}

const jobColumns = `id, repository, manifest_digest, subject_digest, generation, seq`

// ClaimIndexJobs implements meta.IndexQueue. On PostgreSQL the candidate
// rows are locked with SKIP LOCKED, so workers of several replicas claim
// disjoint batches without waiting for each other; SQLite's single writer
// runs one claim at a time.
func (s *Store) ClaimIndexJobs(ctx context.Context, owner string, n int, lease time.Duration, repo string, subject digest.Digest) ([]meta.IndexJob, error) {
	if n <= 0 {
		return nil, nil
	}
	now := time.Now().UnixNano()
	where, args := `claimed_at < ?`, []any{owner, now, now - lease.Nanoseconds()}
	if repo != "" {
		where += ` AND repository = ? AND subject_digest = ?`
		args = append(args, repo, subject.String())
	}
	args = append(args, n)
	var jobs []meta.IndexJob
	err := s.tx(ctx, func(tx conn) error {
		jobs = jobs[:0]
		rows, err := tx.query(ctx, `UPDATE index_jobs SET claimed_by = ?, claimed_at = ? WHERE id IN (
			SELECT id FROM index_jobs WHERE `+where+` ORDER BY id LIMIT ?`+s.d.SkipLocked+`) RETURNING `+jobColumns, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var j meta.IndexJob
			var man, subj string
			if err := rows.Scan(&j.ID, &j.Repository, &man, &subj, &j.Generation, &j.Seq); err != nil {
				return err
			}
			j.Manifest, j.Subject = digest.Digest(man), digest.Digest(subj)
			jobs = append(jobs, j)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(jobs, func(a, b meta.IndexJob) int { return int(a.ID - b.ID) })
	return jobs, nil
}

// FinishIndexJobs implements meta.IndexQueue.
func (s *Store) FinishIndexJobs(ctx context.Context, owner string, jobs []meta.IndexJob, sigs []meta.Signature) (int, error) {
	added := 0
	err := s.tx(ctx, func(tx conn) error {
		var err error
		if added, err = recordSignatures(ctx, tx, sigs, true); err != nil {
			return err
		}
		if len(jobs) == 0 {
			return nil
		}
		del, err := tx.prepare(ctx, `DELETE FROM index_jobs WHERE id = ? AND seq = ? AND claimed_by = ?`) // once per batch, not per job
		if err != nil {
			return err
		}
		defer del.close()
		for _, j := range jobs {
			res, err := del.exec(ctx, j.ID, j.Seq, owner)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				continue
			}
			// Asked for again while it ran: let it run once more.
			if _, err := tx.exec(ctx, `UPDATE index_jobs SET claimed_by = '', claimed_at = 0 WHERE id = ? AND claimed_by = ?`, j.ID, owner); err != nil {
				return err
			}
		}
		return nil
	})
	return added, err
}

// ReleaseIndexJobs implements meta.IndexQueue.
func (s *Store) ReleaseIndexJobs(ctx context.Context, owner string) error {
	_, err := s.w.exec(ctx, `UPDATE index_jobs SET claimed_by = '', claimed_at = 0 WHERE claimed_by = ?`, owner)
	return err
}

// PendingIndexJobs implements meta.IndexQueue.
func (s *Store) PendingIndexJobs(ctx context.Context, repo string, subject digest.Digest) (int, error) {
	q, args := `SELECT COUNT(*) FROM index_jobs`, []any{}
	switch {
	case repo != "" && subject != "":
		q, args = q+` WHERE repository = ? AND subject_digest = ?`, []any{repo, subject.String()}
	case repo != "":
		q, args = q+` WHERE repository = ?`, []any{repo}
	}
	var n int
	err := s.r.queryRow(ctx, q, args...).Scan(&n)
	return n, err
}

// IndexGeneration implements meta.IndexQueue.
func (s *Store) IndexGeneration(ctx context.Context) (int64, error) {
	var g int64
	err := s.r.queryRow(ctx, `SELECT generation FROM index_state WHERE id = 1`).Scan(&g)
	return g, err
}

// JobManifests implements meta.IndexQueue: one query per idsPerQuery
// manifests, instead of a GetManifest per job.
func (s *Store) JobManifests(ctx context.Context, jobs []meta.IndexJob) ([]*meta.Manifest, error) {
	want := map[string][]string{}
	for _, j := range jobs {
		want[j.Repository] = append(want[j.Repository], j.Manifest.String())
	}
	found := map[[2]string]*meta.Manifest{}
	err := perRepository(ctx, s.r, `SELECT r.name, m.digest, m.media_type, m.artifact_type, m.payload, m.subject_digest, m.created_at
		FROM repositories r JOIN manifests m ON m.repository_id = r.id WHERE r.name = ? AND m.digest IN (%s)`, want, func(rows *sql.Rows) error {
		m := &meta.Manifest{}
		var dg, subject string
		var created int64
		if err := rows.Scan(&m.Repository, &dg, &m.MediaType, &m.ArtifactType, &m.Payload, &subject, &created); err != nil {
			return err
		}
		m.Digest, m.Subject, m.Created = digest.Digest(dg), digest.Digest(subject), time.Unix(0, created)
		found[[2]string{m.Repository, dg}] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*meta.Manifest, len(jobs))
	for i, j := range jobs {
		out[i] = found[[2]string{j.Repository, j.Manifest.String()}]
	}
	return out, nil
}

// SignatureGenerations implements meta.IndexQueue.
func (s *Store) SignatureGenerations(ctx context.Context, keys map[string][]string) (map[string]map[string]int64, error) {
	out := map[string]map[string]int64{}
	err := perRepository(ctx, s.r, `SELECT r.name, s.sig_key, s.generation FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE r.name = ? AND s.deleted_at IS NULL AND s.sig_key IN (%s)`, keys, func(rows *sql.Rows) error {
		var repo, k string
		var g int64
		if err := rows.Scan(&repo, &k, &g); err != nil {
			return err
		}
		if out[repo] == nil {
			out[repo] = map[string]int64{}
		}
		out[repo][k] = g
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RepositoryBlobs implements meta.IndexQueue (BlobSize's rule: a blob
// linked to the repository and stored).
func (s *Store) RepositoryBlobs(ctx context.Context, blobs map[string][]digest.Digest) (map[string]map[digest.Digest]bool, error) {
	want := make(map[string][]string, len(blobs))
	for repo, ds := range blobs {
		for _, d := range ds {
			want[repo] = append(want[repo], d.String())
		}
	}
	out := map[string]map[digest.Digest]bool{}
	err := perRepository(ctx, s.r, `SELECT r.name, COALESCE(rb.digest, ''), b.size FROM (SELECT id, name FROM repositories WHERE name = ?) r
		LEFT JOIN repository_blobs rb ON rb.repository_id = r.id AND rb.digest IN (%s) LEFT JOIN blobs b ON b.digest = rb.digest`, want, func(rows *sql.Rows) error {
		var repo, d string
		var size sql.NullInt64
		if err := rows.Scan(&repo, &d, &size); err != nil {
			return err
		}
		if out[repo] == nil {
			out[repo] = map[digest.Digest]bool{}
		}
		if d != "" && size.Valid {
			out[repo][digest.Digest(d)] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// perRepository runs q for the values of each repository of want: q
// selects rows of one repository, with a ? for its name and %s for the
// placeholders of an IN list of its values. The repositories' selects
// are joined with UNION ALL into statements of at most idsPerQuery
// parameters (each an index lookup, as one query per repository would
// be); scan is called for each row.
func perRepository(ctx context.Context, c conn, q string, want map[string][]string, scan func(*sql.Rows) error) error {
	var parts []string
	var args []any
	flush := func() error {
		if len(parts) == 0 {
			return nil
		}
		rows, err := c.query(ctx, strings.Join(parts, ` UNION ALL `), args...)
		parts, args = parts[:0], args[:0]
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	for _, repo := range slices.Sorted(maps.Keys(want)) {
		vals := slices.Compact(slices.Sorted(slices.Values(want[repo])))
		for len(vals) > 0 {
			n := min(len(vals), idsPerQuery-1-len(args))
			if n <= 0 {
				if err := flush(); err != nil {
					return err
				}
				continue
			}
			parts = append(parts, fmt.Sprintf(q, placeholders(n, 1)))
			args = append(args, repo)
			for _, v := range vals[:n] {
				args = append(args, v)
			}
			vals = vals[n:]
		}
	}
	return flush()
}

// Reindex implements meta.IndexQueue.
func (s *Store) Reindex(ctx context.Context, project string) (gen int64, jobs int, err error) {
	err = s.tx(ctx, func(tx conn) error {
		gen, jobs, err = reindex(ctx, tx, project)
		return err
	})
	return gen, jobs, err
}

// reindex starts a new index generation and enqueues, with it, every
// signature manifest (and subject: one manifest may sign several images)
// indexed in the repositories under project ("" : all).
// The manifests of sub-projects come along; their jobs decide the same
// statuses again.
func reindex(ctx context.Context, tx conn, project string) (int64, int, error) {
	var gen int64
	if err := tx.queryRow(ctx, `UPDATE index_state SET generation = generation + 1 WHERE id = 1 RETURNING generation`).Scan(&gen); err != nil {
		return 0, 0, err
	}
	prefix := project + "/"
	res, err := tx.exec(ctx, `INSERT INTO index_jobs(repository, manifest_digest, subject_digest, generation, created_at)
		SELECT DISTINCT r.name, s.manifest_digest, s.subject_digest, CAST(? AS BIGINT), CAST(? AS BIGINT) FROM signatures s JOIN repositories r ON r.id = s.repository_id
		WHERE s.deleted_at IS NULL AND (? = '' OR r.name = ? OR substr(r.name, 1, ?) = ?)
		ON CONFLICT(repository, manifest_digest, subject_digest) DO UPDATE SET generation = excluded.generation, seq = index_jobs.seq + 1`,
		gen, time.Now().UnixNano(), project, project, len([]rune(prefix)), prefix)
	if err != nil {
		return 0, 0, err
	}
	n, _ := res.RowsAffected()
	return gen, int(n), nil
}

// recordSignatures records sigs: a new one with its annotations and
// certificate extensions; a known one (same repository and key) is left
// alone, or with update gets the new status, detail and generation. It
// returns how many were new. A new signature comes with a few dozen rows
// (annotations, certificate extensions, facts), written for the whole
// batch at the end with multi-row INSERTs: one statement per row cost
// more than verifying the signature.
func recordSignatures(ctx context.Context, tx conn, sigs []meta.Signature, update bool) (int, error) {
	added := 0
	now := time.Now().UnixNano()
	// The repositories' rows are locked in name order, so concurrent
	// batches over the same repositories cannot deadlock.
	repos := map[string]int64{}
	for _, sg := range sigs {
		repos[sg.Repository] = 0
	}
	for _, name := range slices.Sorted(maps.Keys(repos)) {
		rid, err := ensureRepo(ctx, tx, name, now)
		if err != nil {
			return 0, err
		}
		repos[name] = rid
	}
	var st struct{ insert, update, undelete stmt }
	for _, p := range []struct {
		dst *stmt
		q   string
	}{
		{&st.insert, `INSERT INTO signatures(repository_id, subject_digest, manifest_digest, layer_digest, sig_key, kind,
			payload_type, signer, cert_issuer, log_index, status, status_detail, created_at, generation, cert_sha256)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT(repository_id, sig_key) DO NOTHING RETURNING id`},
		{&st.update, `UPDATE signatures SET status = ?, status_detail = ?, generation = ? WHERE repository_id = ? AND sig_key = ?`},
		// A signature of a deleted image (history) pushed again is listed
		// again, as decided now.
		{&st.undelete, `UPDATE signatures SET deleted_at = NULL, manifest_digest = ?, status = ?, status_detail = ?, generation = ?
			WHERE repository_id = ? AND sig_key = ? AND deleted_at IS NOT NULL`},
	} {
		var err error
		if *p.dst, err = tx.prepare(ctx, p.q); err != nil {
			return 0, err
		}
		defer p.dst.close()
	}
	// A new signature's annotations, certificate extensions and facts
	// (a few dozen rows each) are written after the loop, many rows per
	// statement.
	var nAnn, nExt int
	for _, sg := range sigs {
		nAnn, nExt = nAnn+len(sg.Annotations), nExt+len(sg.CertExtensions)
	}
	annotations, extensions := rowValues{width: 4, vals: make([]any, 0, 4*nAnn)}, rowValues{width: 3, vals: make([]any, 0, 3*nExt)}
	facts := rowValues{width: 6}
	shas := make([]string, len(sigs))
	for i, sg := range sigs {
		shas[i] = sg.CertSHA256
	}
	claims, err := certClaims(ctx, tx, shas)
	if err != nil {
		return 0, err
	}
	for _, sg := range sigs {
		rid := repos[sg.Repository]
		created := now
		if !sg.Created.IsZero() {
			created = sg.Created.UnixNano()
		}
		var id int64
		err := st.insert.queryRow(ctx, rid, sg.Subject.String(), sg.Manifest.String(), sg.Layer.String(), sg.Key, sg.Kind,
			sg.PayloadType, sg.Signer, sg.CertIssuer, sg.LogIndex, sg.Status, sg.StatusDetail, created, sg.Generation, sg.CertSHA256).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			res, err := st.undelete.exec(ctx, sg.Manifest.String(), sg.Status, sg.StatusDetail, sg.Generation, rid, sg.Key)
			if err != nil {
				return 0, err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				added++
				continue
			}
			if !update {
				continue
			}
			if _, err := st.update.exec(ctx, sg.Status, sg.StatusDetail, sg.Generation, rid, sg.Key); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			return 0, err
		}
		added++
		idv, createdv, ridv := any(id), any(created), any(rid) // boxed once for the signature's rows
		for k, v := range sg.Annotations {
			annotations.add(idv, k, v, createdv)
		}
		for k, v := range sg.CertExtensions {
			extensions.add(idv, k, v)
		}
		for _, f := range meta.Facts(&sg, claims[sg.CertSHA256]) {
			facts.add(f.Field, f.Value, createdv, idv, ridv, f.Basis)
		}
	}
	// Keys made equal by the text cleaning (textArgs) keep the first.
	for _, ins := range []struct {
		head string
		rows rowValues
	}{
		{`INSERT INTO signature_annotations(signature_id, key, value, created_at) VALUES `, annotations},
		{`INSERT INTO signature_cert_extensions(signature_id, oid, value) VALUES `, extensions},
		{`INSERT INTO signature_facts(field, value, created_at, signature_id, repository_id, basis) VALUES `, facts},
	} {
		if err := insertRows(ctx, tx, ins.head, ` ON CONFLICT DO NOTHING`, ins.rows); err != nil {
			return 0, err
		}
	}
	return added, nil
}
