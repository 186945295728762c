package registry

import (
	"maps"
	"strings"
	"testing"
)

func TestEntityTags(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		ok     bool
		any    bool
		tags   []string
	}{
		{"absent", nil, false, false, nil},
		{"empty", []string{""}, false, false, nil},
		{"star", []string{"*"}, true, true, nil},
		{"one", []string{`"sha256:abc"`}, true, false, []string{"sha256:abc"}},
		{"list", []string{` "a" , "b",`}, true, false, []string{"a", "b"}},
		{"two headers", []string{`"a"`, `"b"`}, true, false, []string{"a", "b"}},
		{"weak never matches", []string{`W/"a"`}, true, false, nil},
		{"unquoted", []string{`sha256:abc`}, true, false, nil},
		{"lone quote", []string{`"`}, true, false, nil},
		{"empty quoted", []string{`""`}, true, false, []string{""}},
	} {
		l, ok := entityTags(tc.values)
		var got []string
		for k := range maps.Keys(l.tags) {
			got = append(got, k)
		}
		if ok != tc.ok || l.any != tc.any || len(got) != len(tc.tags) {
			t.Errorf("%s: ok %v any %v tags %q; want %v %v %q", tc.name, ok, l.any, got, tc.ok, tc.any, tc.tags)
			continue
		}
		for _, want := range tc.tags {
			if !l.tags[want] {
				t.Errorf("%s: %q missing from %q", tc.name, want, got)
			}
		}
	}
}

// FuzzEntityTags: any header value parses without panicking, and a tag it
// returns was quoted in the input.
func FuzzEntityTags(f *testing.F) {
	for _, s := range []string{`"sha256:abc"`, "*", `W/"x", "y"`, `"`, `,,`, "\x00\"a\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		l, _ := entityTags([]string{v})
		for tag := range l.tags {
			if !strings.Contains(v, `"`+tag+`"`) {
				t.Fatalf("tag %q not quoted in %q", tag, v)
			}
		}
	})
}
