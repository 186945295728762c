package root_test

import (
	"errors"
	"testing"
	"time"

	sgroot "github.com/sigstore/sigstore-go/pkg/root"

	"github.com/hallmark-dev/hallmark/pkg/root"
)

// TestSelectService: the v1 service valid now with the newest start wins,
// as sigstore-go selects it from the same signing config.
func TestSelectService(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ended := ago(time.Minute)
	svc := func(url string, major int, start time.Time, end *time.Time) root.Service {
		return root.Service{URL: url, MajorAPIVersion: major, ValidFor: root.Validity{Start: start, End: end}, Operator: "test"}
	}
	for _, tc := range []struct {
		name string
		svcs []root.Service
		want string
	}{
		{"none", nil, ""},
		{"one", []root.Service{svc("https://a.example", 1, ago(time.Hour), nil)}, "https://a.example"},
		{"newest start wins", []root.Service{svc("https://old.example", 1, ago(2*time.Hour), nil), svc("https://new.example", 1, ago(time.Hour), nil)}, "https://new.example"},
		{"other API version skipped", []root.Service{svc("https://v1.example", 1, ago(2*time.Hour), nil), svc("https://v2.example", 2, ago(time.Hour), nil)}, "https://v1.example"},
		{"ended skipped", []root.Service{svc("https://live.example", 1, ago(2*time.Hour), nil), svc("https://ended.example", 1, ago(time.Hour), &ended)}, "https://live.example"},
		{"future skipped", []root.Service{svc("https://now.example", 1, ago(time.Hour), nil), svc("https://later.example", 1, now.Add(time.Hour), nil)}, "https://now.example"},
		{"only v2", []root.Service{svc("https://v2.example", 2, ago(time.Hour), nil)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := root.SelectService(tc.svcs, now); got != tc.want {
				t.Fatalf("SelectService = %q, want %q", got, tc.want)
			}
			if len(tc.svcs) == 0 {
				return
			}
			// The same choice as sigstore-go's for a CA list.
			sc := &root.SigningConfig{MediaType: root.SigningConfigMediaType, CAURLs: tc.svcs, OIDCURLs: []root.Service{},
				RekorTlogURLs: []root.Service{}, TSAURLs: []root.Service{}}
			raw, err := sc.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			sg, err := sgroot.NewSigningConfigFromJSON(raw)
			if err != nil {
				t.Fatal(err)
			}
			s, err := sgroot.SelectService(sg.FulcioCertificateAuthorityURLs(), []uint32{1}, now)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("sigstore-go selected %q where none is valid", s.URL)
				}
				return
			}
			if err != nil || s.URL != tc.want {
				t.Fatalf("sigstore-go selects %q (%v), SelectService %q", s.URL, err, tc.want)
			}
		})
	}
}

// TestParseSigningConfigFor: a signing config is accepted only with the
// trusted root whose services it names; a malformed one is refused too.
func TestParseSigningConfigFor(t *testing.T) {
	f := newFixture(t)
	raw, err := root.NewSigningConfig(f.baseURL, "test", f.start).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := root.ParseSigningConfigFor(raw, f.tr)
	if err != nil {
		t.Fatal(err)
	}
	if got := root.SelectService(sc.CAURLs, time.Now()); got != f.baseURL {
		t.Errorf("CA %q, want %q", got, f.baseURL)
	}
	evil, err := root.NewSigningConfig("https://evil.example", "evil", f.start).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.ParseSigningConfigFor(evil, f.tr); !errors.Is(err, root.ErrInvalid) {
		t.Errorf("signing config naming another server accepted: %v", err)
	}
	if _, err := root.ParseSigningConfigFor([]byte(`{"mediaType":"x"}`), f.tr); !errors.Is(err, root.ErrInvalid) {
		t.Errorf("malformed signing config accepted: %v", err)
	}
}
