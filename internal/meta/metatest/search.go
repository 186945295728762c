package metatest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
	"github.com/hallmark-dev/hallmark/pkg/fulcio"
)

// Fulcio extensions the search tests use.
var (
	oidCommit = fulcio.OID(13).String()
	oidRef    = fulcio.OID(14).String()
	oidJob    = fulcio.OID(21).String()
	oidBuild  = fulcio.OID(9).String()
)

var searchBase = time.Unix(1700000000, 0).UTC()

// ciSig is a keyless-looking signature number i in repo: its certificate
// says commit and job, its annotations say what ann adds.
func ciSig(i int, repo, cert string, ann map[string]string) meta.Signature {
	a := map[string]string{"tag": fmt.Sprint("v", i)}
	for k, v := range ann {
		a[k] = v
	}
	return meta.Signature{
		Repository: repo, Subject: digest.FromString(fmt.Sprint("img", i)), Manifest: digest.FromString(fmt.Sprint("m", i)),
		Layer: digest.FromString(fmt.Sprint("l", i)), Key: fmt.Sprint("key", i), Kind: "cosign", Status: meta.StatusVerified,
		Signer: "https://gitlab.example/" + repo + "//.gitlab-ci.yml@refs/heads/main", CertIssuer: "https://gitlab.example",
		CertExtensions: map[string]string{oidCommit: fmt.Sprintf("%040x", i), oidRef: "refs/heads/main",
			oidJob: fmt.Sprintf("https://gitlab.example/%s/-/jobs/%d", repo, 1000+i)},
		Annotations: a, CertSHA256: cert, Created: searchBase.Add(time.Duration(i) * time.Second),
	}
}

// issued is a CA record for certificate cert with the given claims.
func issued(cert string, claims map[string]string) meta.IssuedCertificate {
	raw := `{"iss":"https://gitlab.example","user_email":"secret@example.com"`
	for _, k := range slices.Sorted(mapsKeys(claims)) {
		raw += fmt.Sprintf(",%q:%q", k, claims[k])
	}
	return meta.IssuedCertificate{SHA256: cert, Serial: "0a" + cert[:6], IssuedAt: searchBase, NotAfter: searchBase.Add(10 * time.Minute),
		Issuer: "https://gitlab.example", Subject: "https://gitlab.example/x", ProjectPath: claims["project_path"], Claims: []byte(raw + "}"),
		Searchable: claims}
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func sha(n int) string { return fmt.Sprintf("%064x", n) }

func searchAll(t *testing.T, s *sqlstore.Store, q meta.SignatureSearch) []meta.Signature {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 100
	}
	if !q.Access.All && !q.Access.Public && q.Access.Projects == nil && q.Access.Repositories == nil {
		q.Access.All = true
	}
	res, err := s.SearchSignatures(ctx, q)
	if err != nil {
		t.Fatalf("SearchSignatures(%+v): %v", q, err)
	}
	return res
}

func keys(res []meta.Signature) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Key)
	}
	return out
}

