package metatest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/meta/sqlstore"
)

// indexManifest returns an index in repo listing children (already
// stored there).
func indexManifest(repo, seed string, children ...*meta.Manifest) *meta.Manifest {
	payload := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","seed":"` + seed + `"}`)
	m := &meta.Manifest{Repository: repo, Digest: digest.FromBytes(payload), MediaType: "application/vnd.oci.image.index.v1+json", Payload: payload}
	for _, c := range children {
		m.References = append(m.References, meta.Reference{Digest: c.Digest, Kind: meta.RefManifest, Size: int64(len(c.Payload))})
	}
	return m
}

func mustPut(t *testing.T, s *sqlstore.Store, m *meta.Manifest, tags ...string) *meta.Manifest {
	t.Helper()
	if err := s.PutManifest(ctx, m, tags); err != nil {
		t.Fatal(err)
	}
	return m
}

// quarantinedBy looks ref up in repo and returns the digest whose
// quarantine blocks it ("" for none).
func quarantinedBy(t *testing.T, s *sqlstore.Store, repo, ref string) digest.Digest {
	t.Helper()
	m, err := s.GetManifest(ctx, repo, ref)
	if err != nil {
		t.Fatalf("GetManifest(%s, %s): %v", repo, ref, err)
	}
	if m.Quarantine == nil {
		return ""
	}
	if m.Quarantine.Reason == "" || m.Quarantine.Actor == "" || m.Quarantine.Created.IsZero() || m.Quarantine.Repository != repo {
		t.Errorf("GetManifest(%s, %s): quarantine record incomplete: %+v", repo, ref, m.Quarantine)
	}
	return m.Quarantine.Digest
}

