package gc_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/hallmark-dev/hallmark/internal/gc"
	"github.com/hallmark-dev/hallmark/internal/meta"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // "" = refused; else the stored JSON
	}{
		{`{"keep_n": 10}`, `{"keep_n":10}`},
		{`{"older_than": "30d"}`, `{"older_than":"720h0m0s"}`},
		{`{"older_than": "36h", "tag_regex": "dev-.*", "protected_regex": "v\\d+", "keep_n": 3}`, `{"keep_n":3,"tag_regex":"dev-.*","older_than":"36h0m0s","protected_regex":"v\\d+"}`},
		{`{}`, ""},                                        // neither keep_n nor older_than: would remove everything
		{`{"keep_n": 0, "tag_regex": ".*"}`, ""},          // the same
		{`{"keep_n": -1}`, ""},                            // negative
		{`{"keep_n": 10001}`, ""},                         // too many
		{`{"keep_n": 1.5}`, ""},                           // not an integer
		{`{"keep_n": "3"}`, ""},                           // not a number
		{`{"older_than": "-1h"}`, ""},                     // negative
		{`{"older_than": "30"}`, ""},                      // no unit
		{`{"older_than": "99999999d"}`, ""},               // beyond 100 years
		{`{"older_than": 3600}`, ""},                      // not a string
		{`{"keep_n": 1, "tag_regex": "("}`, ""},           // bad expression
		{`{"keep_n": 1, "protected_regex": "[z-a]"}`, ""}, // bad expression
		{`{"keep_n": 1, "tag_regex": "` + strings.Repeat("a", 257) + `"}`, ""}, // too long
		{`{"keep_n": 1, "delete_everything": true}`, ""},                       // unknown field
		{`{"keep_n": 1} {"keep_n": 2}`, ""},                                    // two objects
		{`{"keep_n": 1`, ""},                                                   // cut short
		{`[1]`, ""},
		{`null`, ""},
		{``, ""},
		{`{"keep_n": 1, "tag_regex": "` + strings.Repeat("x", 5000) + `"}`, ""}, // over 4 KiB
	} {
		p, err := gc.ParsePolicy([]byte(tc.raw))
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParsePolicy(%.60s) accepted: %s", tc.raw, p.JSON())
			}
			continue
		}
		if err != nil || p.JSON() != tc.want {
			t.Errorf("ParsePolicy(%s) = %v, %v; want %s", tc.raw, p, err, tc.want)
			continue
		}
		// What is stored reads back the same.
		if again, err := gc.ParsePolicy([]byte(p.JSON())); err != nil || again.JSON() != tc.want {
			t.Errorf("round trip of %s: %v, %v", tc.want, again, err)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(`{"keep_n": 10, "tag_regex": "dev-.*", "older_than": "30d", "protected_regex": "v.*"}`))
	f.Add([]byte(`{"older_than": "1h"}`))
	f.Add([]byte(`{"keep_n": 1, "tag_regex": "(a|b)*c{2,100}"}`))
	f.Add([]byte(`{"keep_n":`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := gc.ParsePolicy(raw)
		if err != nil {
			return
		}
		// An accepted policy plans without failing, never removes a
		// signature tag, and reads back the same.
		now := time.Unix(1700000000, 0)
		tags := []meta.RetentionTag{
			{Repository: "a", Tag: "v1", Updated: now.Add(-48 * time.Hour)},
			{Repository: "a", Tag: "sha256-" + strings.Repeat("ab", 32) + ".sig", Updated: now.Add(-72 * time.Hour)},
			{Repository: "a", Tag: "latest", Updated: now},
		}
		for _, r := range p.Plan(tags, now) {
			if strings.HasSuffix(r.Tag, ".sig") {
				t.Fatalf("policy %s removes a signature tag", p.JSON())
			}
		}
		if again, err := gc.ParsePolicy([]byte(p.JSON())); err != nil || again.JSON() != p.JSON() {
			t.Fatalf("%s does not read back: %v", p.JSON(), err)
		}
	})
}

func TestPlan(t *testing.T) {
	now := time.Unix(1700000000, 0)
	day := 24 * time.Hour
	tag := func(repo, name string, age time.Duration) meta.RetentionTag {
		return meta.RetentionTag{Repository: repo, Tag: name, Digest: digest.FromString(repo + name), Updated: now.Add(-age)}
	}
	sig := "sha256-" + strings.Repeat("ab", 32) + ".sig"
	att := "sha256-" + strings.Repeat("ab", 32) + ".att"
	tags := []meta.RetentionTag{
		tag("a", "v1.0.0", 90*day), tag("a", "dev-1", 40*day), tag("a", "dev-2", 35*day), tag("a", "dev-3", 20*day),
		tag("a", "dev-4", 2*day), tag("a", "latest", 0), tag("a", sig, 100*day), tag("a", att, 100*day),
		tag("b", "dev-1", 50*day), tag("b", "dev-2", 1*day),
		tag("a", "same-b", 5*day), tag("a", "same-a", 5*day), // ties: name order
	}
	for _, tc := range []struct {
		name                string
		keep                int
		regex, protect, age string
		want                []string
	}{
		{"keep newest 2 per repository", 2, "", "", "", []string{"a:same-a", "a:same-b", "a:dev-3", "a:dev-2", "a:dev-1", "a:v1.0.0"}},
		{"keep 2, only dev tags", 2, "dev-.*", "", "", []string{"a:dev-2", "a:dev-1"}},
		{"older than 30 days", 0, "", "", "30d", []string{"a:dev-2", "a:dev-1", "a:v1.0.0", "b:dev-1"}},
		{"keep 1 and older than 30 days", 1, "dev-.*", "", "30d", []string{"a:dev-2", "a:dev-1", "b:dev-1"}},
		{"protected", 0, "", `v\d+\.\d+\.\d+|latest`, "1h", []string{"a:dev-4", "a:same-a", "a:same-b", "a:dev-3", "a:dev-2", "a:dev-1", "b:dev-2", "b:dev-1"}},
		{"full match only", 0, "dev", "", "1h", nil},
		{"keep more than there are", 100, "", "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			age := time.Duration(0)
			if tc.age != "" {
				var err error
				if age, err = gc.ParseDuration(tc.age); err != nil {
					t.Fatal(err)
				}
			}
			p, err := gc.NewPolicy(tc.keep, tc.regex, age, tc.protect)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range p.Plan(tags, now) {
				got = append(got, r.Repository+":"+r.Tag)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Plan = %v, want %v", got, tc.want)
			}
		})
	}
}
