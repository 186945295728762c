package sqlite_test

import (
	"compress/gzip"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/metatest"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

var ctx = context.Background()

// file is one SQLite database file.
type file struct{ path string }

func (f file) Open(ctx context.Context) (*sqlstore.Store, error) {
	return sqlite.Open(ctx, sqlite.Config{Path: f.path})
}

func (f file) Raw(t *testing.T) *sql.DB {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+f.path+"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func (f file) Dialect() *sqlstore.Dialect { return sqlite.Dialect() }

func backend() metatest.Backend {
	return metatest.Backend{
		NewDB: func(t *testing.T) metatest.DB { return file{filepath.Join(t.TempDir(), "sub", "hallmark.db")} },
		FailTagInsert: `CREATE TRIGGER boom BEFORE INSERT ON tags WHEN NEW.name = 'boom'
			BEGIN SELECT RAISE(ABORT, 'injected failure'); END`,
	}
}

// TestContract runs the store contract suite on SQLite.
func TestContract(t *testing.T) { metatest.Run(t, backend()) }

func TestOpenRefusesEmptyPath(t *testing.T) {
	if _, err := sqlite.Open(ctx, sqlite.Config{}); err == nil {
		t.Fatal("opened with an empty path")
	}
}

// TestUpgradeFromSchema5 opens a database written by the last release
// before versioned migrations moved to meta/sqlstore (commit f217a33:
// schema_migrations at version 5, one manifest, signature, user and log
// entry): it opens without applying anything again and keeps the data.
func TestUpgradeFromSchema5(t *testing.T) {
	gz, err := os.Open("testdata/schema5-f217a33.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hallmark.db")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatal(err)
	}
	out.Close()
	s, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatalf("open a schema-5 database: %v", err)
	}
	defer s.Close()
	m, err := s.GetManifest(ctx, "group/app", "v1")
	if err != nil || len(m.Payload) == 0 {
		t.Fatalf("manifest of the old database: %v", err)
	}
	sigs, err := s.ListSignatures(ctx, "group/app", m.Digest)
	if err != nil || len(sigs) != 1 || sigs[0].Annotations["git_sha"] != "abc" || sigs[0].CertExtensions["1.3.6.1.4.1.57264.1.8"] != "https://issuer" {
		t.Fatalf("signatures of the old database: %+v, %v", sigs, err)
	}
	if u, err := s.GetUser(ctx, "alice"); err != nil || u.PasswordHash != "x" {
		t.Fatalf("user of the old database: %+v, %v", u, err)
	}
	ts, err := s.TransparencyLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	head, err := ts.Head(ctx)
	if err != nil || head.Size != 1 || head.TreeID != 77 {
		t.Fatalf("log head of the old database: %+v, %v", head, err)
	}
	if pending, err := sqlstore.Pending(ctx, file{path}.Raw(t), sqlite.Dialect()); err != nil || len(pending) != 0 {
		t.Fatalf("pending after open: %d, %v", len(pending), err)
	}
	// It takes new writes with the new code.
	if err := s.LinkBlob(ctx, "group/app", digest.FromString("new"), 1); err != nil {
		t.Fatal(err)
	}
}

// TestDatabaseFilesPrivate: the database, its WAL and shared-memory files
// are 0600, also when an earlier version left the database 0644 (issue 9,
// defect 9).
func TestDatabaseFilesPrivate(t *testing.T) {
	for _, existing := range []bool{false, true} {
		p := filepath.Join(t.TempDir(), "hallmark.db")
		if existing {
			s, err := sqlite.Open(ctx, sqlite.Config{Path: p})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		s, err := sqlite.Open(ctx, sqlite.Config{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.LinkBlob(ctx, "app", digest.FromString("x"), 1); err != nil { // a write: the WAL exists
			t.Fatal(err)
		}
		for _, f := range []string{p, p + "-wal", p + "-shm"} {
			fi, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("existing=%v: %s has mode %04o, want 0600", existing, filepath.Base(f), perm)
			}
		}
		s.Close()
	}
}

// TestBackgroundCheckpoints: committed pages reach the database file
// without waiting for the writer's autocheckpoint (1,000 WAL pages), and
// Close stops the checkpointer.
func TestBackgroundCheckpoints(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hallmark.db")
	s, err := sqlite.Open(ctx, sqlite.Config{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	size := func() int64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	time.Sleep(300 * time.Millisecond) // what the migrations wrote is copied
	before := size()
	// One transaction of ~400 KiB: a hundred new pages, far fewer than 1,000.
	sg := meta.Signature{Repository: "app", Subject: digest.FromString("image"), Manifest: digest.FromString("sig"),
		Layer: digest.FromString("layer"), Key: "k", Kind: "signature", Annotations: map[string]string{}}
	for i := range 200 {
		sg.Annotations[fmt.Sprintf("a%03d", i)] = strings.Repeat(strconv.Itoa(i), 2000)[:2000]
	}
	if _, err := s.RecordSignatures(ctx, []meta.Signature{sg}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for size() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("the database file stayed at %d bytes for 5 s after the writes: nothing copied it from the WAL", before)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkRecordSignatures: recording new keyless signatures as the
// indexer does (32 per transaction, a claimed batch of jobs), each with the
// eleven GitLab provenance annotations and the seventeen certificate
// extensions the CA writes: the database's share of indexing a signature
// (issue 10). One op is one signature.
func BenchmarkRecordSignatures(b *testing.B) {
	s, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "hallmark.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ext := map[string]string{}
	for _, n := range []int{fulcio.IssuerV1, fulcio.IssuerV2, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 24} {
		ext[fulcio.OID(n).String()] = fmt.Sprintf("https://gitlab.example.com/group/app/value-%d", n)
	}
	const perBatch = 32
	var batch []meta.Signature
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		seed := strconv.Itoa(i)
		ann := map[string]string{"tag": "v" + seed, "commit_sha": digest.FromString(seed).Encoded()[:40], "pipeline_id": seed, "job_id": seed,
			"pipeline_url": "https://gitlab.example.com/group/app/-/pipelines/" + seed, "job_url": "https://gitlab.example.com/group/app/-/jobs/" + seed,
			"ci_user": "alice", "ref": "main", "project_path": "group/app",
			"org.opencontainers.image.source": "https://gitlab.example.com/group/app", "org.opencontainers.image.revision": seed}
		sig := meta.Signature{Repository: "group/app", Subject: digest.FromString("image" + seed), Manifest: digest.FromString("sig" + seed),
			Layer: digest.FromString("layer" + seed), Key: "k" + seed, Kind: "cosign", PayloadType: "application/vnd.dev.cosign.simplesigning.v1+json",
			Signer: "https://gitlab.example.com/group/app//.gitlab-ci.yml@refs/heads/main", CertIssuer: "https://gitlab.example.com",
			Status: meta.StatusVerified, Annotations: ann, CertExtensions: ext, CertSHA256: digest.FromString("cert" + seed).Encoded()}
		if batch = append(batch, sig); len(batch) == perBatch {
			if n, err := s.RecordSignatures(ctx, batch); err != nil || n != perBatch {
				b.Fatal(n, err)
			}
			batch = batch[:0]
		}
	}
}
