package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

// RecordCertificates implements meta.Certificates: the certificate and its
// searchable claims in one transaction.
func (s *Store) RecordCertificates(ctx context.Context, certs ...meta.IssuedCertificate) error {
	if len(certs) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx conn) error {
		rows, claims := rowValues{width: 8}, rowValues{width: 3}
		for _, c := range certs {
			if c.SHA256 == "" || len(c.Claims) == 0 {
				return fmt.Errorf("certificate record without SHA-256 or claims (serial %q)", c.Serial)
			}
			rows.add(c.SHA256, c.Serial, c.IssuedAt.UnixNano(), c.NotAfter.UnixNano(), c.Issuer, c.Subject, c.ProjectPath, string(c.Claims))
			keys := make([]string, 0, len(c.Searchable))
			for k := range c.Searchable {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				claims.add(c.SHA256, k, c.Searchable[k])
			}
		}
		if err := insertRows(ctx, tx, `INSERT INTO ca_certificates(sha256, serial, issued_at, not_after, issuer, subject, project_path, claims) VALUES `,
			` ON CONFLICT DO NOTHING`, rows); err != nil {
			return err
		}
		return insertRows(ctx, tx, `INSERT INTO ca_certificate_claims(cert_sha256, claim, value) VALUES `, ` ON CONFLICT DO NOTHING`, claims)
	})
}

// certificateRecords returns the CA's records of the certificates shas,
// with the shown claims (meta.ShownClaims) as text.
func (s *Store) certificateRecords(ctx context.Context, shas []string) (map[string]meta.CertificateRecord, error) {
	out := map[string]meta.CertificateRecord{}
	for start := 0; start < len(shas); start += idsPerQuery {
		part := shas[start:min(start+idsPerQuery, len(shas))]
		args := make([]any, len(part))
		for i, v := range part {
			args[i] = v
		}
		rows, err := s.r.query(ctx, `SELECT sha256, serial, issued_at, not_after, issuer, subject, project_path, claims
			FROM ca_certificates WHERE sha256 IN (`+placeholders(len(part), 1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var c meta.CertificateRecord
			var issued, notAfter int64
			var claims string
			if err := rows.Scan(&c.SHA256, &c.Serial, &issued, &notAfter, &c.Issuer, &c.Subject, &c.ProjectPath, &claims); err != nil {
				rows.Close()
				return nil, err
			}
			c.IssuedAt, c.NotAfter = time.Unix(0, issued).UTC(), time.Unix(0, notAfter).UTC()
			c.Claims = shownClaims(claims)
			out[c.SHA256] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// shownClaims returns the meta.ShownClaims of a claims JSON object as
// text (strings as they are, numbers and booleans in their JSON spelling);
// other claims, and claims that are objects or arrays, are left out.
func shownClaims(raw string) map[string]string {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var all map[string]any
	if err := dec.Decode(&all); err != nil {
		return map[string]string{}
	}
	out := map[string]string{}
	for _, k := range meta.ShownClaims {
		switch v := all[k].(type) {
		case string:
			out[k] = v
		case json.Number:
			out[k] = v.String()
		case bool:
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}
