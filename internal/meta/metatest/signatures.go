package metatest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/meta"
)

func testSignatures(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	subject := digest.FromString("image")
	base := time.Unix(1700000000, 0).UTC()
	idx := int64(7)
	sig := func(i int, repo, key string) meta.Signature {
		return meta.Signature{
			Repository: repo, Subject: subject, Manifest: digest.FromString(fmt.Sprint("sigman", i)), Layer: digest.FromString(fmt.Sprint("layer", i)),
			Key: key, Kind: "cosign", PayloadType: "application/vnd.dev.cosign.simplesigning.v1+json",
			Signer: fmt.Sprintf("signer-%d", i%2), CertIssuer: "https://issuer.example", Status: meta.StatusVerified,
			Annotations:    map[string]string{"git_sha": fmt.Sprint("sha", i), "team": "x"},
			CertExtensions: map[string]string{oidBuild: fmt.Sprint("https://ci/", i)},
			Created:        base.Add(time.Duration(i) * time.Second),
		}
	}
	s1, s2, s3 := sig(1, "app", "k1"), sig(2, "app", "k2"), sig(3, "other", "k1")
	s1.LogIndex = &idx
	s2.Status, s2.StatusDetail = meta.StatusInvalid, "signature does not verify"
	n, err := s.RecordSignatures(ctx, []meta.Signature{s1, s2, s3})
	if err != nil || n != 3 {
		t.Fatalf("RecordSignatures = %d, %v", n, err)
	}
	// Same repository and key: ignored, also within one call.
	dup := sig(9, "app", "k1")
	if n, err := s.RecordSignatures(ctx, []meta.Signature{dup, sig(4, "app", "k4"), sig(4, "app", "k4")}); err != nil || n != 1 {
		t.Fatalf("RecordSignatures with duplicates = %d, %v", n, err)
	}
	if n, err := s.RecordSignatures(ctx, nil); err != nil || n != 0 {
		t.Fatalf("RecordSignatures(nil) = %d, %v", n, err)
	}

	list, err := s.ListSignatures(ctx, "app", subject)
	if err != nil || len(list) != 3 {
		t.Fatalf("ListSignatures = %d, %v", len(list), err)
	}
	got := list[0]
	if got.Key != "k1" || got.Manifest != s1.Manifest || got.Layer != s1.Layer || got.Subject != subject || got.Repository != "app" ||
		got.LogIndex == nil || *got.LogIndex != 7 || got.Signer != "signer-1" || got.CertIssuer != s1.CertIssuer || got.Kind != "cosign" ||
		got.PayloadType != s1.PayloadType || got.Status != meta.StatusVerified || !got.Created.Equal(s1.Created) || got.ID == 0 {
		t.Errorf("first signature %+v", got)
	}
	if got.Annotations["git_sha"] != "sha1" || len(got.Annotations) != 2 || got.CertExtensions[oidBuild] != "https://ci/1" {
		t.Errorf("first signature's annotations %v, extensions %v", got.Annotations, got.CertExtensions)
	}
	if list[1].LogIndex != nil || list[1].Status != meta.StatusInvalid || list[1].StatusDetail != "signature does not verify" || list[1].Annotations["git_sha"] != "sha2" {
		t.Errorf("second signature %+v", list[1])
	}
	if list, err := s.ListSignatures(ctx, "app", digest.FromString("other")); err != nil || len(list) != 0 {
		t.Errorf("ListSignatures of an unsigned image = %v, %v", list, err)
	}
	if list, err := s.ListSignatures(ctx, "nope", subject); err != nil || len(list) != 0 {
		t.Errorf("ListSignatures in an unknown repository = %v, %v", list, err)
	}

	// Searches: newest first, limited, across repositories.
	search := func(q meta.SignatureSearch) []meta.Signature {
		t.Helper()
		q.Access = meta.Access{All: true}
		if q.Limit == 0 {
			q.Limit = 10
		}
		res, err := s.SearchSignatures(ctx, q)
		if err != nil {
			t.Fatalf("SearchSignatures(%+v): %v", q, err)
		}
		return res
	}
	team := []meta.KeyValue{{Key: "team", Value: "x"}}
	if res := search(meta.SignatureSearch{Annotations: team}); len(res) != 4 || res[0].Key != "k4" || res[len(res)-1].Key != "k1" {
		t.Fatalf("annotation search = %d results", len(res))
	}
	if res := search(meta.SignatureSearch{Annotations: team, Limit: 2}); len(res) != 2 {
		t.Errorf("annotation search limit 2: %d", len(res))
	}
	if res := search(meta.SignatureSearch{Annotations: []meta.KeyValue{{Key: "git_sha", Value: "sha3"}}}); len(res) != 1 || res[0].Repository != "other" {
		t.Errorf("annotation search git_sha=sha3: %+v", res)
	}
	if res := search(meta.SignatureSearch{Annotations: []meta.KeyValue{{Key: oidBuild, Value: "https://ci/1"}}}); len(res) != 0 {
		t.Errorf("a certificate extension was found as an annotation: %+v", res)
	}
	if res := search(meta.SignatureSearch{CertExtensions: []meta.KeyValue{{Key: oidBuild, Value: "https://ci/2"}}}); len(res) != 1 || res[0].Key != "k2" {
		t.Errorf("certificate extension search = %+v", res)
	}
	if res := search(meta.SignatureSearch{Facts: []meta.FactFilter{{Field: meta.FieldIdentity, Value: "signer-1"}}}); len(res) != 2 || res[0].Key != "k1" || res[0].Repository != "other" {
		t.Errorf("identity search = %+v", res)
	}
	// By repository: the same key in another repository is another
	// signature; an unknown repository has none.
	known, err := s.SignatureGenerations(ctx, map[string][]string{"app": {"k1", "k2", "k3", "nope", "k1"}, "other": {"k2", "k1"}, "nope": {"k1"}})
	if err != nil || len(known) != 2 || len(known["app"]) != 2 || !hasKey(known["app"], "k1") || known["app"]["k2"] != 0 ||
		len(known["other"]) != 1 || !hasKey(known["other"], "k1") {
		t.Errorf("SignatureGenerations = %v, %v", known, err)
	}
	many, others := make([]string, 1200), make([]string, 700) // more than one statement, repositories across them
	for i := range many {
		many[i] = fmt.Sprint("key", i)
	}
	for i := range others {
		others[i] = fmt.Sprint("key", i)
	}
	many[1100], others[650] = "k4", "k1"
	if known, err := s.SignatureGenerations(ctx, map[string][]string{"app": many, "other": others}); err != nil ||
		len(known["app"]) != 1 || !hasKey(known["app"], "k4") || len(known["other"]) != 1 || !hasKey(known["other"], "k1") {
		t.Errorf("SignatureGenerations of 1900 keys = %v, %v", known, err)
	}
	if known, err := s.SignatureGenerations(ctx, nil); err != nil || len(known) != 0 {
		t.Errorf("SignatureGenerations of no keys = %v, %v", known, err)
	}

	// A repository's signatures go with it; TagsOf lists the tags of a manifest.
	m := manifest(t, s, "app", "tagged", true, "")
	if err := s.PutManifest(ctx, m, []string{"b", "a"}); err != nil {
		t.Fatal(err)
	}
	if tags, err := s.TagsOf(ctx, "app", m.Digest); err != nil || len(tags) != 2 || tags[0] != "a" {
		t.Errorf("TagsOf = %v, %v", tags, err)
	}
	if tags, err := s.TagsOf(ctx, "app", digest.FromString("none")); err != nil || len(tags) != 0 {
		t.Errorf("TagsOf an unknown manifest = %v, %v", tags, err)
	}
}

