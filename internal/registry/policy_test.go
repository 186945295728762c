package registry_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
	"github.com/hallmark-dev/hallmark/internal/registry"
	"github.com/hallmark-dev/hallmark/pkg/oci"
)

// policySink records what the registry tells an event sink about the
// pull policy.
type policySink struct {
	mu     sync.Mutex
	events []string // outcome refused repo@digest
}

func (s *policySink) ManifestPushed(context.Context, *meta.Manifest, []string) {}
func (s *policySink) ManifestDeleted(context.Context, string, string)          {}
func (s *policySink) PullPolicyApplied(_ context.Context, repo string, d digest.Digest, outcome string, refused bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := "served"
	if refused {
		r = "refused"
	}
	s.events = append(s.events, outcome+" "+r+" "+repo+"@"+d.String())
}

func (s *policySink) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

// policyEnv is a registry whose pull policy is observed.
type policyEnv struct {
	*env
	sink     *policySink
	mu       sync.Mutex
	outcomes map[registry.PullOutcome]int
}

func newPolicyEnv(t *testing.T) *policyEnv {
	sink := &policySink{}
	// Clients of repositories named .../producer may push to them.
	mayPush := func(_ context.Context, repo string) (bool, error) { return strings.HasSuffix(repo, "/producer"), nil }
	pe := &policyEnv{env: newEnv(t, registry.Config{Events: sink, MayPush: mayPush}), sink: sink, outcomes: map[registry.PullOutcome]int{}}
	pe.h.PullOutcomes = func(o registry.PullOutcome) {
		pe.mu.Lock()
		pe.outcomes[o]++
		pe.mu.Unlock()
	}
	return pe
}

// wantDenied checks a 403 DENIED whose message contains every part.
func wantDenied(t *testing.T, what string, r resp, parts ...string) {
	t.Helper()
	wantError(t, what, r, http.StatusForbidden, oci.CodeDenied)
	var body oci.ErrorResponse
	json.Unmarshal(r.body, &body)
	for _, p := range parts {
		if !strings.Contains(body.Errors[0].Message, p) {
			t.Errorf("%s: message %q lacks %q", what, body.Errors[0].Message, p)
		}
	}
	if r.h.Get("Docker-Content-Digest") != "" {
		t.Errorf("%s: a refused pull names the digest: %q", what, r.h.Get("Docker-Content-Digest"))
	}
}