// testSearchClaims: the CA's claims are facts with basis ca-claims; a
// pushed annotation never overrides them, and counts only where no
// evidence speaks; the certificate record comes back with the signature,
// with only the shown claims.
func testSearchClaims(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	if err := s.RecordCertificates(ctx); err != nil {
		t.Fatal(err)
	}
	c1 := issued(sha(1), map[string]string{"user_login": "yves", "runner_id": "17", "pipeline_id": "555", "job_id": "1001",
		"project_path": "grp/app", "sha": fmt.Sprintf("%040x", 1), "ref": "main", "ref_type": "branch"})
	if err := s.RecordCertificates(ctx, c1); err != nil {
		t.Fatal(err)
	}
	// Recording it again changes nothing.
	again := c1
	again.Searchable = map[string]string{"user_login": "mallory"}
	if err := s.RecordCertificates(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCertificates(ctx, meta.IssuedCertificate{Serial: "1"}); err == nil {
		t.Error("a certificate record without hash and claims was accepted")
	}
	lies := map[string]string{"com.gitlab.ci.user.name": "xavier", "com.gitlab.ci.pipeline.id": "999",
		"com.gitlab.ci.commit.sha": strings.Repeat("ee", 20), "com.gitlab.ci.project.path": "other/proj"}
	signed := ciSig(1, "grp/app", sha(1), lies)   // certificate issued here: claims
	noClaims := ciSig(2, "grp/app", sha(2), lies) // certificate from elsewhere: no claims
	keyOnly := ciSig(3, "grp/app", "", lies)      // key-signed: annotations only
	keyOnly.CertExtensions, keyOnly.CertIssuer, keyOnly.Signer = nil, "", "SHA256:abc"
	if n, err := s.RecordSignatures(ctx, []meta.Signature{signed, noClaims, keyOnly}); err != nil || n != 3 {
		t.Fatalf("RecordSignatures = %d, %v", n, err)
	}
	find := func(field, value string) []string {
		return keys(searchAll(t, s, meta.SignatureSearch{Facts: []meta.FactFilter{{Field: field, Value: value}}}))
	}
	for _, tc := range []struct {
		field, value string
		want         []string
	}{
		{meta.FieldUser, "yves", []string{"key1"}},
		{meta.FieldUser, "xavier", []string{"key3", "key2"}}, // the annotation, where no claims speak
		{meta.FieldRunner, "17", []string{"key1"}},
		{meta.FieldPipeline, "555", []string{"key1"}},
		{meta.FieldPipeline, "999", []string{"key3", "key2"}},
		{meta.FieldJob, "1001", []string{"key1"}}, // claim and certificate agree
		{meta.FieldJob, "1002", []string{"key2"}}, // the certificate's job URL, as its id
		{meta.FieldCommit, strings.Repeat("ee", 20), []string{"key3"}},
		{meta.FieldCommit, fmt.Sprintf("%040x", 2), []string{"key2"}},
		{meta.FieldRef, "main", []string{"key2", "key1"}},
		{meta.FieldRef, "refs/heads/main", []string{"key2", "key1"}},
		{meta.FieldProject, "grp/app", []string{"key3", "key2", "key1"}},
		{meta.FieldProject, "grp", []string{"key3", "key2", "key1"}},
		{meta.FieldProject, "other/proj", nil}, // the repository is evidence: the annotation never counts
		{meta.FieldIdentity, "SHA256:abc", []string{"key3"}},
		{meta.FieldIssuer, "https://gitlab.example", []string{"key2", "key1"}},
	} {
		if got := find(tc.field, tc.value); !slices.Equal(got, tc.want) {
			t.Errorf("%s=%s found %v, want %v", tc.field, tc.value, got, tc.want)
		}
	}
	res := searchAll(t, s, meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldUser, Value: "yves"}}})
	if len(res) != 1 {
		t.Fatalf("user search: %v", keys(res))
	}
	c := res[0].Certificate
	if c == nil || c.SHA256 != sha(1) || c.Claims["user_login"] != "yves" || c.Claims["runner_id"] != "17" || c.Claims["iss"] != "https://gitlab.example" ||
		c.ProjectPath != "grp/app" || !c.IssuedAt.Equal(searchBase) {
		t.Errorf("certificate record %+v", c)
	}
	if _, ok := c.Claims["user_email"]; ok {
		t.Error("the certificate record shows the token's user_email")
	}
	basis := map[string]string{}
	for _, f := range res[0].Facts {
		basis[f.Field+"="+f.Value] = f.Basis
	}
	if basis["user=yves"] != meta.BasisClaims || basis["commit="+fmt.Sprintf("%040x", 1)] != meta.BasisClaims ||
		basis["project=grp"] != meta.BasisRepository || basis["user=xavier"] != "" {
		t.Errorf("facts of the CA-certified signature: %v", basis)
	}
	if list, err := s.ListSignatures(ctx, "grp/app", signed.Subject); err != nil || len(list) != 1 || list[0].Certificate == nil || len(list[0].Facts) == 0 {
		t.Errorf("ListSignatures does not bring the certificate record and facts: %+v, %v", list, err)
	}
	if res := searchAll(t, s, meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldUser, Value: "xavier"}}}); len(res) != 2 || res[0].Certificate != nil {
		t.Errorf("signatures without a CA record: %+v", res)
	}
}