// testConcurrentSignatureBatches records batches spanning two repositories
// in opposite orders from two writers: on PostgreSQL both lock the
// repositories' rows, which the store does in name order (a deadlock
// would be run again), so every call succeeds and nothing is lost.
func testConcurrentSignatureBatches(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	const rounds = 30
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repos := []string{"r1", "r2"}
			if w == 1 {
				repos = []string{"r2", "r1"}
			}
			for i := 0; i < rounds; i++ {
				var batch []meta.Signature
				for _, repo := range repos {
					batch = append(batch, meta.Signature{Repository: repo, Subject: digest.FromString("img"), Manifest: digest.FromString("m"),
						Layer: digest.FromString("l"), Key: fmt.Sprintf("w%d-%d", w, i), Kind: "cosign", Status: meta.StatusVerified,
						Annotations: map[string]string{"i": fmt.Sprint(i)}})
				}
				if n, err := s.RecordSignatures(ctx, batch); err != nil || n != 2 {
					errs <- fmt.Errorf("writer %d round %d: %d new, %v", w, i, n, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, repo := range []string{"r1", "r2"} {
		if list, err := s.ListSignatures(ctx, repo, digest.FromString("img")); err != nil || len(list) != 2*rounds {
			t.Errorf("%s holds %d signatures, want %d (%v)", repo, len(list), 2*rounds, err)
		}
	}
}
