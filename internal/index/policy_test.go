package index_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/index"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/pkg/oci"
	"github.com/hallmark-dev/hallmark/pkg/sign"
)

func testdataFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "pkg", "verify", "testdata", "keyless", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePolicy(t *testing.T) {
	trustedRoot := string(testdataFile(t, "trusted_root.json"))
	e := newEnv(t, false)
	pemKey, _ := sign.PublicKeyPEM(&e.key.PublicKey)
	valid := []string{
		`{}`,
		`{"roots":["hallmark","public-good"]}`,
		`{"identities":[{"identity":"https://gitlab.example.com/g/a//.gitlab-ci.yml@refs/heads/main","issuer":"https://gitlab.example.com"}]}`,
		`{"identities":[{"identityRegexp":"^https://x/.*$","issuerRegexp":"^https://(a|b)\\.example$"}]}`,
		`{"identities":[{"identityRegexp":".*"}]}`, // the project's issuer
		`{"annotations":{"tag":"v1","reviewed":"true"}}`,
		`{"keys":[` + jsonString(string(pemKey)) + `]}`,
		`{"trustedRoots":[` + trustedRoot + `]}`,
	}
	for _, doc := range valid {
		p, err := index.ParsePolicy([]byte(doc))
		if err != nil {
			t.Errorf("%.80s: %v", doc, err)
			continue
		}
		raw, _ := json.Marshal(p)
		if _, err := index.ParsePolicy(raw); err != nil {
			t.Errorf("%.80s does not survive a round trip: %v", doc, err)
		}
	}
	for _, c := range []struct{ doc, want string }{
		{`{{`, "invalid"},
		{``, "EOF"},
		{`{} {}`, "data after the JSON object"},
		{`{"identity":"x"}`, "unknown field"},
		{`{"roots":["Public Good"]}`, `root "Public Good"`},
		{`{"roots":[""]}`, `root ""`},
		{`{"identities":[{"issuer":"https://x"}]}`, `exactly one of "identity" and "identityRegexp"`},
		{`{"identities":[{"identity":"a","identityRegexp":"b"}]}`, `exactly one of`},
		{`{"identities":[{"identity":"a","issuer":"https://x","issuerRegexp":"y"}]}`, `at most one of "issuer" and "issuerRegexp"`},
		{`{"identities":[{"identity":"a","issuer":"gitlab.example.com"}]}`, "not an http(s) URL"},
		{`{"identities":[{"identity":"a","issuer":"ftp://x"}]}`, "not an http(s) URL"},
		{`{"identities":[{"identityRegexp":"(a"}]}`, "does not compile"},
		{`{"identities":[{"identity":"a","issuerRegexp":"[z-a]"}]}`, "does not compile"},
		{`{"identities":[{"identity":"` + strings.Repeat("a", 1025) + `"}]}`, "longer than 1024"},
		{`{"keys":["not a key"]}`, "key #1"},
		{`{"trustedRoots":[{"mediaType":"x"}]}`, "trusted root #1"},
		{`{"trustedRoots":["text"]}`, "trusted root #1"},
		{`{"annotations":{"":"x"}}`, "required annotation"},
		{`{"annotations":{"k":"` + strings.Repeat("v", 4097) + `"}}`, "required annotation"},
		{`{"identities":[` + strings.TrimSuffix(strings.Repeat(`{"identity":"x"},`, 65), ",") + `]}`, "65 identities"},
		{`{"roots":[` + strings.TrimSuffix(strings.Repeat(`"r",`, 17), ",") + `]}`, "17 trust roots"},
		{`{"roots":["a"]` + strings.Repeat(" ", index.MaxPolicySize) + `}`, "the limit is"},
	} {
		_, err := index.ParsePolicy([]byte(c.doc))
		if !errors.Is(err, index.ErrInvalidPolicy) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.60s: %v; want an invalid policy error with %q", c.doc, err, c.want)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzParsePolicy: any document either is refused with ErrInvalidPolicy
// or parses into a policy that validates and survives a round trip.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"roots":["hallmark"],"identities":[{"identityRegexp":"^x$","issuer":"https://i"}],"annotations":{"a":"b"}}`))
	f.Add([]byte(`{"keys":["-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"]}`))
	f.Add([]byte(`{"trustedRoots":[{}]}`))
	f.Add([]byte(`{"identities":[{"identity":"\u0000","issuerRegexp":"(?i)"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := index.ParsePolicy(doc)
		if err != nil {
			if !errors.Is(err, index.ErrInvalidPolicy) {
				t.Fatalf("error not marked invalid: %v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed but does not validate: %v", err)
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := index.ParsePolicy(raw); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// TestDefaultPolicy: without a policy, a project's signers are its own
// pipelines from its issuer, on any ref; a repository outside every
// project takes the pipelines of its path and its parents.
func TestDefaultPolicy(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	if _, err := e.store.CreateProject(ctx, auth.Project{Path: "grp/app", Visibility: auth.VisibilityPrivate}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateProject(ctx, auth.Project{Path: "ext/app", Visibility: auth.VisibilityPrivate, OIDCIssuer: "https://gitlab.example.com"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		project      string
		match, other []string
	}{
		{"grp/app", []string{realServer + "/grp/app//.gitlab-ci.yml@refs/heads/main", realServer + "/grp/app//.gitlab-ci.yml@refs/tags/v1.2"},
			[]string{realServer + "/grp/app/sub//.gitlab-ci.yml@refs/heads/main", realServer + "/grp/application//.gitlab-ci.yml@refs/heads/main",
				realServer + "/grp/app//.gitlab-ci.yml@refs/", "https://evil.example/grp/app//.gitlab-ci.yml@refs/heads/main",
				realServer + "/grp/app//other.yml@refs/heads/main", "x" + realServer + "/grp/app//.gitlab-ci.yml@refs/heads/main"}},
		{"ext/app", []string{"https://gitlab.example.com/ext/app//.gitlab-ci.yml@refs/heads/main"},
			[]string{realServer + "/ext/app//.gitlab-ci.yml@refs/heads/main"}},
	} {
		v, err := e.ix.Policy(ctx, c.project)
		if err != nil {
			t.Fatal(err)
		}
		if v.Version != 0 || len(v.Effective.Identities) != 1 || len(v.Effective.Roots) != 1 || v.Effective.Roots[0] != index.RootHallmark {
			t.Fatalf("default policy of %s: %+v", c.project, v)
		}
		id := v.Effective.Identities[0]
		re := regexp.MustCompile(id.IdentityRegexp)
		for _, s := range c.match {
			if !re.MatchString(s) {
				t.Errorf("%s: %s does not allow its own pipeline %s", c.project, id.IdentityRegexp, s)
			}
		}
		for _, s := range c.other {
			if re.MatchString(s) {
				t.Errorf("%s: %s allows %s", c.project, id.IdentityRegexp, s)
			}
		}
		if want := map[string]string{"grp/app": realServer, "ext/app": "https://gitlab.example.com"}[c.project]; id.Issuer != want {
			t.Errorf("%s: default issuer %q, want %q", c.project, id.Issuer, want)
		}
	}
	if _, err := e.ix.Policy(ctx, "nope"); !errors.Is(err, meta.ErrProjectNotFound) {
		t.Errorf("policy of a missing project: %v", err)
	}
}

// TestPolicyStatuses: the real keyless signature of pipeline grp/app
// under each rule: the default policy, another repository's, a project
// pinned to another issuer, an identity rule, a required annotation; and
// a policy change decides it again.
func TestPolicyStatuses(t *testing.T) {
	r := loadRealKeyless(t)
	e := newEnv(t, false, r.trust)
	ctx := context.Background()
	index1 := func(repo string) meta.Signature {
		t.Helper()
		l := r.layer
		s := meta.Signature{Repository: repo, Subject: r.subject}
		e.ix.SimpleSigningLayer(&s, l, r.payload)
		return s
	}
	check := func(what string, s meta.Signature, status, detail string) {
		t.Helper()
		if s.Status != status || !strings.Contains(s.StatusDetail, detail) {
			t.Errorf("%s: %s (%s); want %s with %q", what, s.Status, s.StatusDetail, status, detail)
		}
	}
	check("repository outside projects, its own pipeline", index1("grp/app"), meta.StatusVerified, "the default policy (no project governs grp/app)")
	check("another repository", index1("other/app"), meta.StatusUntrusted, "the identity rule (allowed: ~^"+regexp.QuoteMeta(realServer+"/"))
	if _, err := e.store.CreateProject(ctx, auth.Project{Path: "grp/app", Visibility: auth.VisibilityPrivate}); err != nil {
		t.Fatal(err)
	}
	check("the project's own pipeline", index1("grp/app/images"), meta.StatusVerified, "the default policy of project grp/app")
	if err := e.store.SetProjectIssuer(ctx, "grp/app", "https://gitlab.example.com"); err != nil {
		t.Fatal(err)
	}
	check("pinned to another issuer", index1("grp/app"), meta.StatusUntrusted, "from https://gitlab.example.com")
	if err := e.store.SetProjectIssuer(ctx, "grp/app", ""); err != nil {
		t.Fatal(err)
	}
	set := func(p index.Policy) {
		t.Helper()
		if _, err := e.ix.SetPolicy(ctx, "grp/app", &p, "test"); err != nil {
			t.Fatal(err)
		}
	}
	set(index.Policy{Annotations: map[string]string{"tag": "v1"}})
	check("required annotation", index1("grp/app"), meta.StatusUntrusted, `the required annotations rule failed: annotation "tag"`)
	set(index.Policy{Identities: []index.Identity{{IdentityRegexp: "@refs/tags/"}}})
	check("tags only", index1("grp/app"), meta.StatusUntrusted, "the policy of project grp/app (version 2)")
	set(index.Policy{Identities: []index.Identity{{IdentityRegexp: "@refs/heads/main$"}}, Annotations: map[string]string{"tag": "v2"}})
	check("main and tag v2", index1("grp/app"), meta.StatusVerified, "allowed by the policy of project grp/app (version 3)")
	if _, err := e.ix.SetPolicy(ctx, "grp/app", &index.Policy{Roots: []string{"public-good"}}, "test"); !errors.Is(err, index.ErrInvalidPolicy) {
		t.Errorf("a root the server does not have: %v", err)
	}
	if _, err := e.ix.SetPolicy(ctx, "nope", &index.Policy{}, "test"); !errors.Is(err, meta.ErrProjectNotFound) {
		t.Errorf("policy of a missing project: %v", err)
	}
	// A trusted key is allowed whatever the identities (it has none).
	k := newEnv(t, true, r.trust)
	if _, err := k.store.CreateProject(ctx, auth.Project{Path: "group", Visibility: auth.VisibilityPrivate}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ix.SetPolicy(ctx, "group", &index.Policy{Identities: []index.Identity{{Identity: "nobody"}}}, "test"); err != nil {
		t.Fatal(err)
	}
	subject := digest.FromString("keyed image")
	k.push(subject, k.signedLayer(subject, map[string]string{"tag": "x"}))
	sigs, err := k.store.ListSignatures(ctx, "group/app", subject)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("%+v, %v", sigs, err)
	}
	check("a trusted key", sigs[0], meta.StatusVerified, "verified with trusted key SHA256:")
}

// TestAmplificationIsBounded (issue 9, defect 2, in process): many layers
// over one large blob read it once; at most MaxLayers are indexed; values
// over the limits are not stored; a manifest reads at most
// MaxReadPerManifest bytes.
func TestAmplificationIsBounded(t *testing.T) {
	e := newEnv(t, true)
	blobs := &openCounter{Store: e.blobs}
	e.ix = index.New(e.store, blobs, nil, index.Config{Issuer: realServer, Keys: e.trustedKeys(t)})
	subject := digest.FromString("image")
	big := e.signedLayer(subject, map[string]string{"pad": strings.Repeat("A", 1<<20), "tag": "v1",
		strings.Repeat("k", index.MaxAnnotationKey+1): "x"})
	var layers []layer
	for i := range index.MaxLayers + 50 {
		l := big
		l.ann = map[string]string{sign.AnnotationSignature: fmt.Sprintf("%sA%03d", big.ann[sign.AnnotationSignature][:20], i)}
		layers = append(layers, l)
	}
	layers[7] = big // one good signature among them
	e.push(subject, layers...)
	if len(blobs.opened) != 2 { // the config blob is never read; the payload once
		var payloads int
		for _, d := range blobs.opened {
			if d == digest.FromBytes(big.payload) {
				payloads++
			}
		}
		if payloads != 1 {
			t.Errorf("the payload blob was read %d times for %d layers", payloads, len(layers))
		}
	}
	sigs, err := e.store.ListSignatures(context.Background(), "group/app", subject)
	if err != nil || len(sigs) != index.MaxLayers+1 {
		t.Fatalf("%d records, %v; want %d and an overflow record", len(sigs), err, index.MaxLayers+1)
	}
	verified := 0
	for _, s := range sigs {
		if _, ok := s.Annotations["pad"]; ok {
			t.Fatalf("an annotation over the limit was stored")
		}
		if s.Status == meta.StatusVerified {
			verified++
			if s.Annotations["tag"] != "v1" || !strings.Contains(s.StatusDetail, `not stored (over the index's limits): annotation "kkkk`) ||
				!strings.Contains(s.StatusDetail, `annotation "pad" (1048579 bytes)`) {
				t.Errorf("verified record %+v", s)
			}
		}
	}
	if verified != 1 {
		t.Errorf("%d verified records, want the one good signature", verified)
	}

	// Distinct blobs: the manifest's read budget ends the reading.
	e2 := newEnv(t, true)
	other := digest.FromString("other image")
	var distinct []layer
	for i := range 3 {
		distinct = append(distinct, e2.signedLayer(other, map[string]string{"pad": strings.Repeat(fmt.Sprint(i), 3<<20)}))
	}
	e2.push(other, distinct...)
	sigs, _ = e2.store.ListSignatures(context.Background(), "group/app", other)
	var statuses []string
	for _, s := range sigs {
		statuses = append(statuses, s.Status)
	}
	if len(sigs) != 3 || sigs[2].Status != meta.StatusInvalid || !strings.Contains(sigs[2].StatusDetail, "exceed the 8388608 bytes the index reads per manifest") {
		t.Errorf("3 blobs of 3 MiB: %v, last %q", statuses, sigs[len(sigs)-1].StatusDetail)
	}
}

// TestRebuildDecidesAgainOnce: a rebuild decides every signature again,
// once (a manifest already decided in the generation is skipped), with the
// same result; a deleted signature manifest's signatures become
// unverified.
func TestRebuildDecidesAgainOnce(t *testing.T) {
	e := newEnv(t, true)
	blobs := &openCounter{Store: e.blobs}
	e.ix = index.New(e.store, blobs, nil, index.Config{Issuer: realServer, Keys: e.trustedKeys(t)})
	ctx := context.Background()
	subject := digest.FromString("image")
	first := e.signedLayer(subject, map[string]string{"tag": "v1"})
	second := e.signedLayer(subject, map[string]string{"tag": "v2"})
	m1 := e.push(subject, first)
	e.push(subject, first, second) // cosign appends and pushes the whole manifest
	before, _ := e.store.ListSignatures(ctx, "group/app", subject)
	blobs.opened = nil
	gen, n, err := e.ix.Rebuild(ctx, "group")
	if err != nil || n != 2 {
		t.Fatalf("Rebuild = %d, %d, %v", gen, n, err)
	}
	e.settle(subject)
	after, _ := e.store.ListSignatures(ctx, "group/app", subject)
	if len(blobs.opened) != 2 {
		t.Errorf("the rebuild read %d blobs for 2 signatures in 2 manifests; each once", len(blobs.opened))
	}
	for i := range after {
		if after[i].Status != before[i].Status || after[i].StatusDetail != before[i].StatusDetail || after[i].Generation != gen {
			t.Errorf("signature %d: %s (%s) gen %d after the rebuild; before %s (%s)", i, after[i].Status, after[i].StatusDetail, after[i].Generation, before[i].Status, before[i].StatusDetail)
		}
	}
	// The first manifest is deleted: its signature still comes with the
	// second manifest, which decides it; nothing becomes unverified.
	if err := e.store.DeleteManifest(ctx, "group/app", m1.Digest); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.ix.Rebuild(ctx, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(subject)
	after, _ = e.store.ListSignatures(ctx, "group/app", subject)
	for _, s := range after {
		if s.Status != meta.StatusVerified {
			t.Errorf("after deleting a manifest whose signature another still carries: %s (%s)", s.Status, s.StatusDetail)
		}
	}
	// Deleting the other one leaves both without a manifest to judge them.
	tags, _ := e.store.TagsOf(ctx, "group/app", after[1].Manifest)
	m2, err := e.store.GetManifest(ctx, "group/app", tags[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteManifest(ctx, "group/app", m2.Digest); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.ix.Rebuild(ctx, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(subject)
	after, _ = e.store.ListSignatures(ctx, "group/app", subject)
	for _, s := range after {
		if s.Status != meta.StatusUnverified || !strings.Contains(s.StatusDetail, "signature manifest was deleted") {
			t.Errorf("a signature whose manifest is gone: %s (%s)", s.Status, s.StatusDetail)
		}
	}
}

// TestWorkers: Run's workers index what pushes queue, until stopped.
func TestWorkers(t *testing.T) {
	e := newEnv(t, true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.ix.Run(ctx); close(done) }()
	var subjects []digest.Digest
	for i := range 20 {
		subject := digest.FromString(fmt.Sprint("image ", i))
		subjects = append(subjects, subject)
		raw := e.manifestOf(e.signedLayer(subject, map[string]string{"i": fmt.Sprint(i)}))
		mm := &meta.Manifest{Repository: "group/app", Digest: digest.FromBytes(raw), MediaType: oci.MediaTypeOCIManifest, Payload: raw}
		tags := []string{"sha256-" + subject.Encoded() + ".sig"}
		if err := e.store.PutManifest(ctx, mm, tags); err != nil {
			t.Fatal(err)
		}
		e.ix.ManifestPushed(ctx, mm, tags)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if n, err := e.ix.Pending(ctx, "", ""); err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the workers did not index 20 manifests in a minute")
		}
	}
	cancel()
	<-done
	for _, s := range subjects {
		if sigs, err := e.store.ListSignatures(context.Background(), "group/app", s); err != nil || len(sigs) != 1 || sigs[0].Status != meta.StatusVerified {
			t.Errorf("%s: %+v, %v", s, sigs, err)
		}
	}
	if st := e.ix.Stats(); st.Jobs != 20 || st.Signatures != 20 || st.BlobReads != 20 {
		t.Errorf("stats %+v", st)
	}
}
