package metatest

import (
	"context"
	"database/sql"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
)

// Backend is one driver under test.
type Backend struct {
	// NewDB makes a fresh, empty database.
	NewDB func(t *testing.T) DB
	// FailTagInsert is SQL that makes inserting the tag "boom" fail inside
	// the database (a trigger), for the atomicity test.
	FailTagInsert string
}

// DB is one database of a backend.
type DB interface {
	// Open opens a store over the database (migrating it): each call is
	// another process or replica. The caller closes it.
	Open(ctx context.Context) (*sqlstore.Store, error)
	// Raw is a plain connection to the database, for fault injection and
	// schema checks behind the store's back. It is closed with the test.
	Raw(t *testing.T) *sql.DB
	// Dialect is the driver's.
	Dialect() *sqlstore.Dialect
}

var ctx = context.Background()

// Run runs the whole contract suite against b.
func Run(t *testing.T, b Backend) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"Migrations", testMigrations},
		{"ConcurrentOpen", testConcurrentOpen},
		{"Blobs", testBlobs},
		{"ManifestsAndTags", testManifestsAndTags},
		{"MissingReferences", testMissingReferences},
		{"OptionalReferences", testOptionalReferences},
		{"ReferenceSizes", testReferenceSizes},
		{"RepositoryNotFound", testRepositoryNotFound},
		{"TagConditions", testTagConditions},
		{"Referrers", testReferrers},
		{"SHA512Manifest", testSHA512Manifest},
		{"Listing", testListing},
		{"PutManifestIsAtomic", testPutManifestIsAtomic},
		{"ConcurrentTagMoves", testConcurrentTagMoves},
		{"Signatures", testSignatures},
		{"ConcurrentSignatureBatches", testConcurrentSignatureBatches},
		{"IndexQueue", testIndexQueue},
		{"ConcurrentIndexWorkers", testConcurrentIndexWorkers},
		{"IndexBatchReads", testIndexBatchReads},
		{"TrustPolicies", testTrustPolicies},
		{"Quarantine", testQuarantine},
		{"RequireSignature", testRequireSignature},
		{"SignatureVerdict", testSignatureVerdict},
		{"SearchClaims", testSearchClaims},
		{"SearchConditions", testSearchConditions},
		{"SearchPaging", testSearchPaging},
		{"SearchAccess", testSearchAccess},
		{"ConcurrentProjects", testConcurrentProjects},
		{"FactsBackfill", testFactsBackfill},
		{"Users", testUsers},
		{"ProjectsAndMembers", testProjectsAndMembers},
		{"Tokens", testTokens},
		{"Audit", testAudit},
		{"UntrustedText", testUntrustedText},
		{"TlogStorage", testTlogStorage},
		{"Sessions", testSessions},
		{"ConsoleQueries", testConsoleQueries},
		{"GCBlobs", testGCBlobs},
		{"GCManifests", testGCManifests},
		{"DeleteImage", testDeleteImage},
		{"BlobDeletionClaims", testBlobDeletionClaims},
		{"RetentionStore", testRetentionStore},
		{"GCConcurrentPushes", testGCConcurrentPushes},
		{"KeyStore", testKeyStore},
		{"TUFFiles", testTUFFiles},
		{"LoginBudgets", testLoginBudgets},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a database of its own
			tc.fn(t, b)
		})
	}
}

// open opens a store over db, closed with the test.
func open(t *testing.T, db DB) *sqlstore.Store {
	t.Helper()
	s, err := db.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newStore opens a store over a fresh database.
func newStore(t *testing.T, b Backend) (*sqlstore.Store, DB) {
	t.Helper()
	db := b.NewDB(t)
	return open(t, db), db
}

// manifest returns an image manifest in repo referencing two blobs
// (linked first unless link is false).
func manifest(t *testing.T, s *sqlstore.Store, repo, seed string, link bool, subject digest.Digest) *meta.Manifest {
	t.Helper()
	cfg, layer := digest.FromString(seed+"cfg"), digest.FromString(seed+"layer")
	if link {
		for _, d := range []digest.Digest{cfg, layer} {
			if err := s.LinkBlob(ctx, repo, d, 10); err != nil {
				t.Fatal(err)
			}
		}
	}
	payload := []byte(`{"schemaVersion":2,"seed":"` + seed + `"}`)
	return &meta.Manifest{
		Repository:   repo,
		Digest:       digest.FromBytes(payload),
		MediaType:    "application/vnd.oci.image.manifest.v1+json",
		ArtifactType: "application/vnd.oci.image.config.v1+json",
		Payload:      payload,
		Subject:      subject,
		References:   []meta.Reference{{Digest: cfg, Kind: meta.RefBlob, Size: 10}, {Digest: layer, Kind: meta.RefBlob, Size: 10}},
	}
}