func (e *env) get(repo, ref string) resp {
	e.t.Helper()
	return e.do(http.MethodGet, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", oci.MediaTypeOCIManifest+", "+oci.MediaTypeOCIIndex)
}

func (e *env) head(repo, ref string) resp {
	e.t.Helper()
	return e.do(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, nil, "Accept", oci.MediaTypeOCIManifest+", "+oci.MediaTypeOCIIndex)
}

// pushed pushes body under ref and returns its digest.
func (e *env) pushed(repo, ref, mt string, body []byte) digest.Digest {
	e.t.Helper()
	wantStatus(e.t, "push "+ref, e.pushManifest(repo, ref, mt, body), http.StatusCreated)
	return digest.FromBytes(body)
}

// attachments pushes, for subject, a cosign-style signature manifest
// under its .sig tag and an SBOM referrer; it returns their digests.
func (e *env) attachments(repo string, subject digest.Digest, subjectSize int64) (sig, sbom digest.Digest) {
	e.t.Helper()
	sig = e.pushed(repo, "sha256-"+subject.Encoded()+".sig", oci.MediaTypeOCIManifest, e.image(repo, oci.MediaTypeOCIManifest, nil))
	e.pushBlob(repo, []byte("{}"))
	body := e.image(repo, oci.MediaTypeOCIManifest, map[string]any{
		"artifactType": "application/spdx+json",
		"config":       desc(oci.MediaTypeOCIEmptyJSON, []byte("{}")),
		"subject":      oci.Descriptor{MediaType: oci.MediaTypeOCIManifest, Digest: subject, Size: subjectSize},
	})
	sbom = digest.FromBytes(body)
	wantStatus(e.t, "push sbom", e.pushManifest(repo, sbom.String(), oci.MediaTypeOCIManifest, body), http.StatusCreated)
	return sig, sbom
}

func (e *env) quarantine(reason string, items ...meta.QuarantineItem) {
	e.t.Helper()
	if _, err := e.store.Quarantine(context.Background(), meta.QuarantineChange{Items: items, Reason: reason, Actor: "alice", At: time.Unix(1767225600, 0)}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) lift(items ...meta.QuarantineItem) {
	e.t.Helper()
	if _, err := e.store.LiftQuarantine(context.Background(), meta.QuarantineChange{Items: items, Actor: "bob", At: time.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// TestQuarantineRefusesPulls: a quarantined manifest answers 403 DENIED
// with who, when and why, by tag and by digest, GET and HEAD; so do what
// is attached to it and an index listing it; its siblings, its blobs and
// the same content in another repository stay pullable; lifting restores
// pulls at once.
func TestQuarantineRefusesPulls(t *testing.T) {
	e := newPolicyEnv(t)
	const repo = "group/app"
	imgBody := e.image(repo, oci.MediaTypeOCIManifest, nil)
	img := e.pushed(repo, "v1", oci.MediaTypeOCIManifest, imgBody)
	amdBody, armBody := e.image(repo, oci.MediaTypeOCIManifest, nil), e.image(repo, oci.MediaTypeOCIManifest, nil)
	idx := e.pushed(repo, "multi", oci.MediaTypeOCIIndex, e.indexOf(repo, oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest, amdBody, armBody))
	amd, arm := digest.FromBytes(amdBody), digest.FromBytes(armBody)
	sig, sbom := e.attachments(repo, img, int64(len(imgBody)))
	idxSig, _ := e.attachments(repo, idx, 0)
	var cfg oci.Manifest
	json.Unmarshal(imgBody, &cfg)
	for _, d := range []digest.Digest{cfg.Config.Digest, cfg.Layers[0].Digest} { // the same image in another repository
		wantStatus(t, "mount", e.do(http.MethodPost, "/v2/group/copy/blobs/uploads/?mount="+d.String()+"&from="+repo, nil), http.StatusCreated)
	}
	e.pushed("group/copy", "v1", oci.MediaTypeOCIManifest, imgBody)

	all := []string{"v1", img.String(), "multi", idx.String(), amd.String(), arm.String(), sig.String(), sbom.String(),
		"sha256-" + img.Encoded() + ".sig", "sha256-" + idx.Encoded() + ".sig", idxSig.String()}
	for _, ref := range all {
		wantStatus(t, "before: GET "+ref, e.get(repo, ref), http.StatusOK)
	}

	const reason = `CVE-2099-0001 in libfoo; rebuild from "main"`
	e.quarantine(reason, meta.QuarantineItem{Repository: repo, Digest: img}, meta.QuarantineItem{Repository: repo, Digest: arm})
	who := []string{"quarantined by alice at 2026-01-01T00:00:00Z", reason, "hallmark quarantine remove"}
	for _, tc := range []struct {
		ref  string
		want []string
	}{
		{"v1", append([]string{"manifest " + repo + "@" + img.String()}, who...)},
		{img.String(), who},
		{sbom.String(), append([]string{"attached to " + img.String()}, who...)},
		{"sha256-" + img.Encoded() + ".sig", append([]string{"attached to " + img.String()}, who...)},
		{"multi", append([]string{"index " + repo + "@" + idx.String() + " lists " + arm.String()}, who...)},
		{idx.String(), who},
		{arm.String(), who},
		{"sha256-" + idx.Encoded() + ".sig", append([]string{"attached to " + idx.String() + ", which lists " + arm.String()}, who...)},
	} {
		wantDenied(t, "GET "+tc.ref, e.get(repo, tc.ref), tc.want...)
		h := e.head(repo, tc.ref)
		if h.code != http.StatusForbidden || len(h.body) != 0 || h.h.Get("Docker-Content-Digest") != "" {
			t.Errorf("HEAD %s: %d %q (digest %q), want a bare 403", tc.ref, h.code, h.body, h.h.Get("Docker-Content-Digest"))
		}
	}
	// By digest, a .sig manifest is not known to be attached (its tag is
	// not in the reference): cosign and hallmark read it by tag.
	for _, ref := range []string{amd.String(), sig.String(), idxSig.String()} {
		wantStatus(t, "sibling or attachment by digest: GET "+ref, e.get(repo, ref), http.StatusOK)
	}
	wantStatus(t, "same content in another repository", e.get("group/copy", "v1"), http.StatusOK)
	wantStatus(t, "a blob of the quarantined image", e.do(http.MethodGet, "/v2/"+repo+"/blobs/"+cfg.Config.Digest.String(), nil), http.StatusOK)
	if got := e.sink.take(); len(got) != 16 || got[0] != "quarantined refused "+repo+"@"+img.String() {
		t.Errorf("event sink told %d times (want 16, one per refused GET and HEAD): %v", len(got), got)
	}
	if e.outcomes[registry.PullQuarantined] != 16 {
		t.Errorf("PullOutcomes counted %v, want 16 quarantined", e.outcomes)
	}

	e.lift(meta.QuarantineItem{Repository: repo, Digest: img}, meta.QuarantineItem{Repository: repo, Digest: arm})
	for _, ref := range all {
		wantStatus(t, "after the lift: GET "+ref, e.get(repo, ref), http.StatusOK)
		wantStatus(t, "after the lift: HEAD "+ref, e.head(repo, ref), http.StatusOK)
	}
}

// TestRequireSignature: off serves everything; warn serves with a Warning
// header; enforce refuses a GET of an image without a verified signature
// with a message saying what is missing and what to do, and serves
// signed images, platform manifests of a signed index, what is attached
// to images, HEAD, and images whose signature is pending.
func TestRequireSignature(t *testing.T) {
	e := newPolicyEnv(t)
	ctx := context.Background()
	type images struct {
		unsigned, signed, invalid, pending, idx, child, lone, sig, sbom digest.Digest
	}
	push := func(repo string) images {
		var im images
		im.unsigned = e.pushed(repo, "unsigned", oci.MediaTypeOCIManifest, e.image(repo, oci.MediaTypeOCIManifest, nil))
		im.signed = e.pushed(repo, "signed", oci.MediaTypeOCIManifest, e.image(repo, oci.MediaTypeOCIManifest, nil))
		im.invalid = e.pushed(repo, "invalid", oci.MediaTypeOCIManifest, e.image(repo, oci.MediaTypeOCIManifest, nil))
		im.pending = e.pushed(repo, "pending", oci.MediaTypeOCIManifest, e.image(repo, oci.MediaTypeOCIManifest, nil))
		childBody := e.image(repo, oci.MediaTypeOCIManifest, nil)
		im.idx = e.pushed(repo, "multi", oci.MediaTypeOCIIndex, e.indexOf(repo, oci.MediaTypeOCIIndex, oci.MediaTypeOCIManifest, childBody))
		im.child = digest.FromBytes(childBody)
		im.lone = e.pushed(repo, "lone", oci.MediaTypeOCIManifest, e.image(repo, oci.MediaTypeOCIManifest, nil))
		im.sig, im.sbom = e.attachments(repo, im.unsigned, 0)
		n := 0
		sig := func(subject digest.Digest, status string) meta.Signature {
			n++
			return meta.Signature{Repository: repo, Subject: subject, Manifest: im.sig, Key: repo + string(rune('a'+n)), Kind: "cosign", Status: status}
		}
		if _, err := e.store.RecordSignatures(ctx, []meta.Signature{sig(im.signed, meta.StatusVerified), sig(im.signed, meta.StatusInvalid),
			sig(im.invalid, meta.StatusInvalid), sig(im.invalid, meta.StatusUnverified), sig(im.pending, meta.StatusPending),
			sig(im.idx, meta.StatusVerified)}); err != nil {
			t.Fatal(err)
		}
		return im
	}
	for _, p := range []struct {
		path string
		rs   meta.RequireSignature
	}{{"off", meta.RequireSignatureOff}, {"warn", meta.RequireSignatureWarn}, {"enforce", meta.RequireSignatureEnforce}} {
		if _, err := e.store.CreateProject(ctx, auth.Project{Path: "p/" + p.path, Visibility: auth.VisibilityPrivate, RequireSignature: p.rs, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		served = iota
		warned
		refused
	)
	for _, mode := range []string{"off", "warn", "enforce"} {
		t.Run(mode, func(t *testing.T) {
			repo := "p/" + mode + "/app"
			im := push(repo)
			unsignedWant := map[string]int{"off": served, "warn": warned, "enforce": refused}[mode]
			pendingWant := served
			if mode != "off" {
				pendingWant = warned
			}
			for _, tc := range []struct {
				what, ref string
				want      int
			}{
				{"unsigned by tag", "unsigned", unsignedWant},
				{"unsigned by digest", im.unsigned.String(), unsignedWant},
				{"only invalid and unverified signatures", "invalid", unsignedWant},
				{"an image outside the index", "lone", unsignedWant},
				{"verified signature (and an invalid one)", "signed", served},
				{"verified by digest", im.signed.String(), served},
				{"signed index by tag", "multi", served},
				{"platform manifest of the signed index, by digest", im.child.String(), served},
				{"signature pending", "pending", pendingWant},
				{"cosign signature by tag", "sha256-" + im.unsigned.Encoded() + ".sig", served},
				{"cosign signature by digest (tag looked up)", im.sig.String(), served},
				{"referrer (SBOM) by digest", im.sbom.String(), served},
			} {
				r := e.get(repo, tc.ref)
				switch tc.want {
				case served, warned:
					wantStatus(t, tc.what, r, http.StatusOK)
					w := r.h.Get("Warning")
					if (tc.want == warned) != (w != "") {
						t.Errorf("%s: Warning header %q", tc.what, w)
					}
					if tc.want == warned && (!strings.HasPrefix(w, `299 - "`) || !strings.HasSuffix(w, `"`) || !strings.Contains(w, repo[:len(repo)-4])) {
						t.Errorf("%s: Warning %q is not 299 - \"...\" naming the project", tc.what, w)
					}
				case refused:
					wantDenied(t, tc.what, r, "has no verified signature", "project p/enforce", "require-signature: enforce", "hallmark sign or cosign sign")
				}
				if h := e.head(repo, tc.ref); h.code != http.StatusOK || h.h.Get("Warning") != "" {
					t.Errorf("%s: HEAD %d, Warning %q; want 200 without (HEAD serves no content; signing needs it)", tc.what, h.code, h.h.Get("Warning"))
				}
			}
			ev := e.sink.take()
			switch mode {
			case "off":
				if len(ev) != 0 {
					t.Errorf("off: events %v", ev)
				}
			case "warn":
				if len(ev) != 5 || !strings.HasPrefix(ev[0], "unsigned_warned served "+repo) || !strings.HasPrefix(ev[4], "signature_pending served") {
					t.Errorf("warn: events %v", ev)
				}
			case "enforce":
				if len(ev) != 5 || !strings.HasPrefix(ev[0], "unsigned_denied refused "+repo) || !strings.HasPrefix(ev[4], "signature_pending served") {
					t.Errorf("enforce: events %v", ev)
				}
			}
		})
	}
	if e.outcomes[registry.PullUnsignedWarned] != 4 || e.outcomes[registry.PullUnsignedDenied] != 4 || e.outcomes[registry.PullPending] != 2 {
		t.Errorf("outcomes counted: %v", e.outcomes)
	}

	// Under enforce, a client that may push (the pipeline that signs) is
	// served, with the warning.
	im := push("p/enforce/producer")
	for _, ref := range []string{"unsigned", im.unsigned.String()} {
		r := e.get("p/enforce/producer", ref)
		wantStatus(t, "producer: GET "+ref, r, http.StatusOK)
		if w := r.h.Get("Warning"); !strings.Contains(w, "served because you may push to p/enforce/producer") {
			t.Errorf("producer: GET %s: Warning %q", ref, w)
		}
	}
	if ev := e.sink.take(); len(ev) != 2 || !strings.HasPrefix(ev[0], "unsigned_producer served p/enforce/producer@") {
		t.Errorf("producer: events %v", ev)
	}

	// The setting changes take effect at once: no cache.
	if err := e.store.SetProjectRequireSignature(ctx, "p/enforce", meta.RequireSignatureOff, auth.AuditEvent{Time: time.Now(), Action: auth.AuditRequireSig}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "enforce turned off", e.get("p/enforce/app", "unsigned"), http.StatusOK)
}
