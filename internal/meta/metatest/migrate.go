package metatest

import (
	"strings"
	"sync"
	"testing"

	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
)

func versions(t *testing.T, db DB) []int {
	t.Helper()
	rows, err := db.Raw(t).Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// checkVersions: every migration is recorded exactly once, in order.
func checkVersions(t *testing.T, db DB) {
	t.Helper()
	got, all := versions(t, db), sqlstore.Migrations()
	if len(got) != len(all) {
		t.Fatalf("schema_migrations holds %v, want versions 1..%d", got, len(all))
	}
	for i, v := range got {
		if v != all[i].Version || v != i+1 {
			t.Fatalf("schema_migrations holds %v, want versions 1..%d", got, len(all))
		}
	}
}

func testMigrations(t *testing.T, b Backend) {
	db := b.NewDB(t)
	raw, d := db.Raw(t), db.Dialect()
	pending, err := sqlstore.Pending(ctx, raw, d)
	if err != nil || len(pending) != len(sqlstore.Migrations()) {
		t.Fatalf("a new database has %d pending migrations (%v), want all %d", len(pending), err, len(sqlstore.Migrations()))
	}
	applied, err := sqlstore.Migrate(ctx, raw, d)
	if err != nil || len(applied) != len(pending) {
		t.Fatalf("Migrate applied %d, %v", len(applied), err)
	}
	if applied, err := sqlstore.Migrate(ctx, raw, d); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate applied %d, %v", len(applied), err)
	}
	if pending, err := sqlstore.Pending(ctx, raw, d); err != nil || len(pending) != 0 {
		t.Fatalf("after Migrate: %d pending, %v", len(pending), err)
	}
	checkVersions(t, db)

	// Opening a migrated database applies nothing twice and keeps the data.
	s := open(t, db)
	m := manifest(t, s, "app", "a", true, "")
	if err := s.PutManifest(ctx, m, []string{"v1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, db)
	got, err := s2.GetManifest(ctx, "app", "v1")
	if err != nil || string(got.Payload) != string(m.Payload) {
		t.Fatalf("after reopen: %v", err)
	}
	s2.Close()
	checkVersions(t, db)

	// A database from a newer binary is refused, by Open and by Pending.
	if _, err := raw.Exec(`INSERT INTO schema_migrations(version, applied_at) VALUES (999, 0)`); err != nil {
		t.Fatal(err)
	}
	if s3, err := db.Open(ctx); err == nil || !strings.Contains(err.Error(), "newer") {
		if s3 != nil {
			s3.Close()
		}
		t.Fatalf("opened a database with a newer schema: %v", err)
	}
	if _, err := sqlstore.Pending(ctx, raw, d); err == nil {
		t.Fatal("Pending accepted a database with a newer schema")
	}

	// Every token of every migration is spelled by the dialect.
	for _, m := range sqlstore.Migrations() {
		q, err := d.Expand(m)
		if err != nil || strings.Contains(q, "{{") {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
	}
	if _, err := d.Expand(sqlstore.Migration{Version: 99, SQL: "CREATE TABLE x (a {{nope}})"}); err == nil {
		t.Fatal("an unknown token expanded")
	}
}

// testConcurrentOpen starts several replicas at once on a new database:
// each migration is applied exactly once and every replica works.
func testConcurrentOpen(t *testing.T, b Backend) {
	db := b.NewDB(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := db.Open(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			errs <- s.LinkBlob(ctx, "app", manifest(t, s, "app", "x", false, "").References[0].Digest, 1)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	checkVersions(t, db)
}
