package metatest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

func testSessions(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	mustUser(t, s, "alice", false)
	bob := mustUser(t, s, "bob", false)
	pat, err := s.CreatePAT(ctx, auth.PAT{User: "bob", Name: "console", Scopes: []string{"pull"}, Hash: "pathash", Expires: t0.Add(time.Hour), Created: t0})
	if err != nil {
		t.Fatal(err)
	}
	a := auth.Session{IDHash: "hash-a", User: "alice", CSRF: "csrf-a", Created: t0, LastSeen: t0, Expires: t0.Add(12 * time.Hour)}
	p := auth.Session{IDHash: "hash-p", User: "bob", PATID: pat.ID, CSRF: "csrf-p", Created: t0, LastSeen: t0.Add(time.Minute), Expires: t0.Add(time.Hour)}
	for _, ss := range []auth.Session{a, p} {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSession(ctx, auth.Session{IDHash: "x", User: "carol", CSRF: "c", Created: t0, LastSeen: t0, Expires: t0}); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("session of an unknown user: %v", err)
	}
	if err := s.CreateSession(ctx, a); err == nil {
		t.Error("a second session with the same id hash was stored")
	}
	got, err := s.GetSession(ctx, "hash-a")
	if err != nil || got.User != "alice" || got.PATID != 0 || got.CSRF != "csrf-a" || !got.Created.Equal(t0) || !got.LastSeen.Equal(t0) || !got.Expires.Equal(a.Expires) {
		t.Fatalf("GetSession = %+v, %v", got, err)
	}
	if got, err := s.GetSession(ctx, "hash-p"); err != nil || got.PATID != pat.ID || got.User != "bob" {
		t.Fatalf("GetSession(PAT) = %+v, %v", got, err)
	}
	if _, err := s.GetSession(ctx, "nope"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("GetSession(unknown): %v", err)
	}
	// Touch moves last seen forward only.
	if err := s.TouchSession(ctx, "hash-a", t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchSession(ctx, "hash-a", t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetSession(ctx, "hash-a"); !got.LastSeen.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("last seen after touches: %v", got.LastSeen)
	}
	// Expiry: absolute (p at t0+1h) and idle (a last seen t0+10m).
	if n, err := s.DeleteExpiredSessions(ctx, t0.Add(30*time.Minute), t0); err != nil || n != 0 {
		t.Errorf("nothing expired yet: %d, %v", n, err)
	}
	if n, err := s.DeleteExpiredSessions(ctx, t0.Add(time.Hour), t0); err != nil || n != 1 {
		t.Errorf("absolute expiry: %d, %v", n, err)
	}
	if _, err := s.GetSession(ctx, "hash-p"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("expired PAT session still there: %v", err)
	}
	if n, err := s.DeleteExpiredSessions(ctx, t0, t0.Add(11*time.Minute)); err != nil || n != 1 {
		t.Errorf("idle expiry: %d, %v", n, err)
	}
	// Logout, and what goes with a user or a PAT.
	if err := s.CreateSession(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "hash-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSession(ctx, "hash-a"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("second DeleteSession: %v", err)
	}
	if err := s.CreateSession(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "hash-a"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("session of a deleted user: %v", err)
	}
	if err := s.CreateSession(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, bob.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetSession(ctx, "hash-p"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("session of a deleted user's PAT: %v", err)
	}
}

func testConsoleQueries(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	at := time.Unix(1700000000, 0).UTC()
	put := func(repo, seed string, tags ...string) *meta.Manifest {
		t.Helper()
		m := manifest(t, s, repo, seed, true, "")
		m.Created = at
		at = at.Add(time.Second)
		if err := s.PutManifest(ctx, m, tags); err != nil {
			t.Fatal(err)
		}
		return m
	}
	signed := put("grp/app", "a", "v1", "latest")
	unsigned := put("grp/app", "b", "v2")
	invalid := put("grp/app", "c", "v3")
	sigTag := strings.Replace(signed.Digest.String(), ":", "-", 1) + ".sig"
	put("grp/app", "sig", sigTag)
	other := put("grp/other", "d", "x")
	for i := range 4 {
		put("grp/many", fmt.Sprint("m", i), fmt.Sprint("t", i))
	}
	sig := func(repo string, subject digest.Digest, key, status string) meta.Signature {
		return meta.Signature{Repository: repo, Subject: subject, Manifest: digest.FromString(key), Layer: digest.FromString("l" + key),
			Key: key, Kind: "cosign", Status: status, Annotations: map[string]string{"k": key}}
	}
	idx := int64(42)
	logged := sig("grp/app", signed.Digest, "s1", meta.StatusVerified)
	logged.LogIndex = &idx
	if _, err := s.RecordSignatures(ctx, []meta.Signature{logged, sig("grp/app", signed.Digest, "s2", meta.StatusInvalid),
		sig("grp/app", signed.Digest, "s3", meta.StatusVerified), sig("grp/app", invalid.Digest, "s4", meta.StatusInvalid),
		sig("grp/other", other.Digest, "s5", "pending")}); err != nil {
		t.Fatal(err)
	}

	// Tags: artifacts hidden unless asked, keyset pages, sizes.
	tags, more, err := s.ListTagInfo(ctx, "grp/app", "", 10, false)
	if err != nil || more || len(tags) != 4 {
		t.Fatalf("ListTagInfo = %+v, %v, %v", tags, more, err)
	}
	if tags[0].Name != "latest" || tags[0].Digest != signed.Digest || tags[0].Size != int64(len(signed.Payload))+20 || !tags[0].Pushed.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("first tag %+v", tags[0])
	}
	if all, _, _ := s.ListTagInfo(ctx, "grp/app", "", 10, true); len(all) != 5 || all[1].Name != sigTag {
		t.Errorf("with artifacts: %+v", all)
	}
	page, more, err := s.ListTagInfo(ctx, "grp/app", "latest", 2, false)
	if err != nil || !more || len(page) != 2 || page[0].Name != "v1" || page[1].Name != "v2" {
		t.Errorf("second page: %+v, %v, %v", page, more, err)
	}
	if _, _, err := s.ListTagInfo(ctx, "nope", "", 10, false); !errors.Is(err, meta.ErrRepositoryNotFound) {
		t.Errorf("unknown repository: %v", err)
	}

	// Repositories by substring, with LIKE's wildcards taken literally.
	if repos, more, err := s.SearchRepositories(ctx, "app", "", 10); err != nil || more || !slices.Equal(repos, []string{"grp/app"}) {
		t.Errorf("SearchRepositories(app) = %v, %v, %v", repos, more, err)
	}
	if repos, _, _ := s.SearchRepositories(ctx, "%", "", 10); len(repos) != 0 {
		t.Errorf("SearchRepositories(%%) = %v", repos)
	}
	if repos, more, _ := s.SearchRepositories(ctx, "", "grp/app", 1); !slices.Equal(repos, []string{"grp/many"}) || !more {
		t.Errorf("SearchRepositories page = %v, %v", repos, more)
	}

	// Signatures of an image in id pages; counts by status.
	p1, more, err := s.SignaturePage(ctx, "grp/app", signed.Digest, 0, 2)
	if err != nil || !more || len(p1) != 2 || p1[0].Key != "s1" || p1[0].Annotations["k"] != "s1" {
		t.Fatalf("SignaturePage = %+v, %v, %v", p1, more, err)
	}
	if p2, more, _ := s.SignaturePage(ctx, "grp/app", signed.Digest, p1[1].ID, 2); more || len(p2) != 1 || p2[0].Key != "s3" {
		t.Errorf("SignaturePage 2 = %+v, %v", p2, more)
	}
	counts, err := s.SignatureStatusCounts(ctx, "grp/app", []digest.Digest{signed.Digest, unsigned.Digest, invalid.Digest})
	if err != nil || counts[signed.Digest][meta.StatusVerified] != 2 || counts[signed.Digest][meta.StatusInvalid] != 1 ||
		counts[unsigned.Digest] != nil || counts[invalid.Digest][meta.StatusInvalid] != 1 {
		t.Errorf("SignatureStatusCounts = %v, %v", counts, err)
	}
	latest, err := s.LatestSignatures(ctx, "grp/app", []digest.Digest{signed.Digest, invalid.Digest}, 3)
	if err != nil || len(latest) != 3 || latest[0].Key != "s4" || latest[2].Key != "s2" {
		t.Errorf("LatestSignatures = %+v, %v", latest, err)
	}

	// Image status counts per repository, with the order given.
	sc, err := s.ImageStatusCounts(ctx, []string{meta.StatusVerified, meta.StatusInvalid}, "other", "unsigned")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, c := range sc {
		got[c.Repository+" "+c.Status] = c.Images
	}
	want := map[string]int{"grp/app verified": 1, "grp/app unsigned": 1, "grp/app invalid": 1, "grp/other other": 1, "grp/many unsigned": 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ImageStatusCounts = %v, want %v", got, want)
	}

	// Recent images (attachments left out) and signatures; by log index.
	recent, err := s.RecentImages(ctx, 3)
	if err != nil || len(recent) != 3 || recent[0].Repository != "grp/many" || recent[0].Tag != "t3" {
		t.Errorf("RecentImages = %+v, %v", recent, err)
	}
	if rs, err := s.RecentSignatures(ctx, 2); err != nil || len(rs) != 2 || rs[0].Key != "s5" {
		t.Errorf("RecentSignatures = %+v, %v", rs, err)
	}
	if bl, err := s.SignaturesByLogIndex(ctx, 42, 5); err != nil || len(bl) != 1 || bl[0].Key != "s1" {
		t.Errorf("SignaturesByLogIndex = %+v, %v", bl, err)
	}
	if tg, more, err := s.TagsOfN(ctx, "grp/app", signed.Digest, 1); err != nil || !more || !slices.Equal(tg, []string{"latest"}) {
		t.Errorf("TagsOfN = %v, %v, %v", tg, more, err)
	}
	ref := manifest(t, s, "grp/app", "ref", true, signed.Digest)
	if err := s.PutManifest(ctx, ref, nil); err != nil {
		t.Fatal(err)
	}
	if rf, more, err := s.ListReferrers(ctx, "grp/app", signed.Digest, 5); err != nil || more || len(rf) != 1 || rf[0].Digest != ref.Digest {
		t.Errorf("ListReferrers = %+v, %v, %v", rf, more, err)
	}
}
