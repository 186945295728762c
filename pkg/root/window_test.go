package root_test

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	sgroot "github.com/sigstore/sigstore-go/pkg/root"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// TestWindowCoversAsSigstoreGo: a window includes both of its ends and a
// zero end is open, exactly as sigstore-go's ExpiringKey.ValidAtTime (the
// rule it applies to log keys, CT log keys and CAs).
func TestWindowCoversAsSigstoreGo(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	windows := []root.Window{{}, {Start: start}, {End: end}, {Start: start, End: end}}
	times := []time.Time{start.Add(-time.Nanosecond), start, start.Add(time.Hour), end, end.Add(time.Nanosecond), {}}
	for _, w := range windows {
		sg := sgroot.NewExpiringKey(nil, w.Start, w.End)
		for _, at := range times {
			if got, want := w.Covers(at), sg.ValidAtTime(at); got != want {
				t.Errorf("window %s at %s: covers %v, sigstore-go says %v", w, at, got, want)
			}
		}
	}
	for w, want := range map[root.Window]string{
		{}:                       "at any time",
		{Start: start}:           "from 2026-01-01T00:00:00Z on",
		{End: end}:               "until 2026-01-02T00:00:00Z",
		{Start: start, End: end}: "from 2026-01-01T00:00:00Z until 2026-01-02T00:00:00Z",
		{Start: start.Local()}:   "from 2026-01-01T00:00:00Z on",
		{Start: start, End: end.In(time.FixedZone("x", 3600))}: "from 2026-01-01T00:00:00Z until 2026-01-02T00:00:00Z",
	} {
		if got := w.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

// TestMaterialKeepsValidFor: Material keeps every log key's and CA's
// validFor, as sigstore-go reads them from sigstore's public-good trusted
// root (a retired CT log key and a retired CA with an end, their
// successors open-ended).
func TestMaterialKeepsValidFor(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "public-trusted_root.json"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := root.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tr.Material()
	if err != nil {
		t.Fatal(err)
	}
	sg, err := sgroot.NewTrustedRootFromJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	ended := 0
	for name, pair := range map[string]struct {
		ours   map[string]root.LogKey
		theirs map[string]*sgroot.TransparencyLog
	}{"tlog": {m.TlogKeys, sg.RekorLogs()}, "ctlog": {m.CTLogKeys, sg.CTLogs()}} {
		if len(pair.ours) != len(pair.theirs) || len(pair.ours) == 0 {
			t.Fatalf("%s: %d keys, sigstore-go has %d", name, len(pair.ours), len(pair.theirs))
		}
		for id, l := range pair.theirs {
			k, ok := pair.ours[id]
			if !ok {
				t.Fatalf("%s %s missing", name, id)
			}
			ourDER, _ := x509.MarshalPKIXPublicKey(k.Key)
			theirDER, _ := x509.MarshalPKIXPublicKey(l.PublicKey)
			if string(ourDER) != string(theirDER) {
				t.Errorf("%s %s: another key", name, id)
			}
			if !k.ValidFor.Start.Equal(l.ValidityPeriodStart) || !k.ValidFor.End.Equal(l.ValidityPeriodEnd) {
				t.Errorf("%s %s: window %s, sigstore-go has %v..%v", name, id, k.ValidFor, l.ValidityPeriodStart, l.ValidityPeriodEnd)
			}
			if !k.ValidFor.End.IsZero() {
				ended++
			}
		}
	}
	cas := sg.FulcioCertificateAuthorities()
	if len(m.CAs) != len(cas) {
		t.Fatalf("%d CAs, sigstore-go has %d", len(m.CAs), len(cas))
	}
	for i, c := range cas {
		fca := c.(*sgroot.FulcioCertificateAuthority)
		ca := m.CAs[i]
		if ca.URI != fca.URI || !ca.ValidFor.Start.Equal(fca.ValidityPeriodStart) || !ca.ValidFor.End.Equal(fca.ValidityPeriodEnd) {
			t.Errorf("CA %d: %s %s, sigstore-go has %s %v..%v", i, ca.URI, ca.ValidFor, fca.URI, fca.ValidityPeriodStart, fca.ValidityPeriodEnd)
		}
		if !ca.ValidFor.End.IsZero() {
			ended++
		}
		// Each CA's pools are its own: its root (and intermediates) and
		// nothing of the other CAs.
		opts := x509.VerifyOptions{Roots: ca.Roots, Intermediates: ca.Intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
			CurrentTime: fca.Root.NotBefore.Add(time.Hour)}
		if _, err := fca.Root.Verify(opts); err != nil {
			t.Errorf("CA %d: its root does not verify with its own pools: %v", i, err)
		}
		for j, other := range cas {
			if o := other.(*sgroot.FulcioCertificateAuthority); j != i && !o.Root.Equal(fca.Root) {
				if _, err := o.Root.Verify(opts); err == nil {
					t.Errorf("CA %d's pools trust the root of CA %d", i, j)
				}
			}
		}
	}
	if ended < 2 {
		t.Errorf("the public trusted root has a retired CT log key and CA; only %d windows with an end were kept", ended)
	}
}

func TestValidityContainsIsInclusive(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	v := root.Validity{Start: start, End: &end}
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{{start.Add(-time.Nanosecond), false}, {start, true}, {end, true}, {end.Add(time.Nanosecond), false}} {
		if got := v.Contains(tc.t); got != tc.want {
			t.Errorf("Contains(%v) = %v, want %v", tc.t, got, tc.want)
		}
	}
}