// testSearchConditions: conditions combine; commit prefixes; statuses and
// time ranges; bad limits.
func testSearchConditions(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	var sigs []meta.Signature
	for i := 1; i <= 12; i++ {
		sg := ciSig(i, fmt.Sprint("grp/app", i%3), "", map[string]string{"team": fmt.Sprint("t", i%2)})
		if i%4 == 0 {
			sg.Status = meta.StatusInvalid
		}
		// Commits 0x..1 to 0x..c, and two sharing a 7-digit prefix.
		if i == 11 || i == 12 {
			sg.CertExtensions[oidCommit] = fmt.Sprintf("abcdef%d%033x", i, i)
		}
		sigs = append(sigs, sg)
	}
	if _, err := s.RecordSignatures(ctx, sigs); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    meta.SignatureSearch
		want []string
	}{
		{"commit prefix", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldCommit, Value: "abcdef1", Prefix: true}}}, []string{"key12", "key11"}},
		{"commit prefix and annotation", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldCommit, Value: "abcdef1", Prefix: true}},
			Annotations: []meta.KeyValue{{Key: "team", Value: "t1"}}}, []string{"key11"}},
		{"project and status", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldProject, Value: "grp/app0"}},
			Statuses: []string{meta.StatusInvalid}}, []string{"key12"}},
		{"status alone", meta.SignatureSearch{Statuses: []string{meta.StatusInvalid}}, []string{"key12", "key8", "key4"}},
		{"two statuses", meta.SignatureSearch{Statuses: []string{meta.StatusInvalid, meta.StatusVerified}, Limit: 2}, []string{"key12", "key11"}},
		{"time range", meta.SignatureSearch{Since: searchBase.Add(3 * time.Second), Until: searchBase.Add(6 * time.Second)}, []string{"key5", "key4", "key3"}},
		{"time range and fact", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldRef, Value: "main"}},
			Since: searchBase.Add(10 * time.Second)}, []string{"key12", "key11", "key10"}},
		{"two facts", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldProject, Value: "grp/app1"}, {Field: meta.FieldJob, Value: "1004"}}}, []string{"key4"}},
		{"two facts, no match", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldProject, Value: "grp/app2"}, {Field: meta.FieldJob, Value: "1004"}}}, nil},
		{"two annotations", meta.SignatureSearch{Annotations: []meta.KeyValue{{Key: "team", Value: "t0"}, {Key: "tag", Value: "v6"}}}, []string{"key6"}},
		{"extension", meta.SignatureSearch{CertExtensions: []meta.KeyValue{{Key: oidJob, Value: "https://gitlab.example/grp/app1/-/jobs/1007"}}}, []string{"key7"}},
		{"prefix of a unicode value", meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldUser, Value: "\U0010FFFF", Prefix: true}}}, nil},
	} {
		if got := keys(searchAll(t, s, tc.q)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, n := range []int{0, -1, meta.MaxSearchLimit + 1} {
		if _, err := s.SearchSignatures(ctx, meta.SignatureSearch{Limit: n, Access: meta.Access{All: true}}); err == nil {
			t.Errorf("limit %d accepted", n)
		}
	}
	if res, err := s.SearchSignatures(ctx, meta.SignatureSearch{Limit: 10}); err != nil || len(res) != 0 {
		t.Errorf("no access: %v, %v", keys(res), err)
	}
}

// testSearchPaging: pages follow the cursor with no repeats and no gaps,
// and signatures recorded meanwhile do not move the later pages.
func testSearchPaging(t *testing.T, b Backend) {
	for _, q := range []meta.SignatureSearch{
		{Facts: []meta.FactFilter{{Field: meta.FieldProject, Value: "grp/app"}}},
		{Annotations: []meta.KeyValue{{Key: "team", Value: "x"}}},
		{},
		{Facts: []meta.FactFilter{{Field: meta.FieldCommit, Value: "000000", Prefix: true}}},
	} {
		s, _ := newStore(t, b)
		var sigs []meta.Signature
		for i := 1; i <= 25; i++ {
			sg := ciSig(i, "grp/app", "", map[string]string{"team": "x"})
			if i%5 == 0 { // equal times: the id decides
				sg.Created = searchBase.Add(time.Duration(i-1) * time.Second)
			}
			sigs = append(sigs, sg)
		}
		if _, err := s.RecordSignatures(ctx, sigs); err != nil {
			t.Fatal(err)
		}
		q.Limit, q.Access = 4, meta.Access{All: true}
		var got []string
		for page := 0; ; page++ {
			res, err := s.SearchSignatures(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, keys(res)...)
			if page == 1 { // newer signatures arrive while paging
				sg := ciSig(100+page, "grp/app", "", map[string]string{"team": "x"})
				sg.Created = time.Now()
				sg.CertExtensions[oidCommit] = strings.Repeat("0", 40)
				if _, err := s.RecordSignatures(ctx, []meta.Signature{sg}); err != nil {
					t.Fatal(err)
				}
			}
			if len(res) < q.Limit {
				break
			}
			c := meta.CursorOf(&res[len(res)-1])
			q.After = &c
		}
		var want []string
		for i := 25; i >= 1; i-- {
			want = append(want, fmt.Sprint("key", i))
		}
		// Equal times (5 and 4, 10 and 9, ...: the tie of 10 and 9 spans
		// two pages): the larger id, recorded later, first.
		if !slices.Equal(got, want) {
			t.Errorf("%+v paged: %v, want %v", q, got, want)
		}
	}
}

// testSearchAccess: access is part of the query. A repository belongs to
// the project with the longest path covering it, also when the project
// comes after the repository, and to the next one when it goes.
func testSearchAccess(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	// Repositories first, projects after some of them.
	var sigs []meta.Signature
	repos := []string{"pub/app", "pub/secret/app", "priv/app", "loose/app", "pub/secretive"}
	for i, r := range repos {
		sigs = append(sigs, ciSig(i, r, "", map[string]string{"team": "x"}))
	}
	if _, err := s.RecordSignatures(ctx, sigs[:3]); err != nil {
		t.Fatal(err)
	}
	for _, p := range []auth.Project{{Path: "pub", Visibility: auth.VisibilityPublic}, {Path: "pub/secret", Visibility: auth.VisibilityPrivate},
		{Path: "priv", Visibility: auth.VisibilityPrivate}} {
		if _, err := s.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RecordSignatures(ctx, sigs[3:]); err != nil {
		t.Fatal(err)
	}
	repoSet := func(a meta.Access) []string {
		t.Helper()
		res, err := s.SearchSignatures(ctx, meta.SignatureSearch{Annotations: []meta.KeyValue{{Key: "team", Value: "x"}}, Access: a, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range res {
			out = append(out, r.Repository)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name string
		a    meta.Access
		want []string
	}{
		{"anonymous", meta.Access{Public: true}, []string{"pub/app", "pub/secretive"}},
		{"member of pub/secret", meta.Access{Public: true, Projects: []string{"pub/secret"}}, []string{"pub/app", "pub/secret/app", "pub/secretive"}},
		{"member of priv only", meta.Access{Projects: []string{"priv"}}, []string{"priv/app"}},
		{"one repository", meta.Access{Repositories: []string{"loose/app"}}, []string{"loose/app"}},
		{"admin", meta.Access{All: true}, []string{"loose/app", "priv/app", "pub/app", "pub/secret/app", "pub/secretive"}},
		{"unknown project", meta.Access{Projects: []string{"nope"}}, nil},
	} {
		if got := repoSet(tc.a); !slices.Equal(got, tc.want) {
			t.Errorf("%s sees %v, want %v", tc.name, got, tc.want)
		}
	}
	// pub/secret goes: its repository falls to pub (public).
	if err := s.DeleteProject(ctx, "pub/secret"); err != nil {
		t.Fatal(err)
	}
	if got := repoSet(meta.Access{Public: true}); !slices.Equal(got, []string{"pub/app", "pub/secret/app", "pub/secretive"}) {
		t.Errorf("after deleting pub/secret, anonymous sees %v", got)
	}
	// pub goes: nothing is public any more, its repositories are admins' only.
	if err := s.DeleteProject(ctx, "pub"); err != nil {
		t.Fatal(err)
	}
	if got := repoSet(meta.Access{Public: true}); len(got) != 0 {
		t.Errorf("after deleting pub, anonymous sees %v", got)
	}
	if err := s.DeleteProject(ctx, "pub"); err == nil {
		t.Error("deleting a deleted project succeeded")
	}
	// A new project takes over what no longer project covers, not what a
	// longer one holds.
	if _, err := s.CreateProject(ctx, auth.Project{Path: "priv/app", Visibility: auth.VisibilityPublic}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateProject(ctx, auth.Project{Path: "priv", Visibility: auth.VisibilityPublic}); err == nil {
		t.Error("a second project priv was created")
	}
	if got := repoSet(meta.Access{Public: true}); !slices.Equal(got, []string{"priv/app"}) {
		t.Errorf("after creating public priv/app, anonymous sees %v", got)
	}
	if got := repoSet(meta.Access{Projects: []string{"priv"}}); len(got) != 0 {
		t.Errorf("priv's members still see %v", got)
	}
}

// testConcurrentProjects: repositories created while projects covering
// them are created get those projects, whichever commits first.
func testConcurrentProjects(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			if _, err := s.RecordSignatures(ctx, []meta.Signature{ciSig(i, fmt.Sprintf("race%d/app", i), "", map[string]string{"team": "x"})}); err != nil {
				errs <- err
			}
		})
		wg.Go(func() {
			if _, err := s.CreateProject(ctx, auth.Project{Path: fmt.Sprintf("race%d", i), Visibility: auth.VisibilityPrivate}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range n {
		res, err := s.SearchSignatures(ctx, meta.SignatureSearch{Access: meta.Access{Projects: []string{fmt.Sprintf("race%d", i)}}, Limit: 10})
		if err != nil || len(res) != 1 {
			t.Errorf("project race%d's members see %d signatures (%v), want its 1", i, len(res), err)
		}
	}
}

// testFactsBackfill: signatures recorded before the facts existed (the
// schema before the incident search migration) are searchable after it.
func testFactsBackfill(t *testing.T, b Backend) {
	db := b.NewDB(t)
	raw, d := db.Raw(t), db.Dialect()
	var v6 int
	for i, m := range sqlstore.Migrations() {
		if strings.HasPrefix(m.Name, "incident search") {
			v6 = i
			break
		}
		q, err := d.Expand(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("migration %d: %v", m.Version, err)
		}
	}
	if v6 == 0 {
		t.Fatal("no incident search migration")
	}
	q := func(s string) string {
		if d.Numbered {
			for i := 1; strings.Contains(s, "?"); i++ {
				s = strings.Replace(s, "?", fmt.Sprintf("$%d", i), 1)
			}
		}
		return s
	}
	stmts := []struct {
		sql  string
		args []any
	}{
		{`CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`, nil},
		{`INSERT INTO repositories(id, name, created_at) VALUES (1, 'old/app', 1)`, nil},
		{`INSERT INTO projects(id, path, visibility, created_at) VALUES (1, 'old', 'public', 1)`, nil},
		{`INSERT INTO signatures(id, repository_id, subject_digest, manifest_digest, layer_digest, sig_key, kind, signer, cert_issuer, status, created_at)
			VALUES (1, 1, 'sha256:s', 'sha256:m', 'sha256:l', 'k', 'cosign', 'https://ci/x', 'https://ci', 'verified', 5)`, nil},
		{`INSERT INTO signature_annotations(signature_id, key, value) VALUES (1, 'com.gitlab.ci.pipeline.url', 'https://ci/old/app/-/pipelines/77')`, nil},
		{`INSERT INTO signature_cert_extensions(signature_id, oid, value) VALUES (1, ?, ?)`, []any{oidCommit, strings.Repeat("AB", 20)}},
	}
	for i := range v6 {
		stmts = append(stmts, struct {
			sql  string
			args []any
		}{`INSERT INTO schema_migrations(version, applied_at) VALUES (?, 1)`, []any{i + 1}})
	}
	for _, st := range stmts {
		if _, err := raw.Exec(q(st.sql), st.args...); err != nil {
			t.Fatalf("%s: %v", st.sql, err)
		}
	}
	s := open(t, db)
	for _, f := range []meta.FactFilter{{Field: meta.FieldPipeline, Value: "77"}, {Field: meta.FieldCommit, Value: strings.Repeat("ab", 20)},
		{Field: meta.FieldIdentity, Value: "https://ci/x"}} {
		res, err := s.SearchSignatures(ctx, meta.SignatureSearch{Facts: []meta.FactFilter{f}, Access: meta.Access{Public: true}, Limit: 5})
		if err != nil || len(res) != 1 || res[0].Key != "k" || res[0].Annotations["com.gitlab.ci.pipeline.url"] == "" {
			t.Errorf("after the migration, %+v finds %+v (%v)", f, res, err)
		}
	}
	checkVersions(t, db)
}