func testQuarantine(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	const repo = "group/app"
	img := mustPut(t, s, manifest(t, s, repo, "img", true, ""), "v1")
	amd := mustPut(t, s, manifest(t, s, repo, "amd", true, ""))
	arm := mustPut(t, s, manifest(t, s, repo, "arm", true, ""))
	idx := mustPut(t, s, indexManifest(repo, "idx", amd, arm), "multi")
	ref := manifest(t, s, repo, "sbom", true, img.Digest)
	ref.ArtifactType = "application/spdx+json"
	mustPut(t, s, ref)
	idxSig := mustPut(t, s, manifest(t, s, repo, "idxsig", true, ""), "sha256-"+idx.Digest.Encoded()+".sig")
	imgSig := mustPut(t, s, manifest(t, s, repo, "imgsig", true, ""), "sha256-"+img.Digest.Encoded()+".att")
	other := mustPut(t, s, manifest(t, s, "group/other", "img", true, ""), "v1") // same content, other repository

	for _, r := range []string{"v1", img.Digest.String(), "multi", amd.Digest.String()} {
		if got := quarantinedBy(t, s, repo, r); got != "" {
			t.Fatalf("before any quarantine, %s is blocked by %s", r, got)
		}
	}
	at := t0.Add(time.Minute)
	change := meta.QuarantineChange{Reason: "CVE-2099-1 <b>x</b>", Actor: "alice", ActorKind: "user", RemoteAddr: "192.0.2.1", At: at,
		Items: []meta.QuarantineItem{{Repository: repo, Digest: img.Digest}, {Repository: repo, Digest: arm.Digest}, {Repository: repo, Digest: img.Digest}}}
	out, err := s.Quarantine(ctx, change)
	if err != nil || len(out) != 3 {
		t.Fatalf("Quarantine = %+v, %v", out, err)
	}
	if !out[0].Changed || !out[1].Changed || out[2].Changed || out[2].Quarantine.ID != out[0].Quarantine.ID {
		t.Errorf("outcomes: the first two are new, the repeated item is not: %+v", out)
	}
	q := out[0].Quarantine
	if q.Reason != change.Reason || q.Actor != "alice" || !q.Created.Equal(at) || !q.Active() || q.Digest != img.Digest || q.Repository != repo {
		t.Errorf("record %+v", q)
	}
	for _, tc := range []struct {
		repo, ref string
		want      digest.Digest
	}{
		{repo, "v1", img.Digest},
		{repo, img.Digest.String(), img.Digest},
		{repo, ref.Digest.String(), img.Digest},                       // a referrer of it
		{repo, "sha256-" + img.Digest.Encoded() + ".att", img.Digest}, // its attestation, by tag
		{repo, imgSig.Digest.String(), ""},                            // ...by digest the tag is not known
		{repo, "multi", arm.Digest},                                   // an index listing it
		{repo, idx.Digest.String(), arm.Digest},                       // ...by digest
		{repo, "sha256-" + idx.Digest.Encoded() + ".sig", arm.Digest}, // the index's signature
		{repo, idxSig.Digest.String(), ""},                            //
		{repo, amd.Digest.String(), ""},                               // its sibling
		{"group/other", "v1", ""},                                     // the same digest elsewhere
		{"group/other", other.Digest.String(), ""},                    //
	} {
		if got := quarantinedBy(t, s, tc.repo, tc.ref); got != tc.want {
			t.Errorf("%s@%s: blocked by %q, want %q", tc.repo, tc.ref, got, tc.want)
		}
	}
	// A digest that is not (yet) in the repository may be quarantined.
	absent := digest.FromString("not pushed yet")
	if out, err := s.Quarantine(ctx, meta.QuarantineChange{Reason: "known bad", Actor: "bob", At: at,
		Items: []meta.QuarantineItem{{Repository: repo, Digest: absent}}}); err != nil || !out[0].Changed {
		t.Fatalf("quarantining an absent digest: %+v, %v", out, err)
	}

	list, err := s.ListQuarantine(ctx, meta.QuarantineQuery{Repository: repo})
	if err != nil || len(list) != 3 || list[0].Digest != absent || list[2].Digest != img.Digest {
		t.Fatalf("ListQuarantine = %+v, %v", list, err)
	}
	if l, err := s.ListQuarantine(ctx, meta.QuarantineQuery{Repository: repo, Digest: arm.Digest}); err != nil || len(l) != 1 || l[0].Digest != arm.Digest {
		t.Fatalf("ListQuarantine by digest = %+v, %v", l, err)
	}
	if l, err := s.ListQuarantine(ctx, meta.QuarantineQuery{Limit: 1, Before: list[0].ID}); err != nil || len(l) != 1 || l[0].ID != list[1].ID {
		t.Fatalf("ListQuarantine paged = %+v, %v", l, err)
	}

	// Lifting: pulls work again at once; the record stays as history.
	lift := meta.QuarantineChange{Reason: "false positive", Actor: "carol", ActorKind: "user", At: at.Add(time.Hour),
		Items: []meta.QuarantineItem{{Repository: repo, Digest: arm.Digest}, {Repository: repo, Digest: amd.Digest}}}
	lo, err := s.LiftQuarantine(ctx, lift)
	if err != nil || len(lo) != 2 || !lo[0].Changed || lo[0].Quarantine == nil || lo[1].Changed || lo[1].Quarantine != nil {
		t.Fatalf("LiftQuarantine = %+v, %v", lo, err)
	}
	if r := lo[0].Quarantine; r.LiftedBy != "carol" || r.LiftReason != "false positive" || !r.Lifted.Equal(lift.At) || r.Active() || r.Actor != "alice" {
		t.Errorf("lifted record %+v", r)
	}
	if got := quarantinedBy(t, s, repo, "multi"); got != "" {
		t.Errorf("after the lift, the index is still blocked by %s", got)
	}
	if got := quarantinedBy(t, s, repo, "v1"); got != img.Digest {
		t.Errorf("lifting another item lifted v1's quarantine too: %q", got)
	}
	if lo, err := s.LiftQuarantine(ctx, lift); err != nil || lo[0].Changed {
		t.Errorf("lifting again: %+v, %v", lo, err)
	}
	hist, err := s.ListQuarantine(ctx, meta.QuarantineQuery{Repository: repo, History: true})
	if err != nil || len(hist) != 3 {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	// ...and the item may be quarantined anew.
	if out, err := s.Quarantine(ctx, meta.QuarantineChange{Reason: "again", Actor: "alice", At: at.Add(2 * time.Hour),
		Items: []meta.QuarantineItem{{Repository: repo, Digest: arm.Digest}}}); err != nil || !out[0].Changed {
		t.Fatalf("quarantining again after a lift: %+v, %v", out, err)
	}
	if hist, _ := s.ListQuarantine(ctx, meta.QuarantineQuery{Repository: repo, Digest: arm.Digest, History: true}); len(hist) != 2 || !hist[0].Active() || hist[1].Active() {
		t.Errorf("history of the re-quarantined item: %+v", hist)
	}

	// Every change was audited, with who, what and why.
	evs, err := s.QueryAudit(ctx, auth.AuditQuery{Repository: repo})
	if err != nil {
		t.Fatal(err)
	}
	var adds, lifts int
	for _, e := range evs {
		switch e.Action {
		case auth.AuditQuarantine:
			adds++
			if e.Digest == img.Digest.String() && (e.Actor != "alice" || e.ActorKind != "user" || e.RemoteAddr != "192.0.2.1" || !strings.Contains(e.Detail, change.Reason) || !e.Time.Equal(at)) {
				t.Errorf("quarantine event %+v", e)
			}
		case auth.AuditQuarantineLift:
			lifts++
			if e.Actor != "carol" || e.Digest != arm.Digest.String() || !strings.Contains(e.Detail, "false positive") || !strings.Contains(e.Detail, change.Reason) {
				t.Errorf("lift event %+v", e)
			}
		}
	}
	if adds != 4 || lifts != 1 {
		t.Errorf("audit: %d quarantine and %d lift events, want 4 and 1 (one per changed item): %+v", adds, lifts, evs)
	}
}

func testRequireSignature(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	for _, p := range []struct {
		path string
		rs   meta.RequireSignature
	}{
		{"group", meta.RequireSignatureEnforce},
		{"group/app", meta.RequireSignatureOff},
		{"group/app/deep", meta.RequireSignatureWarn},
		{"group/x", meta.RequireSignatureWarn},
		{"grou", meta.RequireSignatureEnforce},
		{"other", ""},
	} {
		if _, err := s.CreateProject(ctx, auth.Project{Path: p.path, Visibility: auth.VisibilityPrivate, RequireSignature: p.rs, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := s.GetProject(ctx, "other"); err != nil || p.RequireSignature != meta.RequireSignatureOff {
		t.Fatalf("a project created without the setting: %+v, %v", p, err)
	}
	for repo, want := range map[string]string{
		"group":              "enforce group",
		"group/y":            "enforce group",
		"group/application":  "enforce group",
		"group/app":          "",
		"group/app/sub":      "",
		"group/app/deep":     "warn group/app/deep",
		"group/app/deeper":   "",
		"group/app/deep/a/b": "warn group/app/deep",
		"group/x/y":          "warn group/x",
		"groupie/z":          "",
		"grou/z":             "enforce grou",
		"other/z":            "",
		"nowhere":            "",
	} {
		m := mustPut(t, s, manifest(t, s, repo, "m", true, ""), "v1")
		got, err := s.GetManifest(ctx, repo, "v1")
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.TrimSpace(string(got.RequireSignature) + " " + got.Project); g != want {
			t.Errorf("%s: require-signature %q, want %q", repo, g, want)
		}
		if byDigest, _ := s.GetManifest(ctx, repo, m.Digest.String()); byDigest.RequireSignature != got.RequireSignature || byDigest.Project != got.Project {
			t.Errorf("%s: by digest %q %q, by tag %q %q", repo, byDigest.RequireSignature, byDigest.Project, got.RequireSignature, got.Project)
		}
	}

	ev := auth.AuditEvent{Time: t0, Action: auth.AuditRequireSig, Actor: "admin", Repository: "group/app", Detail: "off -> enforce"}
	if err := s.SetProjectRequireSignature(ctx, "group/app", meta.RequireSignatureEnforce, ev); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetManifest(ctx, "group/app/sub", "v1"); got.RequireSignature != meta.RequireSignatureEnforce || got.Project != "group/app" {
		t.Errorf("after the change: %q %q", got.RequireSignature, got.Project)
	}
	if p, _ := s.GetProject(ctx, "group/app"); p.RequireSignature != meta.RequireSignatureEnforce {
		t.Errorf("GetProject after the change: %+v", p)
	}
	if err := s.SetProjectRequireSignature(ctx, "missing", meta.RequireSignatureWarn, ev); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("setting a missing project: %v", err)
	}
	evs, err := s.QueryAudit(ctx, auth.AuditQuery{Action: auth.AuditRequireSig})
	if err != nil || len(evs) != 1 || evs[0].Detail != "off -> enforce" {
		t.Errorf("audit of the change (the failed one records nothing): %+v, %v", evs, err)
	}
}

func testSignatureVerdict(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	const repo = "group/app"
	img := mustPut(t, s, manifest(t, s, repo, "img", true, ""))
	amd := mustPut(t, s, manifest(t, s, repo, "amd", true, ""))
	lone := mustPut(t, s, manifest(t, s, repo, "lone", true, ""))
	idx := mustPut(t, s, indexManifest(repo, "idx", amd))
	// The same child listed by an index of another repository, signed there.
	otherAmd := mustPut(t, s, manifest(t, s, "group/other", "amd", true, ""))
	otherIdx := mustPut(t, s, indexManifest("group/other", "idx2", otherAmd))

	n := 0
	sig := func(repo string, subject digest.Digest, status string) meta.Signature {
		n++
		return meta.Signature{Repository: repo, Subject: subject, Manifest: digest.FromString("sig"), Key: "k" + string(rune('a'+n)), Kind: "cosign", Status: status}
	}
	verdict := func(d digest.Digest) meta.SignatureVerdict {
		t.Helper()
		v, err := s.SignatureVerdict(ctx, repo, d)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := verdict(img.Digest); v != meta.VerdictNone {
		t.Errorf("unsigned: %s", v)
	}
	record := func(sigs ...meta.Signature) {
		t.Helper()
		if _, err := s.RecordSignatures(ctx, sigs); err != nil {
			t.Fatal(err)
		}
	}
	record(sig(repo, img.Digest, meta.StatusInvalid), sig(repo, img.Digest, meta.StatusUnverified), sig(repo, img.Digest, "untrusted"),
		sig("group/other", img.Digest, meta.StatusVerified), sig("group/other", otherIdx.Digest, meta.StatusVerified))
	if v := verdict(img.Digest); v != meta.VerdictNone {
		t.Errorf("only invalid, unverified and untrusted signatures here (verified elsewhere): %s", v)
	}
	if v := verdict(amd.Digest); v != meta.VerdictNone {
		t.Errorf("listed by an index verified in another repository only: %s", v)
	}
	record(sig(repo, img.Digest, meta.StatusPending))
	if v := verdict(img.Digest); v != meta.VerdictPending {
		t.Errorf("with a pending signature: %s", v)
	}
	record(sig(repo, img.Digest, meta.StatusVerified))
	if v := verdict(img.Digest); v != meta.VerdictVerified {
		t.Errorf("with a verified signature: %s", v)
	}
	record(sig(repo, idx.Digest, meta.StatusVerified))
	for d, want := range map[digest.Digest]meta.SignatureVerdict{idx.Digest: meta.VerdictVerified, amd.Digest: meta.VerdictVerified, lone.Digest: meta.VerdictNone} {
		if v := verdict(d); v != want {
			t.Errorf("signed index %s, %s: %s, want %s", idx.Digest, d, v, want)
		}
	}
	if v, err := s.SignatureVerdict(ctx, "nowhere", img.Digest); err != nil || v != meta.VerdictNone {
		t.Errorf("unknown repository: %s, %v", v, err)
	}
}
