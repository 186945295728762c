package ca_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/ca"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlite"
	"github.com/hallmark-dev/hallmark/internal/oidc"
)

// recordingFixture is a CA over HTTP whose records go to a real SQLite
// metadata database.
func recordingFixture(t *testing.T) (*fixture, *sqlite.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newFixtureWith(t, ca.Config{Records: store}), store
}

// issueGitLab asks the CA (v1 API) for a certificate for a GitLab token
// with claims and returns the answer.
func (f *fixture) issueGitLab(t *testing.T, claims map[string]any) (int, []byte) {
	t.Helper()
	k := newP256(t)
	status, _, body := f.post(t, "/api/v1/signingCert", f.iss.gitlab.mint(claims), v1Body(pubPEM(t, k.Public()), proveP256(t, k, claims["sub"].(string))))
	return status, body
}

// TestIssuedCertificatesAreRecorded: the CA records, for each certificate
// it issues, the verified token's claims the certificate cannot carry,
// keyed by the certificate's SHA-256; a signature made with it then finds
// them (and its facts rest on them).
func TestIssuedCertificatesAreRecorded(t *testing.T) {
	f, store := recordingFixture(t)
	ctx := context.Background()
	claims := f.iss.gitlab.gitlabClaims()
	claims["runner_id"] = 12270835 // a number in the token; text in the record
	status, body := f.issueGitLab(t, claims)
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	leaf := parsePEMChain(t, body)[0]
	sum := sha256.Sum256(leaf.Raw)
	cert := hex.EncodeToString(sum[:])

	d := digest.Digest("sha256:" + cert)
	sig := meta.Signature{Repository: "grp/app", Subject: d, Manifest: d, Layer: d, Key: "k",
		Kind: "cosign", Status: meta.StatusVerified, Signer: "x", CertSHA256: cert,
		Annotations: map[string]string{"com.gitlab.ci.user.name": "Mallory", "com.gitlab.ci.pipeline.id": "1"}}
	if _, err := store.RecordSignatures(ctx, []meta.Signature{sig}); err != nil {
		t.Fatal(err)
	}
	for _, fq := range []meta.FactFilter{{Field: meta.FieldRunner, Value: "12270835"}, {Field: meta.FieldUser, Value: "alice"}, {Field: meta.FieldPipeline, Value: "574"}} {
		res, err := store.SearchSignatures(ctx, meta.SignatureSearch{Facts: []meta.FactFilter{fq}, Access: meta.Access{All: true}, Limit: 10})
		if err != nil || len(res) != 1 {
			t.Fatalf("search %+v: %d results, %v", fq, len(res), err)
		}
		r := res[0].Certificate
		if r == nil || r.SHA256 != cert || r.Serial != leaf.SerialNumber.Text(16) || r.Issuer != f.iss.gitlab.URL || r.ProjectPath != "grp/app" ||
			r.Subject != leaf.URIs[0].String() || !r.IssuedAt.Equal(leaf.NotBefore) || r.Claims["runner_id"] != "12270835" || r.Claims["job_id"] != "302" {
			t.Errorf("record %+v", r)
		}
	}
	// The pushed annotations say other things; they never count.
	if res, _ := store.SearchSignatures(ctx, meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldPipeline, Value: "1"}}, Access: meta.Access{All: true}, Limit: 10}); len(res) != 0 {
		t.Errorf("the pushed pipeline annotation overrode the token's claim: %d results", len(res))
	}
}

// TestUnrecordedCertificateIsNotIssued: when the record cannot be stored
// (the database is gone), the CA answers 503 and hands out nothing.
func TestUnrecordedCertificateIsNotIssued(t *testing.T) {
	f, store := recordingFixture(t)
	store.Close()
	claims := f.iss.gitlab.gitlabClaims()
	status, body := f.issueGitLab(t, claims)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", status, body)
	}
	var e struct{ Message string }
	if json.Unmarshal(body, &e) != nil || len(parsePEMChain(t, body)) != 0 || e.Message == "" {
		t.Errorf("body %s", body)
	}
}

// TestRecordOfAToken: Record keeps every claim as JSON and the searchable
// ones as text, numbers in their JSON spelling.
func TestRecordOfAToken(t *testing.T) {
	f := newFixture(t)
	claims := f.iss.gitlab.gitlabClaims()
	status, body := f.issueGitLab(t, claims)
	if status != http.StatusCreated {
		t.Fatalf("status %d: %s", status, body)
	}
	leaf := parsePEMChain(t, body)[0]
	all0 := map[string]any{}
	for k, v := range claims {
		all0[k] = v
	}
	all0["runner_id"] = json.Number("1") // as the verifier decodes numbers
	rec, err := ca.Record(leaf, &oidc.Token{Issuer: f.iss.gitlab.URL, Claims: all0})
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]any
	if err := json.Unmarshal(rec.Claims, &all); err != nil || all["user_email"] != "alice@example.com" {
		t.Errorf("claims JSON %s: %v", rec.Claims, err)
	}
	if rec.Searchable["runner_id"] != "1" || rec.Searchable["user_login"] != "alice" || rec.Searchable["sha"] != claims["sha"] {
		t.Errorf("searchable %v", rec.Searchable)
	}
	if _, ok := rec.Searchable["user_email"]; ok {
		t.Error("user_email is searchable")
	}
}
