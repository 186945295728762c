package metatest

import (
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/auth"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

// testUntrustedText: strings with NUL bytes or invalid UTF-8 (a user name
// in a failed login, an annotation in a signed payload) are stored with
// U+FFFD in their place on every backend, and lookups by them find nothing
// instead of failing.
func testUntrustedText(t *testing.T, b Backend) {
	s, _ := newStore(t, b)
	const bad, clean = "ad\x00min\xff", "ad\uFFFDmin\uFFFD"
	if err := s.RecordAudit(ctx, auth.AuditEvent{Time: t0, Action: "login-failed", Actor: bad, Detail: "x\xc3"}); err != nil {
		t.Fatalf("RecordAudit of a NUL / invalid UTF-8 user name: %v", err)
	}
	for _, q := range []string{bad, clean} {
		got, err := s.QueryAudit(ctx, auth.AuditQuery{Actor: q})
		if err != nil || len(got) != 1 || got[0].Actor != clean || got[0].Detail != "x\uFFFD" {
			t.Fatalf("QueryAudit(actor %q) = %+v, %v", q, got, err)
		}
	}
	if _, err := s.GetUser(ctx, bad); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("GetUser(%q): %v", bad, err)
	}
	if _, err := s.FindProject(ctx, "g\xff/app"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("FindProject with invalid UTF-8: %v", err)
	}
	if _, err := s.GetManifest(ctx, "app", "v\x00"); !errors.Is(err, meta.ErrManifestNotFound) {
		t.Errorf("GetManifest of a NUL tag: %v", err)
	}
	sig := meta.Signature{Repository: "app", Subject: digest.FromString("img"), Manifest: digest.FromString("m"), Layer: digest.FromString("l"),
		Key: "k", Kind: "cosign", Status: meta.StatusVerified, Annotations: map[string]string{"note": "a\x00b", "k\xff": "v"}, Created: time.Unix(1, 0)}
	if n, err := s.RecordSignatures(ctx, []meta.Signature{sig}); err != nil || n != 1 {
		t.Fatalf("RecordSignatures with a NUL annotation = %d, %v", n, err)
	}
	got, err := s.ListSignatures(ctx, "app", sig.Subject)
	if err != nil || len(got) != 1 || got[0].Annotations["note"] != "a\uFFFDb" || got[0].Annotations["k\uFFFD"] != "v" {
		t.Fatalf("ListSignatures = %+v, %v", got, err)
	}
}
